/**
 * The worker: RabbitMQ in, the dispatcher in the middle, status messages out.
 *
 * One connection consumes (the control stream, the task queues, dead-lettering refused
 * messages on a confirm channel); the status publisher has its own. A delivery is acked only
 * after its terminal status was confirmed. When the connection drops, running handlers go on
 * and the worker reconnects with backoff; a redelivery of a running task is adopted, one of a
 * task that ended here is acked at once.
 */

import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from "amqplib";

import type { TaskContext } from "./context";
import { ControlLog } from "./control";
import { Dispatcher, type Handler } from "./dispatch";
import type { Delivery } from "./ledger";
import { Link, backoffMs, describe, sleep } from "./link";
import { makeLogger, type Logger } from "./logs";
import { MalformedMessage, decodeTask, type TaskMessage } from "./protocol";
import { StatusPublisher } from "./publisher";
import { effectivePrefetch, settingsFromEnv, type WorkerSettings } from "./settings";
import { DEAD_LETTER_EXCHANGE, deadLetterHeaders, declareAll, taskQueueName } from "./topology";

/** The properties a dead letter keeps of the refused delivery (headers are extended). */
const COPIED_PROPERTIES = [
  "contentType",
  "contentEncoding",
  "deliveryMode",
  "priority",
  "correlationId",
  "replyTo",
  "expiration",
  "messageId",
  "timestamp",
  "type",
  "userId",
  "appId",
] as const;

export interface WorkerOptions extends Partial<WorkerSettings> {
  /** Where settings are read from (default: `process.env`); options given here win. */
  env?: Record<string, string | undefined>;
  logger?: Logger;
}

/**
 * A handler: the task's `spec.request` in (a stored JSON request parsed, any other stored
 * request as a `Payload`), its result out: any JSON value, or bytes, a `StoredResult` or a
 * `Payload` to store in object storage.
 */
export type TaskHandler<Req = unknown, Res = unknown> = (
  request: Req,
  ctx: TaskContext,
) => Promise<Res> | Res;

export class Worker {
  readonly settings: WorkerSettings;
  readonly log: Logger;
  private readonly handlers = new Map<string, Handler>();
  private readonly link: Link;
  private readonly publisher: StatusPublisher;
  private readonly dispatcher: Dispatcher;
  private readonly control: ControlLog;
  private readonly stopping = new AbortController();
  private hurry = false;
  private tasksChannel: Channel | null = null;
  private deadChannel: ConfirmChannel | null = null;
  private consumerTags: string[] = [];
  /** True while consuming task queues. */
  ready = false;

  constructor(options: WorkerOptions = {}) {
    const { env, logger, ...given } = options;
    const defined = Object.fromEntries(
      (Object.entries(given) as [string, unknown][]).filter(([, v]) => v !== undefined),
    ) as Partial<WorkerSettings>;
    this.settings = { ...settingsFromEnv(env ?? process.env), ...defined };
    const s = this.settings;
    this.log = logger ?? makeLogger("asynctask.worker", s.logFormat, s.logLevel);
    this.link = new Link(s.amqpUrl, `worker ${s.workerId}`, s.heartbeatSeconds, this.log);
    this.publisher = new StatusPublisher(
      {
        amqpUrl: s.amqpUrl,
        workerId: s.workerId,
        progressIntervalMs: s.progressIntervalSeconds * 1000,
        startReportMs: s.startReportSeconds * 1000,
        heartbeatSeconds: s.heartbeatSeconds,
        reconnectMaxDelayMs: s.reconnectMaxDelaySeconds * 1000,
      },
      this.log,
    );
    this.dispatcher = new Dispatcher(this.handlers, this.publisher, this.log, {
      concurrency: s.concurrency,
      cancelGraceMs: s.cancelGraceSeconds * 1000,
      revokedCapacity: s.revokedCapacity,
      revokedMaxAgeMs: s.controlHistorySeconds * 1000,
      payloadRetryMs: s.payloadRetrySeconds * 1000,
    });
    this.control = new ControlLog(
      (msg) => {
        this.dispatcher.control(msg);
      },
      s.workerId,
      s.controlHistorySeconds,
      this.log,
    );
  }

  /** Handle the tasks of `queue` (an AsyncTask's `spec.queue`). */
  task<Req = unknown, Res = unknown>(queue: string, handler: TaskHandler<Req, Res>): this {
    if (this.handlers.has(queue))
      throw new Error(`a handler for queue ${queue} is already registered`);
    this.handlers.set(queue, handler as Handler);
    return this;
  }

