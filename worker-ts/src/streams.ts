/**
 * Per task attempt: the next `seq` and the progress waiting to be sent (pure, clock injected).
 *
 * At most one progress message per attempt per interval, the latest value winning; none
 * after the attempt's terminal status; `seq` counts the messages actually sent, from 0, so a
 * message resent after a reconnect gets the next number (and so a new message id).
 *
 * An attempt's `Processing` is held for the start window (`ASYNCTASK_WORKER_START_REPORT_SECONDS`,
 * as the Python worker's `_runtime/starts.py`): an attempt that ends within it sends only its
 * end, which carries the start's time as `started_at`; one still running when the window
 * ends is reported then, with its real start time as `at`; progress reported within the
 * window is held too, and goes after the start (or not at all if the attempt ends first).
 */

import type { Clock } from "./bounded";
import { monotonicMs } from "./bounded";
import { isTerminal, type StatusMessage } from "./protocol";

interface Stream {
  seq: number;
  pending: StatusMessage | null;
  lastProgressAt: number | null;
  done: boolean;
  /** The `Processing` held for the start window, and when the window ends. */
  start: StatusMessage | null;
  startDue: number;
}

function keyOf(msg: StatusMessage): string {
  return `${msg.task.uid}:${msg.attempt}`;
}

export class StatusStreams {
  private readonly streams = new Map<string, Stream>();

  constructor(
    readonly intervalMs: number,
    private readonly clock: Clock = monotonicMs,
    readonly startWindowMs = 0,
  ) {}

  private stream(msg: StatusMessage): Stream {
    const key = keyOf(msg);
    let stream = this.streams.get(key);
    if (stream === undefined) {
      stream = {
        seq: 0,
        pending: null,
        lastProgressAt: null,
        done: false,
        start: null,
        startDue: 0,
      };
      this.streams.set(key, stream);
    }
    return stream;
  }

  /**
   * A progress tick: the message to send now, or null (kept until due, or dropped when the
   * attempt already ended).
   */
  offerProgress(msg: StatusMessage): StatusMessage | null {
    const stream = this.stream(msg);
    if (stream.done) return null;
    if (stream.start !== null) {
      stream.pending = msg; // after the held start, when its window ends
      return null;
    }
    const now = this.clock();
    if (stream.lastProgressAt === null || now - stream.lastProgressAt >= this.intervalMs) {
      stream.pending = null;
      stream.lastProgressAt = now;
      return msg;
    }
    stream.pending = msg;
    return null;
  }

  /**
   * An attempt's start (`Processing`, no progress): true if it is held for the start window
   * (send nothing now), false if it is to be sent at once (no window, or already over).
   */
  holdStart(msg: StatusMessage): boolean {
    if (this.startWindowMs <= 0) return false;
    const stream = this.stream(msg);
    if (stream.done) return false;
    stream.start = msg;
    stream.startDue = this.clock() + this.startWindowMs;
    return true;
  }

  /**
   * A phase change: `Processing` (it starts the progress interval: a progress reported with
   * it waits one interval, so the two never arrive as a pair), or terminal (it carries the
   * final word: held progress is dropped; a start still held is dropped too, and its time
   * rides along as `started_at`).
   */
  offerPhase(msg: StatusMessage): StatusMessage {
    const stream = this.stream(msg);
    if (isTerminal(msg.phase)) {
      stream.pending = null;
      stream.done = true;
      if (stream.start !== null) {
        const startedAt = stream.start.at;
        stream.start = null;
        return { ...msg, started_at: startedAt };
      }
    } else if (msg.progress === null) {
      stream.lastProgressAt = this.clock();
    }
    return msg;
  }

  /**
   * The held starts whose window has passed, then the held progress messages whose interval
   * has passed (all of them if `force`).
   */
  due(force = false): StatusMessage[] {
    const now = this.clock();
    const out: StatusMessage[] = [];
    for (const stream of this.streams.values()) {
      const start = stream.start;
      if (start !== null && (force || stream.startDue <= now)) {
        stream.start = null;
        out.push(this.offerPhase(start));
      }
    }
    for (const stream of this.streams.values()) {
      const msg = stream.pending;
      if (msg === null) continue;
      if (
        !force &&
        stream.lastProgressAt !== null &&
        now - stream.lastProgressAt < this.intervalMs
      ) {
        continue;
      }
      stream.pending = null;
      stream.lastProgressAt = now;
      out.push(msg);
    }
    return out;
  }

  /** Milliseconds until the next held message is due, or null if none is held. */
  nextDueInMs(): number | null {
    const now = this.clock();
    let best: number | null = null;
    for (const stream of this.streams.values()) {
      if (stream.start !== null) {
        const wait = Math.max(0, stream.startDue - now);
        best = best === null ? wait : Math.min(best, wait);
        continue; // its progress waits for it
      }
      if (stream.pending === null) continue;
      const wait = Math.max(0, (stream.lastProgressAt ?? now) + this.intervalMs - now);
      best = best === null ? wait : Math.min(best, wait);
    }
    return best;
  }

  /** The message as it is published: with this attempt's next `seq`. */
  stamp(msg: StatusMessage): StatusMessage {
    const stream = this.stream(msg);
    const stamped = { ...msg, seq: stream.seq };
    stream.seq += 1;
    return stamped;
  }

  /** The terminal status was confirmed: forget the attempt. */
  finished(msg: StatusMessage): void {
    const key = keyOf(msg);
    if (this.streams.get(key)?.done === true) this.streams.delete(key);
  }

  get size(): number {
    return this.streams.size;
  }
}
