import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, test } from "node:test";

import { TaskFailed, TaskStopped } from "../src/errors";
import { TaskPayloads } from "../src/offload";
import { fromError } from "../src/outcome";
import {
  PayloadError,
  jsonResultPlan,
  retryDelayMs,
  verdictOf,
  type PayloadGrant,
  type PayloadRef,
} from "../src/payloads";
import {
  MalformedMessage,
  decodeTask,
  encodeStatus,
  statusMessage,
  type TaskMessage,
} from "../src/protocol";
import { Payload, StoredResult } from "../src/stored";

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** A stand-in for the store's presigned URLs: a plain HTTP server with scripted answers. */
interface Put {
  path: string;
  body: Buffer;
  length: string | undefined;
  chunked: boolean;
  type: string | undefined;
}
const objects = new Map<string, Buffer>();
const puts: Put[] = [];
/** Per path: statuses to answer before serving normally. */
const failures = new Map<string, number[]>();
let server: Server;
let base = "";

function handle(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url ?? "/";
  if (path === "/early") {
    // answers before it read the body, and closes: as a store refusing an expired URL
    res.writeHead(403, { connection: "close" }).end("<Error>Request has expired</Error>");
    req.socket.destroySoon();
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const fail = failures.get(path)?.shift();
    if (fail !== undefined) {
      res.writeHead(fail).end(fail === 403 ? "<Error>Request has expired</Error>" : "busy");
      return;
    }
    if (req.method === "PUT") {
      const body = Buffer.concat(chunks);
      puts.push({
        path,
        body,
        length: req.headers["content-length"],
        chunked: req.headers["transfer-encoding"] !== undefined,
        type: req.headers["content-type"],
      });
      objects.set(path, body);
      res.writeHead(200).end();
      return;
    }
    const obj = objects.get(path);
    if (obj === undefined) res.writeHead(404).end("NoSuchKey");
    else res.writeHead(200, { "content-length": obj.length }).end(obj);
  });
}

before(async () => {
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.close();
});

function grant(over: Partial<PayloadGrant> = {}): PayloadGrant {
  return {
    request_url: `${base}/req`,
    result_url: `${base}/res`,
    result_bucket: "bkt",
    result_key: "asynctask/ns/u1/result",
    threshold_bytes: 100,
    expires_at: null,
    ...over,
  };
}

function message(ref: PayloadRef | null, g: PayloadGrant | null, request: unknown = null) {
  const msg: TaskMessage = {
    v: 1,
    kind: "task",
    task: { uid: "u1", namespace: "ns", name: "t" },
    queue: "q",
    request,
    request_ref: ref,
    payload: g,
    attempt: 1,
    timeout_seconds: null,
    published_at: "2026-12-05T10:00:00Z",
  };
  return msg;
}

function ref(body: Buffer, contentType: string, over: Partial<PayloadRef> = {}): PayloadRef {
  return {
    bucket: "bkt",
    key: "asynctask/ns/uploads/1",
    size: body.length,
    contentType,
    sha256: sha(body),
    ...over,
  };
}

function payloads(msg: TaskMessage, retryMs = 10_000, signal = new AbortController().signal) {
  return new TaskPayloads(msg, { retryMs, signal });
}

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (exc) {
    return exc instanceof PayloadError ? `${exc.reason}: ${exc.message}` : `other: ${String(exc)}`;
  }
  return "no error";
}

