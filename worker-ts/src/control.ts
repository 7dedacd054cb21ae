/**
 * Reading the control stream (cancellations, time-outs), as the reference worker does:
 * a stream consumer (prefetch 256, manual acks, `x-stream-offset`) attached one history
 * window back on the first connection and after the last offset read on a reconnect; a sync
 * marker appended before task queues are consumed, so that every cancellation published
 * before the worker started is applied before it takes a task.
 */

import { randomBytes } from "node:crypto";

import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";

import type { Logger } from "./logs";
import { MalformedMessage, decodeControl, type ControlMessage } from "./protocol";
import { CONTROL_STREAM, SYNC_TYPE } from "./topology";

export const CONTROL_PREFETCH = 256;

/** The `x-stream-offset` to attach at: after the last offset read, else a timestamp. */
export function streamOffset(
  nextOffset: number | null,
  historySeconds: number,
  nowMs = Date.now(),
): unknown {
  if (nextOffset !== null) return { "!": "long", value: nextOffset };
  return { "!": "timestamp", value: Math.floor(nowMs / 1000 - historySeconds) };
}

export class ControlLog {
  private nextOffset: number | null = null;
  private marker = "";
  private onSynced: (() => void) | null = null;
  synced = false;
  applied = 0;

  constructor(
    private readonly onControl: (msg: ControlMessage) => void,
    private readonly workerId: string,
    private readonly historySeconds: number,
    private readonly log: Logger,
  ) {}

  /** Attach to the stream and append a sync marker; returns the consuming channel. */
  async subscribe(conn: ChannelModel): Promise<Channel> {
    const ch = await conn.createChannel();
    await ch.prefetch(CONTROL_PREFETCH);
    this.synced = false;
    this.marker = `sync:${this.workerId}:${randomBytes(16).toString("hex")}`;
    await ch.consume(
      CONTROL_STREAM,
      (msg) => {
        if (msg !== null) this.deliver(ch, msg);
      },
      {
        noAck: false,
        arguments: { "x-stream-offset": streamOffset(this.nextOffset, this.historySeconds) },
      },
    );
    const publisher = await conn.createConfirmChannel();
    publisher.publish("", CONTROL_STREAM, Buffer.alloc(0), {
      type: SYNC_TYPE,
      messageId: this.marker,
      deliveryMode: 2,
    });
    await publisher.waitForConfirms();
    await publisher.close();
    return ch;
  }

  /** Resolves true once the marker came back, false after `timeoutMs` (or `signal`). */
  waitSynced(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (value: boolean): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.onSynced = null;
        resolve(value);
      };
      const onAbort = (): void => {
        finish(false);
      };
      const timer = setTimeout(() => {
        finish(false);
      }, timeoutMs);
      signal.addEventListener("abort", onAbort, { once: true });
      this.onSynced = () => {
        finish(true);
      };
    });
  }

  /** The marker did not come back in time: next time, attach by timestamp again. */
  syncTimedOut(): void {
    this.log.warning(
      "did not catch up with the control stream in time; serving anyway (cancellations published while queued may be missed)",
    );
    this.nextOffset = null;
  }

  private deliver(ch: Channel, msg: ConsumeMessage): void {
    const headers = (msg.properties.headers ?? {}) as Record<string, unknown>;
    const offset = headers["x-stream-offset"];
    if (typeof offset === "number" && Number.isInteger(offset)) this.nextOffset = offset + 1;
    try {
      ch.ack(msg);
    } catch {
      return; // the channel is gone: the next connection resumes from the offset
    }
    if (msg.properties.type === SYNC_TYPE) {
      if (msg.properties.messageId === this.marker) {
        this.synced = true;
        this.log.debug(
          `caught up with the control stream (${this.applied} control messages applied)`,
        );
        this.onSynced?.();
      }
      return;
    }
    let control: ControlMessage;
    try {
      control = decodeControl(msg.content);
    } catch (exc) {
      if (!(exc instanceof MalformedMessage)) throw exc;
      this.log.warning(
        `ignoring an invalid control message at offset ${String(offset)}: ${exc.message}`,
      );
      return;
    }
    this.applied++;
    this.onControl(control);
  }
}
