/** A map that forgets its oldest entries beyond a capacity or an age (pure). */

export type Clock = () => number;

export const monotonicMs: Clock = () => performance.now();

export class BoundedMap<K, V> {
  private readonly items = new Map<K, { at: number; value: V }>();

  constructor(
    readonly capacity: number,
    readonly maxAgeMs: number | null = null,
    private readonly clock: Clock = monotonicMs,
  ) {}

  put(key: K, value: V): void {
    const now = this.clock();
    this.items.delete(key);
    this.items.set(key, { at: now, value });
    this.prune(now);
  }

  get(key: K): V | undefined {
    this.prune(this.clock());
    return this.items.get(key)?.value;
  }

  has(key: K): boolean {
    return this.get(key) !== undefined;
  }

  get size(): number {
    return this.items.size;
  }

  private prune(now: number): void {
    while (this.items.size > this.capacity) {
      const oldest = this.items.keys().next();
      if (oldest.done === true) break;
      this.items.delete(oldest.value);
    }
    if (this.maxAgeMs === null) return;
    for (const [key, entry] of this.items) {
      if (now - entry.at <= this.maxAgeMs) break;
      this.items.delete(key);
    }
  }
}
