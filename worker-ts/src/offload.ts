/**
 * A task attempt's stored payloads, for the dispatcher: the request fetched before the
 * handler runs (a JSON value as today, anything else as a {@link Payload}), the result stored
 * after it returned (bytes, a {@link StoredResult}, a {@link Payload}, or JSON over the
 * grant's threshold), and the attempt's temporary files removed at the end.
 */

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { TaskFailed } from "./errors";
import { MAX_RESULT_BYTES, inlineResult, jsonView, storedResult, type Outcome } from "./outcome";
import {
  ENABLE_OFFLOAD,
  JSON_CONTENT_TYPE,
  PayloadError,
  isJsonType,
  jsonResultPlan,
  resultRefOf,
  resultTarget,
  type PayloadGrant,
} from "./payloads";
import type { TaskMessage } from "./protocol";
import { Payload, StoredResult, bytesBody, uploadBody, type UploadBody } from "./stored";
import { download, upload, type TransferOptions } from "./transfer";

export class TaskPayloads {
  private dir: string | null = null;

  constructor(
    private readonly msg: TaskMessage,
    private readonly options: TransferOptions,
    private readonly maxResultBytes = MAX_RESULT_BYTES,
  ) {}

  private async workdir(): Promise<string> {
    this.dir ??= await mkdtemp(join(tmpdir(), "asynctask-payload-"));
    return this.dir;
  }

  /** What the handler receives: the inline request, or the stored one fetched and checked. */
  async request(): Promise<unknown> {
    const ref = this.msg.request_ref;
    if (ref === null) return this.msg.request;
    const url = this.msg.payload?.request_url ?? null;
    if (url === null) {
      throw new PayloadError(
        "RequestDownloadFailed",
        "the task's request is stored (request_ref) but its task message has no request_url",
      );
    }
    const path = join(await this.workdir(), "request");
    const got = await download(url, path, this.options);
    if (got.size !== ref.size || got.sha256 !== ref.sha256) {
      throw new PayloadError(
        "RequestChecksumMismatch",
        `the stored request ${ref.key} has ${got.size} bytes of sha256 ${got.sha256}; ` +
          `its requestRef says ${ref.size} bytes of sha256 ${ref.sha256}`,
      );
    }
    if (!isJsonType(ref.contentType))
      return new Payload(path, got.size, ref.contentType, got.sha256);
    const text = await readFile(path, "utf-8");
    await rm(path, { force: true });
    try {
      return JSON.parse(text) as unknown;
    } catch (exc) {
      // As an inline request that does not fit the handler: Failed, retrying will not help.
      const why = exc instanceof Error ? exc.message : String(exc);
      throw new TaskFailed(
        "InvalidRequest",
        `the request is not valid: the stored request ${ref.key} is ${ref.contentType} but not JSON: ${why}`,
      );
    }
  }

  /** The attempt's outcome for what the handler returned, after storing it if it must be. */
  async result(value: unknown): Promise<Outcome> {
    const grant = this.msg.payload;
    if (value instanceof StoredResult || value instanceof Payload) {
      const stored = value instanceof Payload ? new StoredResult(value) : value;
      return this.store(grant, await uploadBody(stored, await this.workdir()), "a stored result");
    }
    if (value instanceof Uint8Array) return this.store(grant, bytesBody(value), "bytes");
    const view = jsonView(value);
    if ("failed" in view) return view.failed;
    if (jsonResultPlan(view.size, grant, this.maxResultBytes) !== "store") {
      return inlineResult(view.sent, view.size, this.maxResultBytes);
    }
    const json = Buffer.from(JSON.stringify(view.sent), "utf-8");
    return this.store(grant, bytesBody(json, JSON_CONTENT_TYPE), "JSON");
  }

  private async store(
    grant: PayloadGrant | null,
    body: UploadBody,
    what: string,
  ): Promise<Outcome> {
    const target = resultTarget(grant);
    if (target === null || target.result_url === null) {
      throw new PayloadError(
        "PayloadStorageOff",
        `the handler returned ${what} (${body.size} bytes) to store, but the task message ` +
          `has no grant to store a result. ${ENABLE_OFFLOAD}`,
      );
    }
    const sent = await upload(target.result_url, body, this.options);
    return storedResult(resultRefOf(target, sent.size, body.contentType, sent.sha256));
  }

  /** Remove the attempt's temporary files (the downloaded request, a spooled result). */
  async dispose(): Promise<void> {
    if (this.dir !== null) await rm(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}
