/**
 * The AsyncTask wire protocol, version 1 (docs/protocol.md): message shapes, ids, decoding
 * with the reference implementation's refusal reasons, encoding of status messages.
 *
 * Pure: no I/O. The Python models in `asynctask_worker/messages.py` are the reference.
 */

import { readGrant, readRef, type PayloadGrant, type PayloadRef } from "./payloads";

export const SCHEMA_VERSION = 1;
export const CONTENT_TYPE = "application/json";
/** How deep a request or result may nest (a scalar is 0, `{"a": 1}` is 1). */
export const MAX_REQUEST_DEPTH = 100;
/** How deep a whole document may nest before the reference parser refuses it (`TooDeep`). */
export const MAX_DOCUMENT_DEPTH = 200;
export const MAX_MESSAGE_CHARS = 1024;
export const MAX_ERROR_CHARS = 4096;
export const MAX_TRACEBACK_CHARS = 8192;
export const MAX_REASON_CHARS = 128;
export const MAX_WORKER_CHARS = 253;

export type Phase =
  "Pending" | "Processing" | "Succeeded" | "Failed" | "Error" | "Cancelled" | "TimedOut";

export function isTerminal(phase: Phase): boolean {
  return phase !== "Pending" && phase !== "Processing";
}

/** Which AsyncTask object a message is about. */
export interface TaskRef {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
}

/** Operator → worker: run this task. */
export interface TaskMessage {
  readonly v: 1;
  readonly kind: "task";
  readonly task: TaskRef;
  readonly queue: string;
  readonly request: unknown;
  /** The request in object storage instead of `request` (docs/payloads.md). */
  readonly request_ref: PayloadRef | null;
  /** Presigned URLs for this attempt's stored request and result, when storage is on. */
  readonly payload: PayloadGrant | null;
  readonly attempt: number;
  readonly timeout_seconds: number | null;
  readonly published_at: string;
}

export interface ErrorInfo {
  readonly reason: string;
  readonly message: string;
  readonly traceback: string | null;
}

/** Worker → operator: what happened to a task. */
export interface StatusMessage {
  readonly v: 1;
  readonly kind: "status";
  readonly task: TaskRef;
  readonly attempt: number;
  readonly seq: number;
  readonly phase: Phase;
  readonly progress: number | null;
  readonly message: string | null;
  readonly result: unknown;
  /** A Succeeded result stored in object storage instead of `result`. */
  readonly result_ref: PayloadRef | null;
  readonly error: ErrorInfo | null;
  readonly worker: string | null;
  readonly at: string;
  /**
   * When the attempt's handler started, on a terminal message of an attempt whose
   * `Processing` was never sent (it ended within the start window): the operator records it
   * as `status.startTime`. Absent otherwise.
   */
  readonly started_at?: string;
}

/** Operator → every worker: stop a task if you run it. */
export interface ControlMessage {
  readonly v: 1;
  readonly kind: "control";
  readonly action: "cancel" | "timeout";
  readonly task: TaskRef;
  readonly reason: string;
}

export type MalformedReason =
  | "NotUtf8"
  | "NotJson"
  | "TooDeep"
  | "NotAnObject"
  | "UnknownVersion"
  | "WrongKind"
  | "InvalidFields";

/** A body that is not a valid message of the expected kind and version. */
export class MalformedMessage extends Error {
  constructor(
    message: string,
    readonly reason: MalformedReason = "InvalidFields",
  ) {
    super(message);
    this.name = "MalformedMessage";
  }
}

export function taskMessageId(uid: string, attempt: number): string {
  return `task:${uid}:${attempt}`;
}

export function statusMessageId(uid: string, attempt: number, seq: number): string {
  return `status:${uid}:${attempt}:${seq}`;
}

export function controlMessageId(action: string, uid: string): string {
  return `control:${action}:${uid}`;
}

/** How deep a JSON value nests (a scalar is 0), without recursion: safe on any input. */
export function jsonDepth(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [node, depth] = item;
    if (node === null || typeof node !== "object") continue;
    deepest = Math.max(deepest, depth + 1);
    const children: unknown[] = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) stack.push([child, depth + 1]);
  }
  return deepest;
}

/**
 * The length of `value` as compact JSON with non-ASCII characters escaped as `\uXXXX`
 * (what Python's `json.dumps(value, separators=(",", ":"))` writes). Throws on values that
 * are not JSON (a BigInt, a cycle).
 */
export function compactAsciiJsonLength(value: unknown): number {
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) return 4; // null
  let extra = 0;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) extra += 5; // one UTF-16 unit becomes \uXXXX
  }
  return text.length + extra;
}