test("a task message's request_ref and payload are read; a bad one is InvalidFields", () => {
  const r = { bucket: "bkt", key: "k", size: 3, contentType: "image/png", sha256: "a".repeat(64) };
  const body = JSON.stringify({
    task: { uid: "u1", namespace: "ns", name: "t" },
    queue: "q",
    request_ref: r,
    payload: { request_url: "http://x/r", result_url: null, threshold_bytes: 10 },
  });
  const msg = decodeTask(Buffer.from(body));
  assert.deepEqual(msg.request_ref, r);
  const g = msg.payload;
  assert.ok(g);
  assert.deepEqual([g.request_url, g.threshold_bytes, g.result_key], ["http://x/r", 10, null]);
  const plain = decodeTask(
    Buffer.from(JSON.stringify({ ...JSON.parse(body), request_ref: null, payload: undefined })),
  );
  assert.equal(plain.request_ref, null);
  assert.equal(plain.payload, null);
  const bad = JSON.stringify({ ...JSON.parse(body), request_ref: { ...r, sha256: "XYZ" } });
  assert.throws(
    () => decodeTask(Buffer.from(bad)),
    (e: unknown) => {
      return (
        e instanceof MalformedMessage &&
        e.reason === "InvalidFields" &&
        /request_ref\.sha256/.test(e.message)
      );
    },
  );
});

test("a status message carries result_ref between result and error, as the reference orders them", () => {
  const r = { bucket: "bkt", key: "k", size: 3, contentType: "a/b", sha256: "b".repeat(64) };
  const msg = statusMessage({ uid: "u", namespace: "ns", name: "t" }, 1, "Succeeded", "w", {
    result_ref: r,
  });
  const keys = Object.keys(JSON.parse(encodeStatus(msg).toString()) as object);
  assert.deepEqual(keys.slice(keys.indexOf("result"), keys.indexOf("error") + 1), [
    "result",
    "result_ref",
    "error",
  ]);
  assert.equal(statusMessage(msg.task, 1, "Processing", "w").result_ref, null);
});

test("the pure decisions: where a JSON result goes, what an answer means, the backoff", () => {
  assert.equal(jsonResultPlan(100, grant(), 65536), "inline");
  assert.equal(jsonResultPlan(101, grant(), 65536), "store");
  // a threshold above the inline limit never lets a result past the limit
  assert.equal(jsonResultPlan(70_000, grant({ threshold_bytes: 1 << 20 }), 65536), "store");
  assert.equal(jsonResultPlan(70_000, grant({ result_url: null }), 65536), "tooLarge");
  assert.equal(jsonResultPlan(70_000, null, 65536), "tooLarge");
  assert.equal(jsonResultPlan(65536, null, 65536), "inline");
  assert.deepEqual(
    [200, 204, 500, 503, 429, 408, 404, 400, 403].map((n) => verdictOf(n)),
    ["ok", "ok", "retry", "retry", "retry", "retry", "fatal", "fatal", "fatal"],
  );
  // a 403 is an expired URL when the store says so, or once the grant's expiry passed
  assert.equal(verdictOf(403, "<Code>AccessDenied</Code>Request has expired"), "expired");
  const now = new Date("2026-12-05T12:00:00Z");
  assert.equal(verdictOf(403, "AccessDenied", "2026-12-05T11:59:59Z", now), "expired");
  assert.equal(verdictOf(403, "AccessDenied", "2026-12-05T12:00:01Z", now), "fatal");
  assert.equal(jsonResultPlan(70_000, grant({ result_key: null }), 65536), "tooLarge");
  assert.deepEqual([0, 1, 2, 3, 4, 30].map(retryDelayMs), [500, 1000, 2000, 4000, 8000, 8000]);
  const out = fromError(new PayloadError("ResultUploadFailed", "the store is down"));
  assert.equal(out.phase, "Error");
  assert.equal(out.error?.reason, "ResultUploadFailed");
});

test("a binary request arrives as a Payload file, checked; its file is gone after dispose", async () => {
  const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
  objects.set("/req", bytes);
  const p = payloads(message(ref(bytes, "image/png"), grant()));
  const got = await p.request();
  assert.ok(got instanceof Payload);
  assert.deepEqual(
    [got.size, got.contentType, got.sha256],
    [bytes.length, "image/png", sha(bytes)],
  );
  assert.deepEqual(await got.read(), bytes);
  const streamed: Buffer[] = [];
  for await (const chunk of got.stream()) streamed.push(chunk as Buffer);
  assert.deepEqual(Buffer.concat(streamed), bytes);
  await p.dispose();
  assert.equal(existsSync(got.path), false);
});

