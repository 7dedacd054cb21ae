/**
 * One AMQP connection, opened on demand; reconnects with exponential backoff.
 *
 * With several nodes (a cluster, URLs separated by commas), a connection attempt tries them
 * in turn, starting after the node whose connection was lost last. An outage is reported
 * once (WARNING) and its end once (INFO), as the Python worker's `amqp.Link` does.
 */

import * as amqp from "amqplib";
import type { ChannelModel } from "amqplib";

import type { Logger } from "./logs";
import { splitList } from "./settings";

/** The URL with the heartbeat set (unless the URL sets one) and the password hidden. */
export function withHeartbeat(url: string, heartbeatSeconds: number): string {
  if (/[?&]heartbeat=/.test(url)) return url;
  return url + (url.includes("?") ? "&" : "?") + `heartbeat=${heartbeatSeconds}`;
}

/** `host:port` of a URL, for logs (never the credentials). */
export function nodeName(url: string): string {
  const match = /^amqps?:\/\/(?:[^@/]*@)?([^/?]+)/.exec(url);
  return match?.[1] ?? "?";
}

/** Delay before reconnect attempt `n` (0-based): 0.5 s doubling, capped, with jitter. */
export function backoffMs(
  n: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(maxDelayMs, 500 * 2 ** Math.min(n, 20));
  return Math.round(base * (0.5 + random() / 2));
}

export class Link {
  readonly nodes: string[];
  connection: ChannelModel | null = null;
  /** Connections made so far. */
  epoch = 0;
  private first = 0;
  private downSince: number | null = null;

  constructor(
    url: string,
    private readonly name: string,
    private readonly heartbeatSeconds: number,
    private readonly log: Logger,
  ) {
    this.nodes = splitList(url);
    if (this.nodes.length === 0) throw new Error("no AMQP URL given");
  }

  /** A new connection to the first node that takes one (throws the last error). */
  async open(): Promise<ChannelModel> {
    let lastError: unknown = null;
    for (let i = 0; i < this.nodes.length; i++) {
      const index = (this.first + i) % this.nodes.length;
      const url = this.nodes[index] ?? "";
      try {
        const conn = await amqp.connect(withHeartbeat(url, this.heartbeatSeconds), {
          clientProperties: { connection_name: this.name },
        });
        this.first = index;
        this.connection = conn;
        this.epoch++;
        return conn;
      } catch (exc) {
        lastError = exc;
      }
    }
    this.lost(lastError);
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }

  /** The session on the connection is set up: an outage, if any, is over. */
  serving(): void {
    if (this.downSince !== null) {
      const away = ((performance.now() - this.downSince) / 1000).toFixed(1);
      this.log.info(
        `${this.name}: reconnected to RabbitMQ after ${away}s (${nodeName(this.nodes[this.first] ?? "")})`,
      );
      this.downSince = null;
    }
  }

  /** The connection failed or could not be made: report the outage once. */
  lost(cause: unknown): void {
    if (this.connection !== null) {
      this.first = (this.first + 1) % this.nodes.length;
    }
    this.connection = null;
    if (this.downSince === null) {
      this.downSince = performance.now();
      this.log.warning(`${this.name}: lost RabbitMQ (${describe(cause)}); reconnecting`);
    } else {
      this.log.debug(`${this.name}: still no RabbitMQ (${describe(cause)})`);
    }
  }

  /** Close the connection quietly. */
  async close(): Promise<void> {
    const conn = this.connection;
    this.connection = null;
    if (conn === null) return;
    try {
      await conn.close();
    } catch {
      // already closed
    }
  }
}

export function describe(exc: unknown): string {
  if (exc instanceof Error) return exc.message.split("\n")[0] ?? exc.name;
  return String(exc);
}

/** Sleep `ms`, or less if `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
