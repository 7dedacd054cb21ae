/**
 * The public faces of stored payloads: {@link Payload}, a request a handler receives as a
 * file (any content type but JSON), and {@link StoredResult}, a result a handler returns to
 * be stored from a file or a stream, never held in memory whole.
 */

import { createReadStream, createWriteStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";

import { BINARY_CONTENT_TYPE, PayloadError } from "./payloads";

/** A stored request, downloaded to a local file and checked against its sha256. */
export class Payload {
  constructor(
    /** The downloaded file; it is removed when the task ends. */
    readonly path: string,
    readonly size: number,
    readonly contentType: string,
    /** The sha256 of the bytes, lowercase hex (checked against the task's `requestRef`). */
    readonly sha256: string,
  ) {}

  /** The bytes as a stream (read from the file). */
  stream(): Readable {
    return createReadStream(this.path);
  }

  /** The bytes, whole: for small payloads only. */
  read(): Promise<Buffer> {
    return readFile(this.path);
  }
}

/** What a {@link StoredResult} is made of: a file's path, bytes, or a stream of bytes. */
export type StoredSource =
  | string
  | Uint8Array
  | Payload
  | Readable
  | WebReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>;

export interface StoredResultOptions {
  /** The result's content type (default `application/octet-stream`). */
  contentType?: string;
}

/**
 * A result to store in object storage as it is (bytes, not JSON), streamed from a file's
 * path, a Node or web stream, or bytes. A handler may also return a `Buffer`/`Uint8Array`
 * (stored as `application/octet-stream`) or a {@link Payload}.
 */
export class StoredResult {
  readonly contentType: string;

  constructor(
    readonly source: StoredSource,
    options: StoredResultOptions = {},
  ) {
    this.contentType =
      options.contentType ?? (source instanceof Payload ? source.contentType : BINARY_CONTENT_TYPE);
  }
}

/** Bytes to upload, which can be read again from the start (for a retry). */
export interface UploadBody {
  readonly size: number;
  readonly contentType: string;
  open(): Readable;
}

function fromFile(path: string, size: number, contentType: string): UploadBody {
  return { size, contentType, open: () => createReadStream(path) };
}

function fromBytes(bytes: Uint8Array, contentType: string): UploadBody {
  const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { size: chunk.byteLength, contentType, open: () => Readable.from([chunk]) };
}

function toReadable(source: Exclude<StoredSource, string | Uint8Array | Payload>): Readable {
  if (source instanceof Readable) return source;
  if (typeof (source as WebReadableStream<Uint8Array>).getReader === "function") {
    return Readable.fromWeb(source as WebReadableStream<Uint8Array>);
  }
  return Readable.from(source as AsyncIterable<Uint8Array>);
}

/**
 * The body of a stored result. A stream is read once, into a file of `spoolDir` (its size
 * must be known before the upload, which sends a `Content-Length`, and a retry reads it again).
 */
export async function uploadBody(result: StoredResult, spoolDir: string): Promise<UploadBody> {
  const { source, contentType } = result;
  if (typeof source === "string") {
    try {
      return fromFile(source, (await stat(source)).size, contentType);
    } catch (exc) {
      const why = exc instanceof Error ? exc.message : String(exc);
      throw new PayloadError("ResultUploadFailed", `the result file ${source}: ${why}`);
    }
  }
  if (source instanceof Payload) return fromFile(source.path, source.size, contentType);
  if (source instanceof Uint8Array) return fromBytes(source, contentType);
  const path = join(spoolDir, "result");
  await pipeline(toReadable(source), createWriteStream(path));
  return fromFile(path, (await stat(path)).size, contentType);
}

/** The body of bytes a handler returned. */
export function bytesBody(bytes: Uint8Array, contentType = BINARY_CONTENT_TYPE): UploadBody {
  return fromBytes(bytes, contentType);
}
