/** What a handler sees while it runs: who it runs for, progress, cancellation. */

import { TaskStopped, type StopReason } from "./errors";
import { MAX_MESSAGE_CHARS, type TaskRef } from "./protocol";

export class TaskContext {
  private readonly controller = new AbortController();
  private stopReason: StopReason | null = null;
  private stopDetail = "";

  constructor(
    readonly task: TaskRef,
    /** The attempt this worker runs (the task message's, plus broker redeliveries). */
    readonly attempt: number,
    /** The task's `spec.queue`. */
    readonly queue: string,
    private readonly sink: (percent: number, message: string | null) => void,
  ) {}

  get uid(): string {
    return this.task.uid;
  }

  get name(): string {
    return this.task.name;
  }

  get namespace(): string {
    return this.task.namespace;
  }

  /**
   * Aborted when the task is cancelled, runs out of time, or the worker stops after its
   * grace period; `signal.reason` is a {@link TaskStopped}. Pass it to `fetch`, timers,
   * streams; the handler has the cancel grace period to return or throw.
   */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once the task was told to stop. */
  get cancelled(): boolean {
    return this.controller.signal.aborted;
  }

  /** Why it was told to stop (the first reason wins), or null. */
  get cancelReason(): StopReason | null {
    return this.stopReason;
  }

  get cancelDetail(): string {
    return this.stopDetail;
  }

  /** Report how far along the task is (0–100) and, optionally, a short message. Cheap to
   * call often: at most one message per progress interval is sent, the latest winning. */
  progress(percent: number, message?: string | null): void {
    const value = Number.isFinite(percent) ? Math.max(0, Math.min(100, Math.trunc(percent))) : 0;
    this.sink(value, message == null ? null : message.slice(0, MAX_MESSAGE_CHARS));
  }

  /** Throw the signal's reason if the task was told to stop; call it between steps. */
  throwIfCancelled(): void {
    this.controller.signal.throwIfAborted();
  }

  /** Sleep up to `ms` milliseconds, waking early (false) if the task is told to stop. */
  sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.cancelled) {
        resolve(false);
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, ms);
      this.signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** @internal Tell the handler to stop; false if it already was. */
  stop(reason: StopReason, detail = ""): boolean {
    if (this.cancelled) return false;
    this.stopReason = reason;
    this.stopDetail = detail;
    this.controller.abort(new TaskStopped(reason, detail));
    return true;
  }
}
