// Keeping a stream open: reconnect after a dropped connection (the server's `retry:` is
// 3 s), stop for good on a refusal a retry cannot fix (400, 401, 403, 404).

import { ApiError, readStream } from "./api.js";

const RETRY_MS = 3000;
export const FINAL = new Set([400, 401, 403, 404]);

/**
 * Runs `connect()` (which opens one stream and resolves when it ends) again and again until
 * `signal` aborts, `connect` resolves with "done", or a final refusal; `onState` hears
 * "live", "reconnecting" and errors.
 */
export async function keepOpen(connect, { signal, onState }) {
  while (!signal.aborted) {
    try {
      const outcome = await connect();
      if (outcome === "done") return;
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && FINAL.has(error.status)) {
        onState(error);
        return;
      }
      onState(error instanceof ApiError ? error : new Error(`connection lost: ${error.message}`));
    }
    if (signal.aborted) return;
    onState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

export { readStream };
