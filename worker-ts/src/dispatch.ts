/**
 * Scheduling task attempts: bounded concurrency, revocation, time limits, finishing once.
 *
 * Knows nothing of RabbitMQ: the worker hands it deliveries (a task message plus ack and
 * requeue) and a status sink (whose `send` resolves once the broker confirmed a message).
 * A delivery is acked only after its terminal status was confirmed.
 */

import { TaskContext } from "./context";
import type { StopReason } from "./errors";
import {
  Ledger,
  deliveriesOf,
  jobKey,
  type Delivery,
  type Job,
  type Revocation,
  type Verdict,
} from "./ledger";
import type { Logger } from "./logs";
import { TaskPayloads } from "./offload";
import { fromError, stopped, type Outcome } from "./outcome";
import type { ControlMessage, Phase, StatusFields, TaskRef } from "./protocol";

/** Added to a time limit: it must never be early. */
export const START_MARGIN_MS = 50;

/** A task handler: the task's `spec.request` (or its stored request) in, its result out. */
export type Handler = (request: unknown, ctx: TaskContext) => unknown;

/** Where status messages go. */
export interface StatusSink {
  send(task: TaskRef, attempt: number, phase: Phase, fields?: StatusFields): Promise<void>;
  progress(task: TaskRef, attempt: number, percent: number, message: string | null): void;
}

interface RunningJob extends Job {
  readonly ctx: TaskContext;
  readonly startedAt: number;
  timeLimit: NodeJS.Timeout | null;
  hardStop: NodeJS.Timeout | null;
}

export interface DispatcherOptions {
  concurrency: number;
  cancelGraceMs: number;
  revokedCapacity?: number;
  revokedMaxAgeMs?: number;
  doneCapacity?: number;
  /** How long a stored payload's transfer is retried while the store is unreachable. */
  payloadRetryMs?: number;
}

export class Dispatcher {
  private readonly ledger: Ledger<RunningJob>;
  private readonly cancelGraceMs: number;
  private readonly payloadRetryMs: number;
  /** Handlers stopped hard that have not returned yet. */
  abandoned = 0;

  constructor(
    private readonly handlers: ReadonlyMap<string, Handler>,
    private readonly sink: StatusSink,
    private readonly log: Logger,
    options: DispatcherOptions,
  ) {
    this.ledger = new Ledger(options.concurrency, options);
    this.cancelGraceMs = options.cancelGraceMs;
    this.payloadRetryMs = options.payloadRetryMs ?? 60_000;
  }

  get active(): number {
    return this.ledger.count();
  }

  get finishing(): number {
    return this.ledger.count("finishing");
  }

  get waiting(): number {
    return this.ledger.pending.length;
  }

  /** A task message arrived: run it when a slot is free, or settle it at once. */
  submit(d: Delivery): void {
    const [verdict, revocation] = this.ledger.admit(d);
    this.settleEarly(d, verdict, revocation);
    this.pump();
  }

  /** A cancellation or time-out: remember it; stop the task if it is here. */
  control(msg: ControlMessage): void {
    const rev: Revocation = {
      reason: msg.action === "timeout" ? "TimedOut" : "Cancelled",
      detail: msg.reason,
    };
    const { jobs, queued } = this.ledger.revoke(msg.task.uid, rev);
    for (const job of jobs) this.stop(job, rev.reason, rev.detail);
    for (const d of queued) this.reportRevoked(d, rev);
  }

  forgetPending(): number {
    return this.ledger.forgetPending();
  }

  /** Shutdown, step 1: start nothing new; requeue what has not started. */
  closeIntake(): number {
    const queued = this.ledger.closeIntake();
    for (const d of queued) d.requeue();
    return queued.length;
  }

  /** Shutdown, step 2 (after the grace period): requeue what still runs, report nothing. */
  releaseRunning(): number {
    const jobs = this.ledger.releaseRunning();
    for (const job of jobs) {
      this.clearTimers(job);
      job.ctx.stop("WorkerShutdown", "the worker stops");
      for (const d of deliveriesOf(job)) d.requeue();
      this.log.warning(
        `task ${job.ctx.namespace}/${job.ctx.name}: still running after the grace period: requeued`,
      );
    }
    return jobs.length;
  }

  // ---------------------------------------------------------------------------------------

  private settleEarly(d: Delivery, verdict: Verdict, rev: Revocation | null): void {
    const { task } = d.message;
    if (verdict === "requeue") {
      d.requeue();
    } else if (verdict === "duplicate") {
      this.log.info(
        `task ${task.namespace}/${task.name}: redelivered after it finished here: acked`,
      );
      d.ack();
    } else if (verdict === "adopted") {
      this.log.info(
        `task ${task.namespace}/${task.name}: redelivered while it runs here: the running attempt keeps it`,
      );
    } else if (verdict === "revoked" && rev !== null) {
      this.reportRevoked(d, rev);
    }
  }

