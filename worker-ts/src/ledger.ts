/**
 * What a dispatcher holds: deliveries waiting for a slot, jobs running or reporting, the
 * attempts that ended here, the revoked tasks; and the decision on what a delivery needs
 * (pure: no timers, no broker), as `asynctask_worker/_runtime/ledger.py` decides it.
 *
 * A job lives `running → finishing → done`, or `running → released` (shutdown after the
 * grace period): exactly one ending wins.
 */

import { BoundedMap, type Clock, monotonicMs } from "./bounded";
import type { StopReason } from "./errors";
import type { TaskMessage } from "./protocol";

/** One received task message and how to settle it with its broker. */
export interface Delivery {
  readonly message: TaskMessage;
  /** The attempt this worker reports: the message's, plus the broker's redeliveries. */
  readonly attempt: number;
  ack(): void;
  requeue(): void;
}

export type JobState = "running" | "finishing" | "released" | "done";

/** A revoked task: why it must not run (any more). */
export interface Revocation {
  readonly reason: Extract<StopReason, "Cancelled" | "TimedOut">;
  readonly detail: string;
}

export type Verdict =
  | "new" // run it when a slot is free
  | "duplicate" // it ended here: ack it
  | "adopted" // it runs here: the running job settles the new delivery
  | "revoked" // cancelled before it started: report that, never run it
  | "requeue"; // shutting down: back to its queue

export interface Job {
  readonly key: string;
  delivery: Delivery;
  /** Earlier deliveries of this attempt it adopted a newer one from: on a connection that
   * is gone settling them does nothing; on the live one (the same message published twice)
   * each holds a prefetch slot until it is settled with the job. */
  superseded: Delivery[];
  state: JobState;
}

/** Every delivery a job settles when it ends: the adopted ones, then its own. */
export function deliveriesOf(job: Job): Delivery[] {
  return [...job.superseded, job.delivery];
}

/** One published attempt: (task uid, the task message's attempt). */
export function jobKey(msg: TaskMessage): string {
  return `${msg.task.uid}:${msg.attempt}`;
}

export class Ledger<J extends Job> {
  readonly pending: Delivery[] = [];
  readonly running = new Map<string, J>();
  readonly done: BoundedMap<string, true>;
  readonly revoked: BoundedMap<string, Revocation>;
  intake = true;

  constructor(
    readonly concurrency: number,
    options: {
      doneCapacity?: number;
      revokedCapacity?: number;
      revokedMaxAgeMs?: number;
      clock?: Clock;
    } = {},
  ) {
    const clock = options.clock ?? monotonicMs;
    this.done = new BoundedMap(options.doneCapacity ?? 10_000, null, clock);
    this.revoked = new BoundedMap(
      options.revokedCapacity ?? 100_000,
      options.revokedMaxAgeMs ?? 86_400_000,
      clock,
    );
  }

  /** A delivery arrived: queue it if it is new; say what it needs. */
  admit(d: Delivery): [Verdict, Revocation | null] {
    if (!this.intake) return ["requeue", null];
    const [verdict, revocation] = this.triage(d);
    if (verdict === "new") this.pending.push(d);
    return [verdict, revocation];
  }

  /** What a delivery needs; adopts a redelivery of a running job. Made on arrival and
   * again when a slot frees up (the task may have ended or been revoked meanwhile). */
  triage(d: Delivery): [Verdict, Revocation | null] {
    const key = jobKey(d.message);
    if (this.done.has(key)) return ["duplicate", null];
    const job = this.running.get(key);
    if (job !== undefined) {
      // Redelivered (reconnect) or published again while it runs here: adopt it.
      job.superseded.push(job.delivery);
      job.delivery = d;
      return ["adopted", null];
    }
    const revocation = this.revoked.get(d.message.task.uid);
    if (revocation !== undefined) return ["revoked", revocation];
    return ["new", null];
  }

  /** Deliveries to start in the free slots (made jobs by `make`), and those settled meanwhile. */
  takeStartable(make: (d: Delivery) => J): {
    starts: J[];
    early: [Delivery, Verdict, Revocation | null][];
  } {
    const starts: J[] = [];
    const early: [Delivery, Verdict, Revocation | null][] = [];
    while (this.intake && this.running.size < this.concurrency) {
      const d = this.pending.shift();
      if (d === undefined) break;
      const [verdict, revocation] = this.triage(d);
      if (verdict === "new") {
        const job = make(d);
        this.running.set(job.key, job);
        starts.push(job);
      } else {
        early.push([d, verdict, revocation]);
      }
    }
    return { starts, early };
  }

  /** Remember a revocation; the running jobs of that task, and its waiting deliveries. */
  revoke(uid: string, revocation: Revocation): { jobs: J[]; queued: Delivery[] } {
    this.revoked.put(uid, revocation);
    const jobs = [...this.running.values()].filter(
      (j) => j.delivery.message.task.uid === uid && j.state === "running",
    );
    const queued = this.pending.filter((d) => d.message.task.uid === uid);
    this.removePending(queued);
    return { jobs, queued };
  }

  /** `running → finishing`: this ending wins; false if another one already did. */
  finishing(job: J): boolean {
    if (job.state !== "running") return false;
    job.state = "finishing";
    return true;
  }

  /** `→ done`: the slot is free; the deliveries to ack (or requeue) now. */
  settled(job: J, confirmed: boolean): Delivery[] {
    job.state = "done";
    if (this.running.get(job.key) === job) this.running.delete(job.key);
    if (confirmed) this.done.put(job.key, true);
    return deliveriesOf(job);
  }

  /** The connection is gone: deliveries not started yet will be redelivered. */
  forgetPending(): number {
    return this.pending.splice(0).length;
  }

  /** Take nothing new; the deliveries that had not started. */
  closeIntake(): Delivery[] {
    this.intake = false;
    return this.pending.splice(0);
  }

  /** `running → released`: the jobs still running, off the ledger. */
  releaseRunning(): J[] {
    const jobs = [...this.running.values()].filter((j) => j.state === "running");
    for (const job of jobs) {
      job.state = "released";
      this.running.delete(job.key);
    }
    return jobs;
  }

  count(...states: JobState[]): number {
    let n = 0;
    for (const job of this.running.values())
      if (states.length === 0 || states.includes(job.state)) n++;
    return n;
  }

  private removePending(items: Delivery[]): void {
    for (const d of items) {
      const i = this.pending.indexOf(d);
      if (i >= 0) this.pending.splice(i, 1);
    }
  }
}
