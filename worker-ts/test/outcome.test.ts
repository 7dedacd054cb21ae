import assert from "node:assert/strict";
import { test } from "node:test";

import { TaskFailed, TaskStopped } from "../src/errors";
import { MAX_RESULT_BYTES, fromError, stopped, succeeded } from "../src/outcome";

test("a result at the limit succeeds, one character more is ResultTooLarge", () => {
  const overhead = '{"data":""}'.length;
  const ok = succeeded({ data: "x".repeat(MAX_RESULT_BYTES - overhead) });
  assert.equal(ok.phase, "Succeeded");
  const big = succeeded({ data: "x".repeat(MAX_RESULT_BYTES - overhead + 1) });
  assert.equal(big.phase, "Error");
  assert.equal(big.error?.reason, "ResultTooLarge");
  assert.equal(big.result, null);
});

test("non-ASCII characters count as their escapes, as the reference measures", () => {
  // each é is \u00e9 (6 characters), plus the 2 quotes: 10922 fit, 10923 do not
  const n = Math.floor((MAX_RESULT_BYTES - 2) / 6);
  assert.equal(succeeded("é".repeat(n + 1)).error?.reason, "ResultTooLarge");
  assert.equal(succeeded("é".repeat(n)).phase, "Succeeded");
});

test("too deep, not JSON, undefined", () => {
  let deep: unknown = 1;
  for (let i = 0; i < 101; i++) deep = [deep];
  assert.equal(succeeded(deep).error?.reason, "ResultTooDeep");
  assert.equal(succeeded({ n: 10n }).error?.reason, "ResultNotSerializable");
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assert.equal(succeeded(cycle).error?.reason, "ResultNotSerializable");
  const none = succeeded(undefined);
  assert.equal(none.phase, "Succeeded");
  assert.equal(none.result, null);
  assert.deepEqual(succeeded({ when: new Date(0) }).result, { when: "1970-01-01T00:00:00.000Z" });
});

test("business failure vs crash", () => {
  const failed = fromError(new TaskFailed("EmptyImage", "the image is empty"));
  assert.equal(failed.phase, "Failed");
  assert.deepEqual(failed.error, {
    reason: "EmptyImage",
    message: "the image is empty",
    traceback: null,
  });
  const crash = fromError(new RangeError("boom"));
  assert.equal(crash.phase, "Error");
  const error = crash.error;
  assert.ok(error);
  assert.equal(error.reason, "HandlerException");
  assert.equal(error.message, "RangeError: boom");
  assert.ok((error.traceback ?? "").includes("boom"));
  assert.equal(fromError("a string").error?.reason, "HandlerException");
});

test("a stop wins over what the handler did", () => {
  assert.equal(fromError(new TaskFailed("X"), "Cancelled").phase, "Cancelled");
  assert.equal(fromError(new Error("aborted"), "TimedOut").error?.reason, "TimeLimitExceeded");
  assert.equal(fromError(new TaskStopped("Cancelled")).phase, "Cancelled");
  const early = stopped("Cancelled", "CancelRequested", true);
  assert.equal(early.error?.message, "the task was cancelled before it started: CancelRequested");
  assert.equal(stopped("TimedOut").message, "TimedOut");
});
