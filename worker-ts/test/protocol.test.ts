import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MalformedMessage,
  compactAsciiJsonLength,
  decodeControl,
  decodeTask,
  encodeStatus,
  jsonDepth,
  statusMessage,
  statusMessageId,
  taskMessageId,
} from "../src/protocol";

const ref = {
  uid: "6f1c2a9e-3b7d-4c11-9a65-0d2f7e8b4c10",
  namespace: "default",
  name: "resize-42",
};
const task = {
  v: 1,
  kind: "task",
  task: ref,
  queue: "resize",
  request: { url: "s3://bucket/cat.png", width: 640 },
  attempt: 1,
  timeout_seconds: 600,
  published_at: "2026-12-05T10:00:00.123456Z",
};

function body(value: unknown): Buffer {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value));
}

function reasonOf(raw: Buffer): string {
  try {
    decodeTask(raw);
  } catch (exc) {
    assert.ok(exc instanceof MalformedMessage);
    return exc.reason;
  }
  return "valid";
}

test("the protocol page's task message decodes", () => {
  const msg = decodeTask(body(task));
  assert.deepEqual(msg.task, ref);
  assert.equal(msg.queue, "resize");
  assert.equal(msg.attempt, 1);
  assert.equal(msg.timeout_seconds, 600);
  assert.deepEqual(msg.request, task.request);
});

test("missing v, kind, attempt and request take their defaults; unknown fields are ignored", () => {
  const msg = decodeTask(body({ task: ref, queue: "q", extra: { anything: 1 } }));
  assert.equal(msg.v, 1);
  assert.equal(msg.kind, "task");
  assert.equal(msg.attempt, 1);
  assert.equal(msg.request, null);
  assert.equal(msg.timeout_seconds, null);
});

test("malformed bodies get the reference's one-word reasons", () => {
  assert.equal(reasonOf(Buffer.from([0xff, 0xfe, 0x7b])), "NotUtf8");
  assert.equal(reasonOf(body("{not json")), "NotJson");
  assert.equal(reasonOf(body("[".repeat(500) + "]".repeat(500))), "TooDeep");
  assert.equal(reasonOf(body([1, 2])), "NotAnObject");
  assert.equal(reasonOf(body("7")), "NotAnObject");
  assert.equal(reasonOf(body({ ...task, v: 2 })), "UnknownVersion");
  assert.equal(reasonOf(body({ ...task, kind: "status" })), "WrongKind");
  assert.equal(reasonOf(body({ ...task, task: undefined })), "InvalidFields");
  assert.equal(
    reasonOf(body({ ...task, task: { ...ref, namespace: "Not_A_Label" } })),
    "InvalidFields",
  );
  assert.equal(reasonOf(body({ ...task, task: { ...ref, uid: "a/b" } })), "InvalidFields");
  assert.equal(reasonOf(body({ ...task, attempt: 0 })), "InvalidFields");
  assert.equal(reasonOf(body({ ...task, timeout_seconds: 1.5 })), "InvalidFields");
  assert.equal(reasonOf(body({ ...task, queue: 3 })), "InvalidFields");
  assert.equal(reasonOf(body({ ...task, published_at: "yesterday" })), "InvalidFields");
  assert.equal(reasonOf(body(task)), "valid");
});

test("a request nested 150 levels is valid (the document limit is the parser's, 200)", () => {
  const deep = "[".repeat(150) + "]".repeat(150);
  assert.equal(
    reasonOf(body(`{"task":${JSON.stringify(ref)},"queue":"q","request":${deep}}`)),
    "valid",
  );
});

test("control messages decode; bad ones are refused", () => {
  const msg = decodeControl(
    body({ v: 1, kind: "control", action: "cancel", task: ref, reason: "CancelRequested" }),
  );
  assert.equal(msg.action, "cancel");
  assert.equal(msg.reason, "CancelRequested");
  assert.equal(decodeControl(body({ action: "timeout", task: ref })).reason, "");
  assert.throws(() => decodeControl(body({ action: "pause", task: ref })), MalformedMessage);
  assert.throws(
    () => decodeControl(body({ v: 2, action: "cancel", task: ref })),
    /UnknownVersion|v:/,
  );
});

test("message ids are deterministic", () => {
  assert.equal(taskMessageId("u-1", 2), "task:u-1:2");
  assert.equal(statusMessageId("u-1", 2, 7), "status:u-1:2:7");
});

test("a status message has the reference's fields in order, strings cut to the limits", () => {
  const at = new Date("2026-12-05T10:00:02.500Z");
  const msg = statusMessage(
    ref,
    3,
    "Failed",
    "w/1",
    {
      message: "m".repeat(2000),
      error: { reason: "R".repeat(200), message: "e".repeat(5000), traceback: "t".repeat(9000) },
    },
    at,
  );
  const decoded = JSON.parse(encodeStatus(msg).toString()) as Record<string, unknown>;
  assert.deepEqual(Object.keys(decoded), [
    "v",
    "kind",
    "task",
    "attempt",
    "seq",
    "phase",
    "progress",
    "message",
    "result",
    "result_ref",
    "error",
    "worker",
    "at",
  ]);
  assert.equal(decoded.at, "2026-12-05T10:00:02.500Z");
  assert.equal((decoded.message as string).length, 1024);
  const error = decoded.error as { reason: string; message: string; traceback: string };
  assert.equal(error.reason.length, 128);
  assert.equal(error.message.length, 4096);
  assert.equal(error.traceback.length, 8192);
  assert.equal(decoded.result, null);
  assert.equal(decoded.progress, null);
});

test("json depth and Python's compact ASCII JSON length", () => {
  assert.equal(jsonDepth(1), 0);
  assert.equal(jsonDepth({ a: 1 }), 1);
  assert.equal(jsonDepth({ a: [[], { b: 1 }] }), 3);
  assert.equal(compactAsciiJsonLength({ a: "x" }), '{"a":"x"}'.length);
  // json.dumps({"a": "é"}, separators=(",", ":")) == '{"a":"\\u00e9"}'
  assert.equal(compactAsciiJsonLength({ a: "é" }), '{"a":"\\u00e9"}'.length);
  // an astral character is a surrogate pair: two escapes
  assert.equal(compactAsciiJsonLength("😀"), '"\\ud83d\\ude00"'.length);
  assert.equal(compactAsciiJsonLength(undefined), 4);
});
