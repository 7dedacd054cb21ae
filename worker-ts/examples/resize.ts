/**
 * An example worker: serves the queue `resize` (AsyncTasks with `spec.queue: resize`).
 *
 *   ASYNCTASK_WORKER_AMQP_URL=amqp://... node dist/examples/resize.js
 */

import { TaskFailed, Worker, type TaskContext } from "../src";

interface Resize {
  url: string;
  width: number;
}

export async function resize(req: Resize, ctx: TaskContext): Promise<{ thumbnail: string }> {
  if (typeof req.url !== "string" || !Number.isInteger(req.width) || req.width <= 0) {
    throw new TaskFailed(
      "InvalidRequest",
      "url (a string) and width (a positive integer) are required",
    );
  }
  for (const [percent, step] of [
    [10, "downloading"],
    [50, "resizing"],
    [90, "uploading"],
  ] as const) {
    ctx.progress(percent, step);
    // Stands for real work; aborted at once when the task is cancelled or out of time.
    if (!(await ctx.sleep(500))) ctx.throwIfCancelled();
  }
  return { thumbnail: `${req.url.replace(/\.\w+$/, "")}-${req.width}.png` };
}

if (require.main === module) {
  const worker = new Worker().task("resize", resize).installSignalHandlers();
  worker.run().then(
    () => process.exit(0),
    (exc: unknown) => {
      process.stderr.write(`worker failed: ${String(exc)}\n`);
      process.exit(1);
    },
  );
}