  private reportRevoked(d: Delivery, rev: Revocation): void {
    const msg = d.message;
    const out = stopped(rev.reason, rev.detail, true);
    this.log.info(
      `task ${msg.task.namespace}/${msg.task.name}: ${rev.reason} before it started: acked without running the handler`,
    );
    this.sink.send(msg.task, d.attempt, out.phase, { error: out.error, message: out.message }).then(
      () => {
        this.ledger.done.put(jobKey(msg), true);
        d.ack();
      },
      () => {
        d.requeue();
      },
    );
  }

  private pump(): void {
    const { starts, early } = this.ledger.takeStartable((d) => this.newJob(d));
    for (const [d, verdict, rev] of early) this.settleEarly(d, verdict, rev);
    for (const job of starts) this.start(job);
  }

  private newJob(d: Delivery): RunningJob {
    const msg = d.message;
    const job: RunningJob = {
      key: jobKey(msg),
      delivery: d,
      superseded: [],
      state: "running",
      startedAt: performance.now(),
      timeLimit: null,
      hardStop: null,
      ctx: new TaskContext(msg.task, d.attempt, msg.queue, (percent, text) => {
        if (job.state === "running") this.sink.progress(msg.task, job.ctx.attempt, percent, text);
      }),
    };
    return job;
  }

  private start(job: RunningJob): void {
    const msg = job.delivery.message;
    const { ctx } = job;
    this.log.info(`task ${ctx.namespace}/${ctx.name} attempt ${ctx.attempt}: started`);
    const handler = this.handlers.get(msg.queue);
    if (msg.timeout_seconds !== null) {
      const limit = msg.timeout_seconds;
      job.timeLimit = setTimeout(
        () => {
          this.stop(job, "TimedOut", `it ran longer than its limit of ${limit}s`);
        },
        limit * 1000 + START_MARGIN_MS,
      );
    }
    void this.sink
      .send(msg.task, ctx.attempt, "Processing", { message: "Processing" })
      .catch(() => undefined); // the terminal status says the rest
    const payloads = new TaskPayloads(msg, {
      retryMs: this.payloadRetryMs,
      signal: ctx.signal,
      expiresAt: msg.payload?.expires_at ?? null,
    });
    const run = async (): Promise<Outcome> => {
      if (handler === undefined) throw new Error(`no handler for queue ${msg.queue}`);
      try {
        const request = await payloads.request();
        return await payloads.result(await handler(request, ctx));
      } finally {
        await payloads.dispose();
      }
    };
    run().then(
      (outcome) => {
        this.finish(job, outcome);
      },
      (exc: unknown) => {
        this.finish(job, fromError(exc, ctx.cancelReason));
      },
    );
  }

  /** Soft stop: abort the handler's signal and start the grace period (once). */
  private stop(job: RunningJob, reason: StopReason, detail: string): void {
    if (job.state !== "running") return;
    if (job.hardStop === null) {
      job.hardStop = setTimeout(() => {
        this.hardStopJob(job);
      }, this.cancelGraceMs);
    }
    if (job.ctx.stop(reason, detail)) {
      this.log.info(
        `task ${job.ctx.namespace}/${job.ctx.name}: ${reason}; the handler has ${this.cancelGraceMs / 1000}s to stop`,
      );
    }
  }

  private hardStopJob(job: RunningJob): void {
    const { ctx } = job;
    const reason = ctx.cancelReason === "TimedOut" ? "TimedOut" : "Cancelled";
    if (!this.finish(job, stopped(reason, ctx.cancelDetail))) return;
    this.abandoned++;
    this.log.warning(
      `task ${ctx.namespace}/${ctx.name}: the handler did not stop within ${this.cancelGraceMs / 1000}s: reported ${reason}; its promise is abandoned`,
    );
  }

  private clearTimers(job: RunningJob): void {
    if (job.timeLimit !== null) clearTimeout(job.timeLimit);
    if (job.hardStop !== null) clearTimeout(job.hardStop);
    job.timeLimit = job.hardStop = null;
  }

  /** Report the terminal status of a running job; false if it already ended. */
  private finish(job: RunningJob, result: Outcome): boolean {
    if (!this.ledger.finishing(job)) return false;
    this.clearTimers(job);
    const { ctx } = job;
    const reason = ctx.cancelReason;
    if (reason === "Cancelled" || reason === "TimedOut") result = stopped(reason, ctx.cancelDetail);
    const seconds = ((performance.now() - job.startedAt) / 1000).toFixed(2);
    const why = result.error
      ? ` (${result.error.reason}: ${result.error.message.slice(0, 200)})`
      : "";
    this.log.info(
      `task ${ctx.namespace}/${ctx.name} attempt ${ctx.attempt}: ${result.phase} in ${seconds}s${why}`,
    );
    this.sink
      .send(ctx.task, ctx.attempt, result.phase, {
        result: result.result,
        result_ref: result.resultRef ?? null,
        error: result.error,
        message: result.message,
        progress: result.phase === "Succeeded" ? 100 : null,
      })
      .then(
        () => {
          for (const d of this.ledger.settled(job, true)) d.ack();
          this.pump();
        },
        (exc: unknown) => {
          this.log.error(
            `task ${ctx.uid}: could not report its outcome (${String(exc)}): back to its queue`,
          );
          for (const d of this.ledger.settled(job, false)) d.requeue();
          this.pump();
        },
      );
    return true;
  }
}