test("a JSON request arrives parsed; an inline one unchanged", async () => {
  const doc = Buffer.from(JSON.stringify({ rows: [1, 2, 3], name: "é" }));
  objects.set("/req", doc);
  const p = payloads(message(ref(doc, "application/json; charset=utf-8"), grant()));
  assert.deepEqual(await p.request(), { rows: [1, 2, 3], name: "é" });
  await p.dispose();
  assert.deepEqual(await payloads(message(null, null, { a: 1 })).request(), { a: 1 });
});

test("a wrong sha256 is RequestChecksumMismatch; an expired URL PayloadUrlExpired; a 404 and bad JSON fail at once", async () => {
  const bytes = Buffer.from("some bytes");
  objects.set("/req", bytes);
  const wrong = ref(bytes, "text/plain", { sha256: sha(Buffer.from("other")) });
  assert.match(
    await reasonOf(payloads(message(wrong, grant())).request()),
    /^RequestChecksumMismatch: .*sha256/,
  );
  failures.set("/req", [403]);
  assert.match(
    await reasonOf(payloads(message(ref(bytes, "text/plain"), grant())).request()),
    /^PayloadUrlExpired: .*403/,
  );
  const gone = grant({ request_url: `${base}/nothing` });
  assert.match(
    await reasonOf(payloads(message(ref(bytes, "text/plain"), gone)).request()),
    /^RequestDownloadFailed: .*404/,
  );
  const notJson = Buffer.from("{not json");
  objects.set("/req", notJson);
  await assert.rejects(
    payloads(message(ref(notJson, "application/json"), grant())).request(),
    (e: unknown) => e instanceof TaskFailed && e.reason === "InvalidRequest",
  );
  const none = grant({ request_url: null });
  assert.match(
    await reasonOf(payloads(message(ref(bytes, "text/plain"), none)).request()),
    /^RequestDownloadFailed: .*no request_url/,
  );
});

test("5xx is retried within the bound, then RequestDownloadFailed with the cause", async () => {
  const bytes = Buffer.from("retried bytes");
  objects.set("/req", bytes);
  failures.set("/req", [503, 500]);
  const p = payloads(message(ref(bytes, "text/plain"), grant()));
  const got = await p.request();
  assert.ok(got instanceof Payload && got.sha256 === sha(bytes));
  await p.dispose();
  failures.set("/req", [503, 503, 503, 503]);
  const started = performance.now();
  const failed = await reasonOf(
    payloads(message(ref(bytes, "text/plain"), grant()), 1200).request(),
  );
  assert.match(failed, /^RequestDownloadFailed: .*2 tries.*PAYLOAD_RETRY_SECONDS.*503/);
  assert.ok(performance.now() - started >= 500); // it waited the first backoff
  failures.delete("/req");
});