const UID = /^[A-Za-z0-9-]+$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function parseBody(body: Buffer | Uint8Array, model: string): Obj {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch (exc) {
    throw new MalformedMessage(`not a valid ${model}: not UTF-8 (${String(exc)})`, "NotUtf8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (exc) {
    const reason = exc instanceof RangeError ? "TooDeep" : "NotJson";
    throw new MalformedMessage(`not a valid ${model}: ${String(exc)}`, reason);
  }
  if (jsonDepth(value) > MAX_DOCUMENT_DEPTH) {
    throw new MalformedMessage(
      `not a valid ${model}: nested deeper than ${MAX_DOCUMENT_DEPTH} levels`,
      "TooDeep",
    );
  }
  if (!isObject(value)) {
    throw new MalformedMessage(`not a valid ${model}: not a JSON object`, "NotAnObject");
  }
  return value;
}

function checkVersionAndKind(obj: Obj, model: string, kind: string): void {
  if ("v" in obj && obj.v !== SCHEMA_VERSION) {
    throw new MalformedMessage(
      `not a valid ${model}: v: expected ${SCHEMA_VERSION}, got ${JSON.stringify(obj.v)}`,
      "UnknownVersion",
    );
  }
  if ("kind" in obj && obj.kind !== kind) {
    throw new MalformedMessage(
      `not a valid ${model}: kind: expected "${kind}", got ${JSON.stringify(obj.kind)}`,
      "WrongKind",
    );
  }
}

function invalid(model: string, field: string, why: string): MalformedMessage {
  return new MalformedMessage(`not a valid ${model}: ${field}: ${why}`, "InvalidFields");
}

function checkString(
  model: string,
  field: string,
  value: unknown,
  max: number,
  pattern?: RegExp,
): string {
  if (typeof value !== "string") throw invalid(model, field, "a string is required");
  if (value.length < 1 || value.length > max) {
    throw invalid(model, field, `1 to ${max} characters are required`);
  }
  if (pattern !== undefined && !pattern.test(value)) {
    throw invalid(model, field, `must match ${pattern.source}`);
  }
  return value;
}

function checkTaskRef(model: string, value: unknown): TaskRef {
  if (!isObject(value)) throw invalid(model, "task", "an object is required");
  return {
    uid: checkString(model, "task.uid", value.uid, 64, UID),
    namespace: checkString(model, "task.namespace", value.namespace, 63, DNS_LABEL),
    name: checkString(model, "task.name", value.name, 253, DNS_SUBDOMAIN),
  };
}

function checkInt(model: string, field: string, value: unknown, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw invalid(model, field, "an integer is required");
  }
  if (value < min) throw invalid(model, field, `must be at least ${min}`);
  return value;
}

/** Parse a task message body; throws {@link MalformedMessage} with the reference's reasons. */
export function decodeTask(body: Buffer | Uint8Array): TaskMessage {
  const model = "TaskMessage";
  const obj = parseBody(body, model);
  checkVersionAndKind(obj, model, "task");
  const task = checkTaskRef(model, obj.task);
  const fail = (field: string, why: string): Error => invalid(model, field, why);
  if (typeof obj.queue !== "string") throw invalid(model, "queue", "a string is required");
  const attempt = "attempt" in obj ? checkInt(model, "attempt", obj.attempt, 1) : 1;
  const timeout =
    obj.timeout_seconds === undefined || obj.timeout_seconds === null
      ? null
      : checkInt(model, "timeout_seconds", obj.timeout_seconds, 1);
  let publishedAt = new Date().toISOString();
  if (obj.published_at !== undefined) {
    const raw = obj.published_at;
    const ok =
      (typeof raw === "string" && !Number.isNaN(Date.parse(raw))) || typeof raw === "number";
    if (!ok) throw invalid(model, "published_at", "a date and time is required");
    publishedAt = typeof raw === "number" ? new Date(raw * 1000).toISOString() : raw;
  }
  return {
    v: SCHEMA_VERSION,
    kind: "task",
    task,
    queue: obj.queue,
    request: obj.request ?? null,
    request_ref: readRef(obj.request_ref, "request_ref", fail),
    payload: readGrant(obj.payload, fail),
    attempt,
    timeout_seconds: timeout,
    published_at: publishedAt,
  };
}

/** Parse a control message body; throws {@link MalformedMessage}. */
export function decodeControl(body: Buffer | Uint8Array): ControlMessage {
  const model = "ControlMessage";
  const obj = parseBody(body, model);
  checkVersionAndKind(obj, model, "control");
  if (obj.action !== "cancel" && obj.action !== "timeout") {
    throw invalid(model, "action", 'must be "cancel" or "timeout"');
  }
  const task = checkTaskRef(model, obj.task);
  const reason = obj.reason ?? "";
  if (typeof reason !== "string") throw invalid(model, "reason", "a string is required");
  return { v: SCHEMA_VERSION, kind: "control", action: obj.action, task, reason };
}

export interface StatusFields {
  readonly progress?: number | null;
  readonly message?: string | null;
  readonly result?: unknown;
  readonly result_ref?: PayloadRef | null;
  readonly error?: ErrorInfo | null;
}

/** A status message with its strings cut to the protocol's limits (seq set when sent). */
export function statusMessage(
  task: TaskRef,
  attempt: number,
  phase: Phase,
  worker: string,
  fields: StatusFields = {},
  at: Date = new Date(),
): StatusMessage {
  const error = fields.error ?? null;
  return {
    v: SCHEMA_VERSION,
    kind: "status",
    task: { uid: task.uid, namespace: task.namespace, name: task.name },
    attempt,
    seq: 0,
    phase,
    progress: fields.progress ?? null,
    message: fields.message == null ? null : fields.message.slice(0, MAX_MESSAGE_CHARS),
    result: fields.result ?? null,
    result_ref: fields.result_ref ?? null,
    error:
      error === null
        ? null
        : {
            reason: error.reason.slice(0, MAX_REASON_CHARS) || "Error",
            message: error.message.slice(0, MAX_ERROR_CHARS),
            traceback:
              error.traceback === null ? null : error.traceback.slice(-MAX_TRACEBACK_CHARS),
          },
    worker: worker.slice(0, MAX_WORKER_CHARS),
    at: at.toISOString(),
  };
}

/** The body of a status message: compact JSON, fields in the reference's order. */
export function encodeStatus(msg: StatusMessage): Buffer {
  return Buffer.from(JSON.stringify(msg), "utf-8");
}
