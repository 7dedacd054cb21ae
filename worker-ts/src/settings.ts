/**
 * Worker configuration, read from the same `ASYNCTASK_WORKER_*` environment variables as the
 * Python worker's settings (`asynctask_worker/settings.py`), with the same defaults and bounds.
 * Options given to `new Worker({...})` win over the environment.
 */

import { hostname } from "node:os";

export interface WorkerSettings {
  /** RabbitMQ URL, or the URLs of a cluster's nodes separated by commas (tried in turn). */
  amqpUrl: string;
  /** Queues to serve; empty serves every queue the worker has a handler for. */
  queues: string[];
  /** Tasks run at once (1–256). */
  concurrency: number;
  /** Unacked deliveries held; default: the concurrency. */
  prefetch: number | null;
  /** On SIGTERM, how long running tasks may take to finish before they are requeued. */
  gracePeriodSeconds: number;
  /** After a cancel or the time limit, how long a handler may take to stop. */
  cancelGraceSeconds: number;
  /** At most one progress message per task per interval (at least 0.05). */
  progressIntervalSeconds: number;
  /**
   * How long an attempt's `Processing` is held (0–0.5): a task that ends within it sends only
   * its end message (with `started_at`); 0 reports every start at once.
   */
  startReportSeconds: number;
  heartbeatSeconds: number;
  reconnectMaxDelaySeconds: number;
  /** How far back a starting worker reads cancellations. */
  controlHistorySeconds: number;
  /** How long a connecting worker waits to catch up with the control stream. */
  controlSyncTimeoutSeconds: number;
  /** How many revoked task uids a worker remembers. */
  revokedCapacity: number;
  /** How long a stored payload's download or upload is retried while the store is
   * unreachable or answers 5xx, before the task ends in Error. */
  payloadRetrySeconds: number;
  workerId: string;
  logFormat: "text" | "json";
  logLevel: string;
}

export class SettingsError extends Error {
  override name = "SettingsError";
}

type Env = Record<string, string | undefined>;

const PREFIX = "ASYNCTASK_WORKER_";

function num(
  env: Env,
  key: string,
  fallback: number,
  check: (n: number) => boolean,
  what: string,
  integer = false,
): number {
  const raw = env[PREFIX + key];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw.trim());
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || !check(value)) {
    throw new SettingsError(`${PREFIX}${key}=${raw}: ${what}`);
  }
  return value;
}

export function defaultWorkerId(): string {
  return `${hostname()}/${process.pid}`;
}

/** The settings from `env` (default: `process.env`); throws {@link SettingsError}. */
export function settingsFromEnv(env: Env = process.env): WorkerSettings {
  const str = (key: string, fallback: string): string => {
    const raw = env[PREFIX + key];
    return raw === undefined || raw === "" ? fallback : raw;
  };
  const logFormat = str("LOG_FORMAT", "text").toLowerCase();
  if (logFormat !== "text" && logFormat !== "json") {
    throw new SettingsError(`${PREFIX}LOG_FORMAT=${logFormat}: text or json`);
  }
  const prefetchRaw = env[PREFIX + "PREFETCH"];
  return {
    amqpUrl: str("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
    queues: splitList(str("QUEUES", "")),
    concurrency: num(
      env,
      "CONCURRENCY",
      1,
      (n) => n >= 1 && n <= 256,
      "an integer from 1 to 256",
      true,
    ),
    prefetch:
      prefetchRaw === undefined || prefetchRaw.trim() === ""
        ? null
        : num(env, "PREFETCH", 1, (n) => n >= 1, "an integer of at least 1", true),
    gracePeriodSeconds: num(env, "GRACE_PERIOD_SECONDS", 30, (n) => n >= 0, "seconds, at least 0"),
    cancelGraceSeconds: num(env, "CANCEL_GRACE_SECONDS", 10, (n) => n >= 0, "seconds, at least 0"),
    progressIntervalSeconds: num(
      env,
      "PROGRESS_INTERVAL_SECONDS",
      0.5,
      (n) => n >= 0.05,
      "seconds, at least 0.05",
    ),
    startReportSeconds: num(
      env,
      "START_REPORT_SECONDS",
      0.05,
      (n) => n >= 0 && n <= 0.5,
      "seconds, from 0 to 0.5",
    ),
    heartbeatSeconds: num(
      env,
      "HEARTBEAT_SECONDS",
      30,
      (n) => n >= 0,
      "an integer of at least 0",
      true,
    ),
    reconnectMaxDelaySeconds: num(
      env,
      "RECONNECT_MAX_DELAY_SECONDS",
      30,
      (n) => n > 0,
      "seconds, above 0",
    ),
    controlHistorySeconds: num(
      env,
      "CONTROL_HISTORY_SECONDS",
      86_400,
      (n) => n > 0,
      "seconds, above 0",
    ),
    controlSyncTimeoutSeconds: num(
      env,
      "CONTROL_SYNC_TIMEOUT_SECONDS",
      30,
      (n) => n > 0,
      "seconds, above 0",
    ),
    revokedCapacity: num(
      env,
      "REVOKED_CAPACITY",
      100_000,
      (n) => n >= 100,
      "an integer of at least 100",
      true,
    ),
    payloadRetrySeconds: num(
      env,
      "PAYLOAD_RETRY_SECONDS",
      60,
      (n) => n >= 0,
      "seconds, at least 0",
    ),
    workerId: str("WORKER_ID", defaultWorkerId()),
    logFormat,
    logLevel: str("LOG_LEVEL", "INFO").toUpperCase(),
  };
}

/** A comma-separated list, blanks dropped. */
export function splitList(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** The effective prefetch: the configured one, else the concurrency. */
export function effectivePrefetch(s: WorkerSettings): number {
  return s.prefetch ?? s.concurrency;
}
