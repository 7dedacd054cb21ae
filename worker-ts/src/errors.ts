/** The errors a handler throws on purpose. */

/**
 * An expected, business failure: the task ends `Failed` with this reason and message and is
 * never retried. Anything else a handler throws ends it in `Error` (retried while
 * `spec.retries` allows).
 */
export class TaskFailed extends Error {
  constructor(
    readonly reason: string,
    message = "",
  ) {
    super(message);
    this.name = "TaskFailed";
  }
}

/** Why a task was told to stop (`ctx.signal.reason` is a {@link TaskStopped}). */
export type StopReason = "Cancelled" | "TimedOut" | "WorkerShutdown";

/** The reason of a task's AbortSignal: cancelled, out of time, or the worker stops. */
export class TaskStopped extends Error {
  constructor(
    readonly reason: StopReason,
    readonly detail = "",
  ) {
    super(detail ? `${reason}: ${detail}` : reason);
    this.name = "TaskStopped";
  }
}
