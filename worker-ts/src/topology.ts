/**
 * Names and declarations of everything AsyncTask uses in RabbitMQ, declared exactly as the
 * reference (`asynctask_worker/topology.py`) declares them: a declaration with other
 * arguments is refused by the broker with PRECONDITION_FAILED.
 */

import type { Channel, Options } from "amqplib";

export const TASK_QUEUE_PREFIX = "asynctask.tasks.";
export const STATUS_QUEUE = "asynctask.status";
export const CONTROL_EXCHANGE = "asynctask.control";
export const CONTROL_STREAM = "asynctask.control.log";
export const CONTROL_RETENTION = "1D";
export const DEAD_LETTER_EXCHANGE = "asynctask.dead-letter";
export const DEAD_LETTER_QUEUE = "asynctask.dead-letter";
export const DEAD_TASKS_QUEUE = "asynctask.dead-letter.tasks";

export const DEAD_REASON_HEADER = "x-asynctask-dead-reason";
export const DEAD_DETAIL_HEADER = "x-asynctask-dead-detail";
export const DEAD_BY_HEADER = "x-asynctask-dead-by";
export const DEAD_QUEUE_HEADER = "x-asynctask-dead-queue";
export const DEAD_DETAIL_CHARS = 1000;

export const TASK_UID_HEADER = "asynctask-uid";
export const TASK_NAMESPACE_HEADER = "asynctask-namespace";
export const TASK_NAME_HEADER = "asynctask-name";
export const TASK_ATTEMPT_HEADER = "asynctask-attempt";

export const DEFAULT_DELIVERY_LIMIT = 5;
/** The AMQP `type` of a worker's sync marker in the control stream. */
export const SYNC_TYPE = "asynctask.sync";

/** The RabbitMQ queue that carries the tasks of one `spec.queue`. */
export function taskQueueName(queue: string): string {
  return TASK_QUEUE_PREFIX + queue;
}

/** The arguments of the task and status queues; the limit as a signed 32-bit integer. */
export function quorumQueueArguments(
  deliveryLimit = DEFAULT_DELIVERY_LIMIT,
): Record<string, unknown> {
  return {
    "x-queue-type": "quorum",
    "x-delivery-limit": { "!": "int32", value: deliveryLimit },
    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
  };
}

function quorum(args: Record<string, unknown>): Options.AssertQueue {
  return { durable: true, arguments: args };
}

export async function declareDeadLetter(ch: Channel): Promise<void> {
  await ch.assertExchange(DEAD_LETTER_EXCHANGE, "topic", { durable: true });
  const bindings: [string, string][] = [
    [DEAD_LETTER_QUEUE, "#"],
    [DEAD_TASKS_QUEUE, TASK_QUEUE_PREFIX + "#"],
  ];
  for (const [queue, pattern] of bindings) {
    await ch.assertQueue(queue, quorum({ "x-queue-type": "quorum" }));
    await ch.bindQueue(queue, DEAD_LETTER_EXCHANGE, pattern);
  }
}

export async function declareStatusQueue(ch: Channel): Promise<void> {
  await ch.assertQueue(STATUS_QUEUE, quorum(quorumQueueArguments()));
}

export async function declareTaskQueue(ch: Channel, queue: string): Promise<string> {
  const name = taskQueueName(queue);
  await ch.assertQueue(name, quorum(quorumQueueArguments()));
  return name;
}

export async function declareControl(ch: Channel): Promise<void> {
  await ch.assertExchange(CONTROL_EXCHANGE, "fanout", { durable: true });
  await ch.assertQueue(
    CONTROL_STREAM,
    quorum({ "x-queue-type": "stream", "x-max-age": CONTROL_RETENTION }),
  );
  await ch.bindQueue(CONTROL_STREAM, CONTROL_EXCHANGE, "");
}

/** Everything a worker uses: dead-lettering, status, control and its task queues. */
export async function declareAll(ch: Channel, queues: readonly string[]): Promise<void> {
  await declareDeadLetter(ch);
  await declareStatusQueue(ch);
  await declareControl(ch);
  for (const queue of queues) await declareTaskQueue(ch, queue);
}

/** The headers of a message refused from `queue`: its own, plus why and by whom. */
export function deadLetterHeaders(
  headers: Record<string, unknown> | undefined,
  refusal: { queue: string; reason: string; detail: string; by: string },
): Record<string, unknown> {
  return {
    ...(headers ?? {}),
    [DEAD_REASON_HEADER]: refusal.reason,
    [DEAD_DETAIL_HEADER]: refusal.detail.slice(0, DEAD_DETAIL_CHARS),
    [DEAD_BY_HEADER]: refusal.by,
    [DEAD_QUEUE_HEADER]: refusal.queue,
  };
}