  /** The queues served: the configured ones, else every queue with a handler. */
  get queues(): string[] {
    return this.settings.queues.length > 0 ? [...this.settings.queues] : [...this.handlers.keys()];
  }

  /** SIGTERM/SIGINT: stop gracefully; a second one: stop without waiting. */
  installSignalHandlers(): this {
    const handle = (): void => {
      this.stop(this.isStopping());
    };
    process.on("SIGTERM", handle);
    process.on("SIGINT", handle);
    return this;
  }

  /** Stop taking tasks; running ones get the grace period to finish (none if `now`). */
  stop(now = false): void {
    if (now) this.hurry = true;
    this.stopping.abort();
  }

  private isStopping(): boolean {
    return this.stopping.signal.aborted;
  }

  /** Serve until {@link stop}, then drain; resolves when the worker stopped. */
  async run(): Promise<void> {
    const unknown = this.settings.queues.filter((q) => !this.handlers.has(q));
    if (unknown.length > 0) {
      throw new Error(
        `no handler for queue(s) ${unknown.join(", ")}; the worker has ${[...this.handlers.keys()].join(", ")}`,
      );
    }
    if (this.queues.length === 0)
      throw new Error("the worker has no tasks: register one with worker.task(queue, handler)");
    this.publisher.start();
    let failures = 0;
    while (!this.isStopping()) {
      try {
        const conn = await this.link.open();
        if (await this.serve(conn)) break;
      } catch (exc) {
        if (this.ready) failures = 0; // it served: a new outage starts from the first delay
        this.link.lost(exc);
      }
      this.lost();
      if (this.isStopping()) break;
      await sleep(
        backoffMs(failures++, this.settings.reconnectMaxDelaySeconds * 1000),
        this.stopping.signal,
      );
    }
    try {
      await this.shutdown();
    } finally {
      await this.link.close();
      await this.publisher.stop();
      this.log.info("worker stopped");
    }
  }

  /** Set up a fresh connection and consume; true when asked to stop, else throws. */
  private async serve(conn: ChannelModel): Promise<boolean> {
    const s = this.settings;
    const closed = new Promise<"closed">((resolve) => {
      conn.once("close", () => {
        resolve("closed");
      });
    });
    conn.on("error", (err: unknown) => {
      this.log.debug(`connection error: ${describe(err)}`);
    });
    const stopped = new Promise<"stopped">((resolve) => {
      this.stopping.signal.addEventListener(
        "abort",
        () => {
          resolve("stopped");
        },
        { once: true },
      );
      if (this.isStopping()) resolve("stopped");
    });
    const closeOnChannelLoss = (ch: Channel): void => {
      ch.on("error", (err: unknown) => {
        this.log.warning(`channel error: ${describe(err)}`);
      });
      ch.once("close", () => {
        if (!this.isStopping()) void conn.close().catch(() => undefined);
      });
    };
    const setup = await conn.createChannel();
    await declareAll(setup, this.queues);
    await setup.close();
    const controlChannel = await this.control.subscribe(conn);
    closeOnChannelLoss(controlChannel);
    const synced = await this.control.waitSynced(
      s.controlSyncTimeoutSeconds * 1000,
      this.stopping.signal,
    );
    if (this.isStopping()) return true;
    if (!synced) this.control.syncTimedOut();
    const epoch = this.link.epoch;
    const ch = await conn.createChannel();
    closeOnChannelLoss(ch);
    await ch.prefetch(effectivePrefetch(s));
    this.tasksChannel = ch;
    this.consumerTags = [];
    for (const queue of this.queues) {
      const name = taskQueueName(queue);
      const { consumerTag } = await ch.consume(name, (msg) => {
        if (msg === null)
          void conn.close().catch(() => undefined); // cancelled by the broker
        else void this.onTask(conn, ch, epoch, name, msg);
      });
      this.consumerTags.push(consumerTag);
    }
    this.ready = true;
    this.link.serving();
    this.log.info(
      `worker ${s.workerId} serving ${this.queues.join(", ")} (concurrency ${s.concurrency})`,
    );
    if ((await Promise.race([closed, stopped])) === "stopped") return true;
    throw new Error("the connection closed");
  }

  /** The connection failed: its deliveries are void; the broker will redeliver them. */
  private lost(): void {
    this.ready = false;
    this.tasksChannel = null;
    this.deadChannel = null;
    const dropped = this.dispatcher.forgetPending();
    if (dropped > 0) this.log.info(`${dropped} task(s) not started yet will be redelivered`);
  }

