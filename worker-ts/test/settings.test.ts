import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffMs, nodeName, withHeartbeat } from "../src/link";
import { SettingsError, effectivePrefetch, settingsFromEnv } from "../src/settings";
import { deadLetterHeaders, quorumQueueArguments, taskQueueName } from "../src/topology";
import { streamOffset } from "../src/control";

test("the Python worker's variables and defaults", () => {
  const s = settingsFromEnv({});
  assert.equal(s.concurrency, 1);
  assert.equal(effectivePrefetch(s), 1);
  assert.equal(s.cancelGraceSeconds, 10);
  assert.equal(s.gracePeriodSeconds, 30);
  assert.equal(s.progressIntervalSeconds, 0.5);
  assert.equal(s.startReportSeconds, 0.05);
  assert.equal(s.heartbeatSeconds, 30);
  const t = settingsFromEnv({
    ASYNCTASK_WORKER_AMQP_URL: "amqp://a:5672/%2F,amqp://b:5672/%2F",
    ASYNCTASK_WORKER_QUEUES: " resize, ,thumbs ",
    ASYNCTASK_WORKER_CONCURRENCY: "4",
    ASYNCTASK_WORKER_PREFETCH: "8",
    ASYNCTASK_WORKER_CANCEL_GRACE_SECONDS: "2.5",
    ASYNCTASK_WORKER_WORKER_ID: "pod/1",
  });
  assert.deepEqual(t.queues, ["resize", "thumbs"]);
  assert.equal(t.concurrency, 4);
  assert.equal(effectivePrefetch(t), 8);
  assert.equal(t.cancelGraceSeconds, 2.5);
  assert.equal(t.workerId, "pod/1");
});

test("bad values are refused with the variable's name", () => {
  assert.throws(() => settingsFromEnv({ ASYNCTASK_WORKER_CONCURRENCY: "0" }), SettingsError);
  assert.throws(() => settingsFromEnv({ ASYNCTASK_WORKER_CONCURRENCY: "1.5" }), /CONCURRENCY/);
  assert.throws(
    () => settingsFromEnv({ ASYNCTASK_WORKER_PROGRESS_INTERVAL_SECONDS: "0.01" }),
    SettingsError,
  );
  assert.throws(() => settingsFromEnv({ ASYNCTASK_WORKER_LOG_FORMAT: "xml" }), SettingsError);
  assert.throws(
    () => settingsFromEnv({ ASYNCTASK_WORKER_START_REPORT_SECONDS: "0.6" }),
    /START_REPORT_SECONDS/,
  );
  assert.equal(
    settingsFromEnv({ ASYNCTASK_WORKER_START_REPORT_SECONDS: "0" }).startReportSeconds,
    0,
  );
});

test("topology: names, quorum arguments, dead-letter headers", () => {
  assert.equal(taskQueueName("resize"), "asynctask.tasks.resize");
  assert.deepEqual(quorumQueueArguments(), {
    "x-queue-type": "quorum",
    "x-delivery-limit": { "!": "int32", value: 5 },
    "x-dead-letter-exchange": "asynctask.dead-letter",
  });
  const h = deadLetterHeaders(
    { "asynctask-uid": "u" },
    { queue: "asynctask.tasks.q", reason: "NotJson", detail: "d".repeat(2000), by: "worker w" },
  );
  assert.equal(h["asynctask-uid"], "u");
  assert.equal(h["x-asynctask-dead-reason"], "NotJson");
  assert.equal((h["x-asynctask-dead-detail"] as string).length, 1000);
  assert.equal(h["x-asynctask-dead-by"], "worker w");
  assert.equal(h["x-asynctask-dead-queue"], "asynctask.tasks.q");
});

test("connections: heartbeat, node names without credentials, backoff, stream offsets", () => {
  assert.equal(withHeartbeat("amqp://u:p@h:5672/%2F", 30), "amqp://u:p@h:5672/%2F?heartbeat=30");
  assert.equal(withHeartbeat("amqp://h/?heartbeat=5", 30), "amqp://h/?heartbeat=5");
  assert.equal(nodeName("amqp://u:secret@rabbit:5672/%2F"), "rabbit:5672");
  assert.equal(
    backoffMs(0, 30_000, () => 1),
    500,
  );
  assert.equal(
    backoffMs(30, 30_000, () => 1),
    30_000,
  );
  assert.ok(backoffMs(3, 30_000, () => 0) >= 2000);
  assert.deepEqual(streamOffset(42, 86_400), { "!": "long", value: 42 });
  assert.deepEqual(streamOffset(null, 86_400, 100_000_000), {
    "!": "timestamp",
    value: 100_000 - 86_400,
  });
});
