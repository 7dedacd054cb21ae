import assert from "node:assert/strict";
import { test } from "node:test";

import { Ledger, jobKey, type Delivery, type Job } from "../src/ledger";
import type { TaskMessage } from "../src/protocol";

function delivery(
  uid: string,
  attempt = 1,
  redeliveries = 0,
): Delivery & { acks: number; requeues: number } {
  const message: TaskMessage = {
    v: 1,
    kind: "task",
    task: { uid, namespace: "ns", name: uid },
    queue: "q",
    request: null,
    request_ref: null,
    payload: null,
    attempt,
    timeout_seconds: null,
    published_at: "2026-12-05T10:00:00Z",
  };
  const d = {
    message,
    attempt: attempt + redeliveries,
    acks: 0,
    requeues: 0,
    ack() {
      d.acks++;
    },
    requeue() {
      d.requeues++;
    },
  };
  return d;
}

const make = (d: Delivery): Job => ({
  key: jobKey(d.message),
  delivery: d,
  superseded: [],
  state: "running",
});

test("new deliveries start within the concurrency", () => {
  const ledger = new Ledger<Job>(2);
  for (const uid of ["a", "b", "c"]) assert.deepEqual(ledger.admit(delivery(uid)), ["new", null]);
  const { starts } = ledger.takeStartable(make);
  assert.deepEqual(
    starts.map((j) => j.key),
    ["a:1", "b:1"],
  );
  assert.equal(ledger.pending.length, 1);
});

test("a redelivery of a running attempt is adopted; of an ended one, a duplicate", () => {
  const ledger = new Ledger<Job>(1);
  ledger.admit(delivery("a"));
  const [job] = ledger.takeStartable(make).starts;
  assert.ok(job);
  const again = delivery("a", 1, 1);
  assert.deepEqual(ledger.admit(again), ["adopted", null]);
  assert.equal(job.delivery, again); // the running attempt settles the new delivery
  assert.ok(ledger.finishing(job));
  assert.ok(!ledger.finishing(job)); // exactly one ending wins
  const first = job.superseded[0];
  // the adopted delivery and every earlier one (each holds a prefetch slot) are settled
  assert.deepEqual(ledger.settled(job, true), [first, again]);
  assert.deepEqual(ledger.admit(delivery("a", 1, 2)), ["duplicate", null]);
  // a new attempt (a retry) of the same task runs
  assert.deepEqual(ledger.admit(delivery("a", 2)), ["new", null]);
});

test("a revoked task never starts; its waiting deliveries are taken off", () => {
  const ledger = new Ledger<Job>(1);
  ledger.admit(delivery("a"));
  ledger.admit(delivery("b"));
  const [running] = ledger.takeStartable(make).starts;
  const { jobs, queued } = ledger.revoke("b", { reason: "Cancelled", detail: "" });
  assert.deepEqual(jobs, []);
  assert.deepEqual(
    queued.map((d) => d.message.task.uid),
    ["b"],
  );
  assert.deepEqual(ledger.admit(delivery("b"))[0], "revoked");
  assert.ok(running);
  assert.deepEqual(ledger.revoke("a", { reason: "TimedOut", detail: "" }).jobs, [running]);
});

test("a delivery revoked while it waited is settled early when a slot frees up", () => {
  const ledger = new Ledger<Job>(1);
  ledger.admit(delivery("a"));
  const [first] = ledger.takeStartable(make).starts;
  ledger.admit(delivery("b"));
  ledger.revoked.put("b", { reason: "Cancelled", detail: "" });
  assert.ok(first && ledger.finishing(first));
  ledger.settled(first, true);
  const { starts, early } = ledger.takeStartable(make);
  assert.deepEqual(starts, []);
  assert.equal(early[0]?.[1], "revoked");
});

test("shutdown: nothing new, waiting ones back, running ones released", () => {
  const ledger = new Ledger<Job>(1);
  ledger.admit(delivery("a"));
  ledger.takeStartable(make);
  ledger.admit(delivery("b"));
  assert.equal(ledger.closeIntake().length, 1);
  assert.deepEqual(ledger.admit(delivery("c")), ["requeue", null]);
  const released = ledger.releaseRunning();
  assert.deepEqual(
    released.map((j) => j.state),
    ["released"],
  );
  assert.equal(ledger.count(), 0);
  assert.ok(released[0] && !ledger.finishing(released[0])); // a late outcome is dropped
});

test("the ended attempts and revoked tasks are bounded", () => {
  let now = 0;
  const ledger = new Ledger<Job>(1, { doneCapacity: 2, revokedMaxAgeMs: 1000, clock: () => now });
  for (const k of ["a:1", "b:1", "c:1"]) ledger.done.put(k, true);
  assert.ok(!ledger.done.has("a:1"));
  assert.ok(ledger.done.has("c:1"));
  ledger.revoked.put("x", { reason: "Cancelled", detail: "" });
  now = 1500;
  assert.equal(ledger.revoked.get("x"), undefined);
});
