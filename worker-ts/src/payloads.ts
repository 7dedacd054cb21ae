/**
 * Large payloads on the wire (docs/payloads.md), pure: the shapes of a stored object's
 * reference and of the operator's grant, their decoding, the error reasons, and the
 * decisions the transfers make (retry or not, store a result or inline it).
 *
 * The Python models in `asynctask_worker/payloads.py` are the reference. A `PayloadRef` is
 * always written with camelCase names (`contentType`); a grant's fields are snake_case.
 */

export const JSON_CONTENT_TYPE = "application/json";
export const BINARY_CONTENT_TYPE = "application/octet-stream";
export const DEFAULT_THRESHOLD_BYTES = 64 * 1024;

/** One stored object: `spec.requestRef`, `status.resultRef`, `request_ref`, `result_ref`. */
export interface PayloadRef {
  readonly bucket: string;
  readonly key: string;
  readonly size: number;
  readonly contentType: string;
  readonly sha256: string;
}

/** The operator's presigned URLs for one task attempt (a task message's `payload`). */
export interface PayloadGrant {
  /** GET of the task's `request_ref` object; null when the request is inline. */
  readonly request_url: string | null;
  /** PUT of the task's result object (`result_bucket`/`result_key`). */
  readonly result_url: string | null;
  readonly result_bucket: string | null;
  readonly result_key: string | null;
  /** A result whose JSON (or bytes) is larger than this goes to `result_url`. */
  readonly threshold_bytes: number;
  readonly expires_at: string | null;
}

/** The reasons a task ends in `Error` because of its stored payloads. */
export type PayloadReason =
  | "RequestChecksumMismatch"
  | "RequestDownloadFailed"
  | "ResultUploadFailed"
  | "PayloadUrlExpired"
  | "PayloadStorageOff";

/** A stored payload could not be read or written: the task ends `Error` with `reason`. */
export class PayloadError extends Error {
  constructor(
    readonly reason: PayloadReason,
    message: string,
  ) {
    super(message);
    this.name = "PayloadError";
  }
}

/** How to turn offload on, for the messages of errors that happen without it. */
export const ENABLE_OFFLOAD =
  "Turn on large payloads (ASYNCTASK_S3_ENDPOINT and ASYNCTASK_S3_BUCKET for the operator, " +
  "docs/payloads.md) to store it in object storage.";

type Fail = (field: string, why: string) => Error;
type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function str(fail: Fail, field: string, value: unknown, min: number, max: number): string {
  if (typeof value !== "string") throw fail(field, "a string is required");
  if (value.length < min || value.length > max) {
    throw fail(field, `${min} to ${max} characters are required`);
  }
  return value;
}

function optionalStr(fail: Fail, field: string, value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string") throw fail(field, "a string or null is required");
  return value;
}

function nonNegativeInt(fail: Fail, field: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw fail(field, "an integer of at least 0 is required");
  }
  return value;
}

/** Read a stored object's reference (`field` names it in errors); null if absent. */
export function readRef(value: unknown, field: string, fail: Fail): PayloadRef | null {
  if (value === undefined || value === null) return null;
  if (!isObject(value)) throw fail(field, "an object is required");
  const contentType = value.contentType ?? value.content_type ?? BINARY_CONTENT_TYPE;
  const sha256 = str(fail, `${field}.sha256`, value.sha256, 64, 64);
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw fail(`${field}.sha256`, "64 lowercase hex digits");
  return {
    bucket: str(fail, `${field}.bucket`, value.bucket, 3, 63),
    key: str(fail, `${field}.key`, value.key, 1, 1024),
    size: nonNegativeInt(fail, `${field}.size`, value.size),
    contentType: str(fail, `${field}.contentType`, contentType, 1, 255),
    sha256,
  };
}

/** Read a task message's `payload`; null if absent. */
export function readGrant(value: unknown, fail: Fail): PayloadGrant | null {
  if (value === undefined || value === null) return null;
  if (!isObject(value)) throw fail("payload", "an object is required");
  const threshold = value.threshold_bytes;
  return {
    request_url: optionalStr(fail, "payload.request_url", value.request_url),
    result_url: optionalStr(fail, "payload.result_url", value.result_url),
    result_bucket: optionalStr(fail, "payload.result_bucket", value.result_bucket),
    result_key: optionalStr(fail, "payload.result_key", value.result_key),
    threshold_bytes:
      threshold === undefined || threshold === null
        ? DEFAULT_THRESHOLD_BYTES
        : nonNegativeInt(fail, "payload.threshold_bytes", threshold),
    expires_at: optionalStr(fail, "payload.expires_at", value.expires_at),
  };
}

/** A JSON value as a whole: handlers see the parsed value (parameters ignored). */
export function isJsonType(contentType: string): boolean {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase() === JSON_CONTENT_TYPE;
}

/** The grant, if it can store a result (its URL, bucket and key all given), else null. */
export function resultTarget(grant: PayloadGrant | null): PayloadGrant | null {
  if (grant === null) return null;
  const { result_url, result_bucket, result_key } = grant;
  return result_url && result_bucket && result_key ? grant : null;
}

/**
 * Where a JSON result of `size` bytes (compact, ASCII-escaped) goes: inline while it is within
 * both the grant's threshold and the inline limit, else `store` when the grant can store a
 * result, else `tooLarge`.
 */
export function jsonResultPlan(
  size: number,
  grant: PayloadGrant | null,
  inlineLimit: number,
): "inline" | "store" | "tooLarge" {
  const target = resultTarget(grant);
  const threshold = target === null ? inlineLimit : Math.min(target.threshold_bytes, inlineLimit);
  if (size <= threshold) return "inline";
  return target === null ? "tooLarge" : "store";
}

/** What one HTTP answer of the store means for a transfer. */
export type Verdict = "ok" | "retry" | "expired" | "fatal";

/**
 * 2xx ok; 5xx, 408 and 429 are worth a retry; a 403 whose body says so, or past the grant's
 * `expires_at`, is an expired URL; anything else is fatal.
 */
export function verdictOf(
  status: number,
  body = "",
  expiresAt: string | null = null,
  now: Date = new Date(),
): Verdict {
  if (status >= 200 && status < 300) return "ok";
  if (status >= 500 || status === 408 || status === 429) return "retry";
  if (status === 403) {
    const past = expiresAt !== null && now.getTime() >= Date.parse(expiresAt);
    if (past || body.toLowerCase().includes("expired")) return "expired";
  }
  return "fatal";
}

/** Delay before retry `n` (0-based): 0.5 s doubling, at most 8 s (as the Python SDK). */
export function retryDelayMs(n: number): number {
  return Math.min(8000, 500 * 2 ** Math.min(n, 10));
}

/** The reference of a task's stored result, from the grant and what was uploaded. */
export function resultRefOf(
  target: PayloadGrant,
  size: number,
  contentType: string,
  sha256: string,
): PayloadRef {
  const bucket = target.result_bucket ?? "";
  const key = target.result_key ?? "";
  return { bucket, key, size, contentType, sha256 };
}