test("bytes, a StoredResult of a stream or a file, and a Payload are stored by one PUT with Content-Length", async () => {
  const p = payloads(message(null, grant()));
  const bytes = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 256));
  const cases: [unknown, Buffer, string][] = [
    [bytes, bytes, "application/octet-stream"],
    [
      new StoredResult(Readable.from([bytes.subarray(0, 5), bytes.subarray(5)]), {
        contentType: "image/png",
      }),
      bytes,
      "image/png",
    ],
  ];
  const dir = await mkdtemp(join(tmpdir(), "payload-test-"));
  const file = join(dir, "out.bin");
  await writeFile(file, bytes);
  cases.push([new StoredResult(file, { contentType: "text/csv" }), bytes, "text/csv"]);
  cases.push([new Payload(file, bytes.length, "video/mp4", sha(bytes)), bytes, "video/mp4"]);
  for (const [value, expected, type] of cases) {
    puts.length = 0;
    const out = await p.result(value);
    assert.equal(out.phase, "Succeeded");
    assert.equal(out.result, null);
    assert.deepEqual(out.resultRef, {
      bucket: "bkt",
      key: "asynctask/ns/u1/result",
      size: expected.length,
      contentType: type,
      sha256: sha(expected),
    });
    assert.equal(puts.length, 1);
    const put = puts[0];
    assert.ok(put);
    assert.deepEqual(put.body, expected);
    assert.deepEqual([put.length, put.chunked, put.type], [String(expected.length), false, type]);
  }
  const missing = new StoredResult(join(dir, "absent.bin"));
  assert.match(await reasonOf(p.result(missing)), /^ResultUploadFailed: the result file .*absent/);
  await p.dispose();
  assert.ok(existsSync(file)); // the handler's own file is left alone
  await rm(dir, { recursive: true });
});

test("JSON over the threshold is stored as application/json; under it stays inline", async () => {
  const p = payloads(message(null, grant({ threshold_bytes: 50 })));
  const small = await p.result({ ok: true });
  assert.deepEqual(
    [small.phase, small.result, small.resultRef ?? null],
    ["Succeeded", { ok: true }, null],
  );
  puts.length = 0;
  const value = { data: "x".repeat(60) };
  const big = await p.result(value);
  const body = Buffer.from(JSON.stringify(value));
  assert.deepEqual(big.resultRef, {
    bucket: "bkt",
    key: "asynctask/ns/u1/result",
    size: body.length,
    contentType: "application/json",
    sha256: sha(body),
  });
  assert.deepEqual(JSON.parse(puts[0]?.body.toString() ?? "null"), value);
});

test("without a grant: big JSON is ResultTooLarge saying how to enable offload; bytes PayloadStorageOff", async () => {
  const p = payloads(message(null, null));
  const out = await p.result({ data: "x".repeat(70_000) });
  const error = out.error;
  assert.ok(error);
  assert.equal(error.reason, "ResultTooLarge");
  assert.match(error.message, /ASYNCTASK_S3_ENDPOINT/);
  assert.match(
    await reasonOf(p.result(Buffer.from("x"))),
    /^PayloadStorageOff: .*ASYNCTASK_S3_ENDPOINT/,
  );
});

test("an unreachable store: the upload is retried, then ResultUploadFailed with the cause", async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) =>
    closed.close(() => {
      resolve();
    }),
  );
  const p = payloads(message(null, grant({ result_url: `http://127.0.0.1:${port}/res` })), 1200);
  assert.match(
    await reasonOf(p.result(Buffer.from("abc"))),
    /^ResultUploadFailed: .*2 tries.*ECONNREFUSED/,
  );
  failures.set("/res", [502]);
  const ok = await payloads(message(null, grant())).result(Buffer.from("after a 502"));
  assert.equal(ok.resultRef?.sha256, sha(Buffer.from("after a 502")));
});

test("a 403 answered before the store read the body is PayloadUrlExpired", async () => {
  const p = payloads(message(null, grant({ result_url: `${base}/early` })), 1200);
  const failed = await reasonOf(p.result(Buffer.alloc(16 * 1024 * 1024, 1)));
  assert.match(failed, /^PayloadUrlExpired: .*403/);
});

test("a cancel stops a transfer waiting for its retry", async () => {
  const bytes = Buffer.from("cancelled");
  objects.set("/req", bytes);
  failures.set("/req", [503, 503, 503, 503, 503]);
  const stop = new AbortController();
  const pending = payloads(
    message(ref(bytes, "text/plain"), grant()),
    60_000,
    stop.signal,
  ).request();
  setTimeout(() => {
    stop.abort(new TaskStopped("Cancelled"));
  }, 200);
  await assert.rejects(pending, (e: unknown) => e instanceof TaskStopped);
  failures.delete("/req");
});
