/**
 * Turning what a handler did into the terminal status the operator receives (pure), as
 * `asynctask_worker/_runtime/outcome.py` does: result limits, business failure vs crash,
 * stops.
 */

import { TaskFailed, TaskStopped, type StopReason } from "./errors";
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

/** What a handler returned: `Succeeded`, unless the result breaks a limit. */
export function succeeded(value: unknown, maxResultBytes = MAX_RESULT_BYTES): Outcome {
  let sent: unknown;
  try {
    // JSON.stringify's own view (toJSON, dropped functions, `undefined` as null) is sent.
    const json = JSON.stringify(value) as string | undefined;
    sent = json === undefined ? null : JSON.parse(json);
  } catch (exc) {
    const text = exc instanceof Error ? exc.message : String(exc);
    if (exc instanceof RangeError) {
      return failure("Error", "ResultTooDeep", `the result nests too deep for JSON: ${text}`);
    }
    return failure(
      "Error",
      "ResultNotSerializable",
      `the handler returned a value that is not JSON: ${text}`,
    );
  }
  const depth = jsonDepth(sent);
  if (depth > MAX_REQUEST_DEPTH) {
    return failure(
      "Error",
      "ResultTooDeep",
      `the result nests ${depth} levels deep; the limit is ${MAX_REQUEST_DEPTH}. Flatten it.`,
    );
  }
  const size = compactAsciiJsonLength(sent);
  if (size > maxResultBytes) {
    return failure(
      "Error",
      "ResultTooLarge",
      `the result is ${size} bytes as JSON; the limit is ${maxResultBytes}. ` +
        "Store large results elsewhere and return a reference.",
    );
  }
  return { phase: "Succeeded", result: sent, error: null, message: "Succeeded" };
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
