/**
 * The TypeScript conformance worker: the handlers the conformance suite
 * (tests/conformance/) runs against every SDK, configured by the `ASYNCTASK_WORKER_*`
 * environment variables. Logs to stderr; serves until SIGTERM, then drains.
 *
 *   npm run build && node dist/conformance/worker.js
 */

import { createHash } from "node:crypto";
import { appendFileSync } from "node:fs";
import { Readable } from "node:stream";

import { Payload, StoredResult, TaskFailed, Worker, type TaskContext } from "../src";

type Req = Record<string, unknown> | null;

function field<T>(req: Req, key: string, fallback: T): T {
  const value = req?.[key];
  return value === undefined || value === null ? fallback : (value as T);
}

/** A timer that ignores the AbortSignal: a handler that does not stop when told. */
function stubbornWait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `conformance.blob`'s data: byte `i` is `i % 251`, made block by block, never whole. */
function* pattern(size: number): Generator<Buffer> {
  const block = Buffer.alloc(251 * 4096);
  for (let i = 0; i < block.length; i++) block[i] = i % 251;
  for (let left = size; left > 0; left -= block.length) {
    yield block.subarray(0, Math.min(left, block.length));
  }
}

/** The sha256 and size of a stored binary request, read as a stream. */
async function digest(req: unknown): Promise<{ sha256: string; size: number }> {
  if (!(req instanceof Payload)) {
    throw new TaskFailed("InvalidRequest", "conformance.digest takes a stored binary request");
  }
  const sha = createHash("sha256");
  let size = 0;
  for await (const chunk of req.stream()) {
    const bytes = chunk as Buffer;
    sha.update(bytes);
    size += bytes.length;
  }
  return { sha256: sha.digest("hex"), size };
}

export function conformanceWorker(): Worker {
  const worker = new Worker();
  worker.task("conformance.echo", (req: unknown) => req);
  worker.task("conformance.fail", (req: Req) => {
    throw new TaskFailed(
      field<string>(req, "reason", "Refused"),
      field<string>(req, "message", ""),
    );
  });
  worker.task("conformance.crash", (req: Req) => {
    throw new Error(field<string>(req, "message", "crash"));
  });
  worker.task("conformance.progress", async (req: Req, ctx: TaskContext) => {
    const steps = field<number[]>(req, "steps", []);
    const interval = field<number>(req, "intervalMs", 600);
    for (const p of steps) {
      ctx.progress(p, `step ${p}`);
      if (!(await ctx.sleep(interval))) ctx.throwIfCancelled();
    }
    return { steps: steps.length };
  });
  worker.task("conformance.sleep", async (req: Req, ctx: TaskContext) => {
    const seconds = field<number>(req, "seconds", 30);
    if (!(await ctx.sleep(seconds * 1000))) ctx.throwIfCancelled();
    return { slept: seconds };
  });
  worker.task("conformance.stubborn", async (req: Req) => {
    const seconds = field<number>(req, "seconds", 30);
    await stubbornWait(seconds * 1000);
    return { slept: seconds };
  });
  worker.task("conformance.big", (req: Req) => ({
    data: "x".repeat(field<number>(req, "bytes", 0)),
  }));
  worker.task("conformance.digest", digest);
  worker.task(
    "conformance.blob",
    (req: Req) => new StoredResult(Readable.from(pattern(field<number>(req, "bytes", 0)))),
  );
  worker.task("conformance.mark", async (req: Req, ctx: TaskContext) => {
    appendFileSync(field<string>(req, "path", ""), `${ctx.uid || ctx.name} ${ctx.attempt}\n`);
    const seconds = field<number>(req, "seconds", 0);
    if (seconds > 0 && !(await ctx.sleep(seconds * 1000))) ctx.throwIfCancelled();
    return { marked: true };
  });
  return worker;
}

if (require.main === module) {
  const worker = conformanceWorker().installSignalHandlers();
  worker.run().then(
    () => process.exit(0),
    (exc: unknown) => {
      process.stderr.write(`worker failed: ${String(exc)}\n`);
      process.exit(1);
    },
  );
}