  private async onTask(
    conn: ChannelModel,
    ch: Channel,
    epoch: number,
    queue: string,
    raw: ConsumeMessage,
  ): Promise<void> {
    let msg: TaskMessage;
    try {
      msg = decodeTask(raw.content);
    } catch (exc) {
      if (!(exc instanceof MalformedMessage)) throw exc;
      await this.refuse(conn, ch, raw, queue, exc.reason, exc.message);
      return;
    }
    if (!this.handlers.has(msg.queue)) {
      const detail = `no handler for queue '${msg.queue}' in this worker (it has ${[...this.handlers.keys()].join(", ")})`;
      await this.refuse(conn, ch, raw, queue, "NoHandler", detail);
      return;
    }
    const headers = (raw.properties.headers ?? {}) as Record<string, unknown>;
    const count = headers["x-delivery-count"];
    const extra = typeof count === "number" && Number.isInteger(count) && count > 0 ? count : 0;
    this.dispatcher.submit(this.delivery(epoch, ch, raw, msg, msg.attempt + extra));
  }

  private delivery(
    epoch: number,
    ch: Channel,
    raw: ConsumeMessage,
    message: TaskMessage,
    attempt: number,
  ): Delivery {
    const settle = (ack: boolean): void => {
      if (epoch !== this.link.epoch || this.tasksChannel !== ch) return; // redelivered anyway
      try {
        if (ack) ch.ack(raw);
        else ch.nack(raw, false, true);
      } catch (exc) {
        this.log.debug(`could not settle a delivery: ${describe(exc)}`);
      }
    };
    return {
      message,
      attempt,
      ack: () => {
        settle(true);
      },
      requeue: () => {
        settle(false);
      },
    };
  }

  /** Dead-letter a delivery from `queue`, saying why, on a confirm channel; then ack it. */
  private async refuse(
    conn: ChannelModel,
    ch: Channel,
    raw: ConsumeMessage,
    queue: string,
    reason: string,
    detail: string,
  ): Promise<void> {
    const p = raw.properties;
    this.log.warning(
      `dead-lettering task message ${String(p.messageId)} from ${queue}: ${reason} (${detail.slice(0, 300)})`,
    );
    try {
      this.deadChannel ??= await conn.createConfirmChannel();
      const dead = this.deadChannel;
      const headers = deadLetterHeaders(p.headers, {
        queue,
        reason,
        detail,
        by: `worker ${this.settings.workerId}`,
      });
      const props = p as unknown as Record<string, unknown>;
      const options: Record<string, unknown> = {};
      for (const key of COPIED_PROPERTIES) {
        if (props[key] !== undefined) options[key] = props[key];
      }
      dead.publish(DEAD_LETTER_EXCHANGE, queue, raw.content, { ...options, headers });
      await dead.waitForConfirms();
      ch.ack(raw);
    } catch (exc) {
      this.deadChannel = null;
      this.log.warning(
        `could not dead-letter ${String(p.messageId)} (${describe(exc)}): it comes back`,
      );
    }
  }

  /** Stop consuming, let running tasks finish within the grace period, requeue the rest. */
  private async shutdown(): Promise<void> {
    this.ready = false;
    const grace = this.hurry ? 0 : this.settings.gracePeriodSeconds;
    this.log.info(
      `stopping: no new tasks; ${this.dispatcher.active} running; grace period ${grace}s`,
    );
    const ch = this.tasksChannel;
    if (ch !== null) {
      for (const tag of this.consumerTags) {
        try {
          await ch.cancel(tag);
        } catch {
          this.lost();
          break;
        }
      }
    }
    const requeued = this.dispatcher.closeIntake();
    if (requeued > 0) this.log.info(`${requeued} task(s) not started yet: requeued`);
    await this.waitUntil(() => this.dispatcher.active === 0, grace * 1000);
    const released = this.dispatcher.releaseRunning();
    if (released > 0)
      this.log.warning(`${released} task(s) still running after the grace period: requeued`);
    // Terminal statuses on their way: let them be confirmed and their deliveries acked.
    await this.waitUntil(() => this.dispatcher.finishing === 0, 10_000);
  }

  private async waitUntil(done: () => boolean, ms: number): Promise<void> {
    let deadline = performance.now() + ms;
    while (!done() && performance.now() < deadline) {
      if (this.hurry) deadline = Math.min(deadline, performance.now() + 300);
      await sleep(50);
    }
  }
}
