/**
 * Turning what a handler did into the terminal status the operator receives (pure), as
 * `asynctask_worker/_runtime/outcome.py` does: result limits, business failure vs crash,
 * stops, stored payloads' failures.
 */

import { TaskFailed, TaskStopped, type StopReason } from "./errors";
import { ENABLE_OFFLOAD, PayloadError, type PayloadRef } from "./payloads";
import {
  MAX_ERROR_CHARS,
  MAX_MESSAGE_CHARS,
  MAX_REQUEST_DEPTH,
  compactAsciiJsonLength,
  jsonDepth,
  type ErrorInfo,
  type Phase,
} from "./protocol";

/** The largest result, in characters of compact ASCII JSON; larger ones end in Error. */
export const MAX_RESULT_BYTES = 64 * 1024;
export const TRACEBACK_CHARS = 4000;

/** The end of one attempt: a terminal phase plus result or error. */
export interface Outcome {
  readonly phase: Phase;
  readonly result: unknown;
  /** A result stored in object storage (then `result` is null). */
  readonly resultRef?: PayloadRef | null;
  readonly error: ErrorInfo | null;
  readonly message: string | null;
}

function failure(
  phase: Phase,
  reason: string,
  message: string,
  traceback: string | null = null,
): Outcome {
  return {
    phase,
    result: null,
    error: { reason, message: message.slice(0, MAX_ERROR_CHARS), traceback },
    message: reason,
  };
}

/** A JSON result as it is sent (JSON.stringify's view) and its size, or why it cannot be. */
export type JsonView =
  { readonly sent: unknown; readonly size: number } | { readonly failed: Outcome };

/** JSON.stringify's own view of `value` (toJSON, dropped functions, `undefined` as null). */
export function jsonView(value: unknown): JsonView {
  let sent: unknown;
  try {
    const json = JSON.stringify(value) as string | undefined;
    sent = json === undefined ? null : JSON.parse(json);
  } catch (exc) {
    const text = exc instanceof Error ? exc.message : String(exc);
    if (exc instanceof RangeError) {
      return {
        failed: failure("Error", "ResultTooDeep", `the result nests too deep for JSON: ${text}`),
      };
    }
    const why = `the handler returned a value that is not JSON: ${text}`;
    return { failed: failure("Error", "ResultNotSerializable", why) };
  }
  const depth = jsonDepth(sent);
  if (depth > MAX_REQUEST_DEPTH) {
    const why = `the result nests ${depth} levels deep; the limit is ${MAX_REQUEST_DEPTH}. Flatten it.`;
    return { failed: failure("Error", "ResultTooDeep", why) };
  }
  return { sent, size: compactAsciiJsonLength(sent) };
}

/** A JSON result kept in the status message: `Succeeded`, or `ResultTooLarge` over the limit. */
export function inlineResult(
  sent: unknown,
  size: number,
  maxResultBytes = MAX_RESULT_BYTES,
): Outcome {
  if (size > maxResultBytes) {
    return failure(
      "Error",
      "ResultTooLarge",
      `the result is ${size} bytes as JSON; the limit is ${maxResultBytes}. ${ENABLE_OFFLOAD}`,
    );
  }
  return { phase: "Succeeded", result: sent, error: null, message: "Succeeded" };
}

/** What a handler returned: `Succeeded`, unless the result breaks a limit. */
export function succeeded(value: unknown, maxResultBytes = MAX_RESULT_BYTES): Outcome {
  const view = jsonView(value);
  return "failed" in view ? view.failed : inlineResult(view.sent, view.size, maxResultBytes);
}

/** A result stored in object storage: `Succeeded` with its reference, no inline result. */
export function storedResult(ref: PayloadRef): Outcome {
  return { phase: "Succeeded", result: null, resultRef: ref, error: null, message: "Succeeded" };
}

/** A stop (cancel, time limit) wins over whatever the handler did. */
export function stopped(reason: StopReason, detail = "", beforeStart = false): Outcome {
  const when = beforeStart ? " before it started" : "";
  const why = detail ? `: ${detail}` : "";
  if (reason === "TimedOut") {
    const out = failure("TimedOut", "TimeLimitExceeded", `the task ran out of time${when}${why}`);
    return { ...out, message: "TimedOut" };
  }
  return failure("Cancelled", "Cancelled", `the task was cancelled${when}${why}`);
}

/** What a handler threw: `TaskFailed` → Failed; a stop → Cancelled/TimedOut; else Error. */
export function fromError(exc: unknown, cancelReason: StopReason | null = null): Outcome {
  if (cancelReason === "Cancelled" || cancelReason === "TimedOut") return stopped(cancelReason);
  if (exc instanceof TaskFailed) {
    return {
      phase: "Failed",
      result: null,
      error: {
        reason: exc.reason.slice(0, 128) || "TaskFailed",
        message: exc.message.slice(0, MAX_ERROR_CHARS),
        traceback: null,
      },
      message: exc.message.slice(0, MAX_MESSAGE_CHARS),
    };
  }
  if (exc instanceof TaskStopped && exc.reason !== "WorkerShutdown") return stopped(exc.reason);
  if (exc instanceof PayloadError) return failure("Error", exc.reason, exc.message);
  const name = exc instanceof Error ? exc.name : typeof exc;
  const text = `${name}: ${exc instanceof Error ? exc.message : String(exc)}`;
  const stack = exc instanceof Error && exc.stack !== undefined ? exc.stack : null;
  return {
    phase: "Error",
    result: null,
    error: {
      reason: "HandlerException",
      message: text.slice(0, MAX_ERROR_CHARS),
      traceback: stack === null ? null : stack.slice(-TRACEBACK_CHARS),
    },
    message: text.slice(0, MAX_MESSAGE_CHARS),
  };
}
