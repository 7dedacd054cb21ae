/**
 * The status publisher: its own connection, a confirm channel, one ordered queue.
 *
 * `send` resolves once the broker confirmed the message; a message whose publish or confirm
 * failed with the connection is sent again after the reconnect, with the next `seq`.
 * Progress is throttled per attempt ({@link StatusStreams}).
 */

import type { ChannelModel, ConfirmChannel } from "amqplib";

import type { StatusSink } from "./dispatch";
import { Link, backoffMs, describe, sleep } from "./link";
import type { Logger } from "./logs";
import {
  CONTENT_TYPE,
  encodeStatus,
  isTerminal,
  statusMessage,
  statusMessageId,
  type Phase,
  type StatusFields,
  type StatusMessage,
  type TaskRef,
} from "./protocol";
import { StatusStreams } from "./streams";
import { STATUS_QUEUE, declareDeadLetter, declareStatusQueue } from "./topology";

interface Item {
  readonly order: number;
  readonly message: StatusMessage;
  resolve(): void;
  reject(error: Error): void;
}

export interface PublisherOptions {
  amqpUrl: string;
  workerId: string;
  progressIntervalMs: number;
  /** How long an attempt's `Processing` is held (0: sent at once). */
  startReportMs?: number;
  heartbeatSeconds: number;
  reconnectMaxDelayMs: number;
}

export class StatusPublisher implements StatusSink {
  private readonly link: Link;
  private readonly streams: StatusStreams;
  private readonly queue: Item[] = [];
  private channel: ConfirmChannel | null = null;
  private order = 0;
  private inFlight = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  private flushAt = 0;
  private readonly stopping = new AbortController();
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private served = false;

  constructor(
    private readonly options: PublisherOptions,
    private readonly log: Logger,
  ) {
    this.link = new Link(
      options.amqpUrl,
      `status publisher ${options.workerId}`,
      options.heartbeatSeconds,
      log,
    );
    this.streams = new StatusStreams(
      options.progressIntervalMs,
      undefined,
      options.startReportMs ?? 0,
    );
  }

  get connections(): number {
    return this.link.epoch;
  }

  /** Messages not confirmed yet (queued or in flight). */
  get outstanding(): number {
    return this.queue.length + this.inFlight;
  }

  send(task: TaskRef, attempt: number, phase: Phase, fields: StatusFields = {}): Promise<void> {
    const made = statusMessage(task, attempt, phase, this.options.workerId, fields);
    if (phase === "Processing" && made.progress === null && this.streams.holdStart(made)) {
      this.scheduleFlush(); // sent when its window ends, unless the attempt ends first
      return Promise.resolve();
    }
    return this.enqueue(this.streams.offerPhase(made));
  }

  progress(task: TaskRef, attempt: number, percent: number, message: string | null): void {
    const msg = statusMessage(task, attempt, "Processing", this.options.workerId, {
      progress: percent,
      message,
    });
    const now = this.streams.offerProgress(msg);
    if (now !== null) void this.enqueue(now).catch(() => undefined);
    this.scheduleFlush();
  }

  start(): void {
    this.running ??= this.run();
  }

  /** Send what is queued (held progress included), then close. */
  async stop(timeoutMs = 10_000): Promise<void> {
    for (const msg of this.streams.due(true)) void this.enqueue(msg).catch(() => undefined);
    const deadline = performance.now() + timeoutMs;
    while (this.outstanding > 0 && performance.now() < deadline) await sleep(50);
    this.stopping.abort();
    this.wake?.();
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    await this.running;
  }

  private isStopping(): boolean {
    return this.stopping.signal.aborted;
  }

  private enqueue(message: StatusMessage): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ order: this.order++, message, resolve, reject });
      this.pump();
    });
  }

  private scheduleFlush(): void {
    const wait = this.streams.nextDueInMs();
    if (wait === null) return;
    const at = performance.now() + wait;
    if (this.flushTimer !== null) {
      if (this.flushAt <= at) return; // a start's window may end before a progress is due
      clearTimeout(this.flushTimer);
    }
    this.flushAt = at;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      for (const msg of this.streams.due()) void this.enqueue(msg).catch(() => undefined);
      this.scheduleFlush();
    }, wait);
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.isStopping()) {
      try {
        const conn = await this.link.open();
        await this.serve(conn);
      } catch (exc) {
        if (this.served) failures = 0; // a new outage starts from the first delay
        this.served = false;
        this.link.lost(exc);
      }
      this.channel = null;
      if (this.isStopping()) break;
      await sleep(backoffMs(failures++, this.options.reconnectMaxDelayMs), this.stopping.signal);
    }
    await this.link.close();
  }

  /** Publish on this connection until it fails or the publisher stops. */
  private async serve(conn: ChannelModel): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      conn.once("close", () => {
        resolve();
      });
      conn.on("error", (err: unknown) => {
        this.log.debug(`status publisher connection error: ${describe(err)}`);
      });
    });
    const ch = await conn.createConfirmChannel();
    ch.on("error", () => undefined);
    await declareDeadLetter(ch);
    await declareStatusQueue(ch);
    ch.on("return", (msg: { properties: { messageId?: string } }) => {
      this.log.error(`status message ${msg.properties.messageId ?? "?"} was returned unroutable`);
    });
    this.channel = ch;
    ch.once("close", () => {
      if (this.channel === ch) this.channel = null;
    });
    this.link.serving();
    this.served = true;
    this.pump();
    const stopped = new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    await Promise.race([closed, stopped]);
    this.channel = null;
    if (this.isStopping()) await this.link.close();
    else throw new Error("connection closed");
  }

  private pump(): void {
    const ch = this.channel;
    if (ch === null) return;
    this.queue.sort((a, b) => a.order - b.order);
    for (let item = this.queue.shift(); item !== undefined; item = this.queue.shift()) {
      this.publish(ch, item);
      if (this.channel !== ch) break;
    }
  }

  private publish(ch: ConfirmChannel, item: Item): void {
    const msg = this.streams.stamp(item.message);
    this.inFlight++;
    const settle = (err: unknown): void => {
      this.inFlight--;
      if (err === null || err === undefined) {
        if (isTerminal(msg.phase)) this.streams.finished(msg);
        item.resolve();
        return;
      }
      // Lost with the connection (or nacked): sent again after the reconnect, next seq.
      this.queue.push(item);
      if (this.isStopping()) item.reject(err instanceof Error ? err : new Error(describe(err)));
      else
        setTimeout(() => {
          this.pump();
        }, 200);
    };
    try {
      ch.publish(
        "",
        STATUS_QUEUE,
        encodeStatus(msg),
        {
          contentType: CONTENT_TYPE,
          deliveryMode: 2,
          messageId: statusMessageId(msg.task.uid, msg.attempt, msg.seq),
          type: "status",
          mandatory: true,
        },
        settle,
      );
    } catch (exc) {
      if (this.channel === ch) this.channel = null; // closed under us: the reconnect resends
      settle(exc);
    }
  }
}
