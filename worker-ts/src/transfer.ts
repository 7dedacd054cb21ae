/**
 * Moving a task's stored payloads over HTTP with the operator's presigned URLs (a streaming
 * `fetch` down, a streaming `http.request` up): no storage library, no credentials.
 *
 * A download streams into a file while its sha256 is computed; an upload is one PUT with a
 * `Content-Length`, its sha256 computed while it streams. An unreachable store, a 5xx (or
 * 408/429) answer or a connection cut mid-transfer is retried from the start with backoff
 * for up to `retryMs`, then the task ends `Error` with the cause; a 403 saying so (or past the
 * grant's expiry) is an expired URL (`PayloadUrlExpired`); any other answer ends it at once.
 */

import { createHash, type Hash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";

import { sleep } from "./link";
import { PayloadError, retryDelayMs, verdictOf, type PayloadReason } from "./payloads";
import type { UploadBody } from "./stored";

export interface TransferOptions {
  /** How long an unreachable store or a 5xx is retried (ASYNCTASK_WORKER_PAYLOAD_RETRY_SECONDS). */
  readonly retryMs: number;
  /** The task's signal: a cancel stops the transfer. */
  readonly signal: AbortSignal;
  /** When the grant's URLs stop working (a 403 after it is an expired URL). */
  readonly expiresAt?: string | null;
}

/** The bytes that went through: how many, and their sha256 (lowercase hex). */
export interface Transferred {
  readonly size: number;
  readonly sha256: string;
}

/** A failure worth another try (the store unreachable, 5xx, a cut connection). */
class Transient extends Error {}

/** Counts and hashes the bytes passing through. */
class Digest extends Transform {
  private readonly hash: Hash = createHash("sha256");
  size = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }

  hex(): string {
    return this.hash.digest("hex");
  }
}

function cause(exc: unknown): string {
  if (!(exc instanceof Error)) return String(exc);
  const inner = exc.cause;
  const detail =
    inner instanceof Error
      ? ((inner as NodeJS.ErrnoException).code ?? inner.message)
      : typeof inner === "string"
        ? inner
        : "";
  return detail ? `${exc.message} (${detail})` : exc.message;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").slice(0, 300);
}

async function answerText(res: Response): Promise<string> {
  try {
    return oneLine(await res.text());
  } catch {
    return "";
  }
}

/** Judge an answer that is not 2xx: throw what it means. */
function judge(
  answer: Answer,
  what: string,
  failReason: PayloadReason,
  options: TransferOptions,
): never {
  const verdict = verdictOf(answer.status, answer.body, options.expiresAt ?? null);
  const text =
    `${what}: the store answered ${answer.status} ${answer.statusText} ${answer.body}`.trim();
  if (verdict === "retry") throw new Transient(text);
  if (verdict === "expired") {
    throw new PayloadError(
      "PayloadUrlExpired",
      `${text}: the presigned URL expired; the operator presigns new ones for each attempt ` +
        "(ASYNCTASK_S3_URL_SECONDS sets their lifetime)",
    );
  }
  throw new PayloadError(failReason, text);
}

interface Answer {
  readonly status: number;
  readonly statusText: string;
  readonly body: string;
}

/**
 * One streaming PUT with `node:http(s)`: Node 20's `fetch` holds a streamed request body in
 * memory as it sends it (a 1 GiB upload grew the process by 1 GiB), `http.request` with a
 * pipeline does not. An answer that comes while the body is still being sent (an expired
 * URL) is the answer, not the broken pipe that follows it.
 */
function put(
  url: string,
  source: Readable,
  size: number,
  type: string,
  signal: AbortSignal,
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const target = new URL(url);
    const send = { "http:": httpRequest, "https:": httpsRequest }[target.protocol];
    if (send === undefined) {
      reject(new PayloadError("ResultUploadFailed", `not an http(s) URL: ${target.protocol}`));
      return;
    }
    let failed: Error | null = null;
    let answered = false;
    const headers = { "content-length": String(size), "content-type": type };
    const req = send(target, { method: "PUT", headers, signal }, (res) => {
      answered = true;
      let body = "";
      res.setEncoding("utf-8");
      res.on("data", (text: string) => {
        if (body.length < 8192) body += text;
      });
      res.on("error", reject);
      res.on("end", () => {
        resolve({
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? "",
          body: oneLine(body),
        });
      });
    });
    req.on("error", (exc) => {
      failed ??= exc;
    });
    req.on("close", () => {
      if (!answered) reject(failed ?? new Error("the connection closed without an answer"));
    });
    pipeline(source, req).catch((exc: unknown) => {
      failed ??= exc instanceof Error ? exc : new Error(String(exc));
    });
  });
}

async function withRetry<T>(
  what: string,
  failReason: PayloadReason,
  options: TransferOptions,
  once: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  for (let n = 0; ; n++) {
    try {
      return await once();
    } catch (exc) {
      if (options.signal.aborted) throw options.signal.reason ?? exc;
      if (exc instanceof PayloadError) throw exc;
      const elapsed = performance.now() - started;
      const delay = retryDelayMs(n);
      if (elapsed + delay > options.retryMs) {
        const bound = (options.retryMs / 1000).toFixed(0);
        throw new PayloadError(
          failReason,
          `${what} failed after ${n + 1} tries in ${(elapsed / 1000).toFixed(1)}s ` +
            `(ASYNCTASK_WORKER_PAYLOAD_RETRY_SECONDS=${bound}): ${cause(exc)}`,
        );
      }
      await sleep(delay, options.signal);
    }
  }
}

/** GET `url` into the file `path` (overwritten at each try); its size and sha256. */
export function download(
  url: string,
  path: string,
  options: TransferOptions,
): Promise<Transferred> {
  const what = "the request's download";
  return withRetry(what, "RequestDownloadFailed", options, async () => {
    const res = await fetch(url, { signal: options.signal });
    if (!res.ok) {
      const answer = {
        status: res.status,
        statusText: res.statusText,
        body: await answerText(res),
      };
      judge(answer, what, "RequestDownloadFailed", options);
    }
    if (res.body === null) throw new Transient(`${what}: the store's answer has no body`);
    const digest = new Digest();
    const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
    await pipeline(body, digest, createWriteStream(path), { signal: options.signal });
    return { size: digest.size, sha256: digest.hex() };
  });
}

/** PUT `body` to `url`, streaming with its `Content-Length`; its size and sha256. */
export function upload(
  url: string,
  body: UploadBody,
  options: TransferOptions,
): Promise<Transferred> {
  const what = "the result's upload";
  return withRetry(what, "ResultUploadFailed", options, async () => {
    const digest = new Digest();
    const source = body.open();
    source.on("error", (exc: Error) => digest.destroy(exc));
    digest.on("close", () => source.destroy());
    const answer = await put(url, source.pipe(digest), body.size, body.contentType, options.signal);
    if (verdictOf(answer.status) !== "ok") judge(answer, what, "ResultUploadFailed", options);
    if (digest.size !== body.size) {
      throw new PayloadError(
        "ResultUploadFailed",
        `${what}: ${digest.size} bytes were sent of ${body.size} (the file changed while it was sent)`,
      );
    }
    return { size: digest.size, sha256: digest.hex() };
  });
}
