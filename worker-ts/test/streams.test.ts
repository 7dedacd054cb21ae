import assert from "node:assert/strict";
import { test } from "node:test";

import { statusMessage, type Phase } from "../src/protocol";
import { StatusStreams } from "../src/streams";

const ref = { uid: "u1", namespace: "ns", name: "t" };
const msg = (phase: Phase, progress: number | null = null, attempt = 1) =>
  statusMessage(ref, attempt, phase, "w", { progress });

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test("at most one progress message per interval; the latest value wins", () => {
  const c = clock();
  const s = new StatusStreams(500, c.now);
  assert.equal(s.offerProgress(msg("Processing", 10))?.progress, 10); // the first goes at once
  assert.equal(s.offerProgress(msg("Processing", 20)), null);
  assert.equal(s.offerProgress(msg("Processing", 30)), null);
  assert.equal(s.nextDueInMs(), 500);
  c.advance(200);
  assert.deepEqual(s.due(), []);
  assert.equal(s.nextDueInMs(), 300);
  c.advance(300);
  assert.deepEqual(
    s.due().map((m) => m.progress),
    [30],
  );
  assert.equal(s.nextDueInMs(), null);
  c.advance(100);
  assert.equal(s.offerProgress(msg("Processing", 40)), null); // 100 ms after the last one
  assert.deepEqual(
    s.due(true).map((m) => m.progress),
    [40],
  ); // forced (shutdown)
});

test("Processing starts the interval: a progress reported with it waits", () => {
  const c = clock();
  const s = new StatusStreams(500, c.now);
  s.offerPhase(msg("Processing"));
  assert.equal(s.offerProgress(msg("Processing", 5)), null);
  c.advance(499);
  assert.deepEqual(s.due(), []);
  c.advance(1);
  assert.deepEqual(
    s.due().map((m) => m.progress),
    [5],
  );
});

test("seq counts what is sent, per attempt, from 0; a resend gets the next one", () => {
  const s = new StatusStreams(500);
  assert.equal(s.stamp(msg("Processing")).seq, 0);
  assert.equal(s.stamp(msg("Processing", 50)).seq, 1);
  assert.equal(s.stamp(msg("Processing", 50)).seq, 2);
  assert.equal(s.stamp(msg("Processing", null, 2)).seq, 0); // another attempt
});

test("no progress after the terminal status; the held one is dropped", () => {
  const c = clock();
  const s = new StatusStreams(500, c.now);
  s.offerProgress(msg("Processing", 10));
  s.offerProgress(msg("Processing", 60));
  s.offerPhase(msg("Succeeded", 100));
  c.advance(1000);
  assert.deepEqual(s.due(), []);
  assert.equal(s.offerProgress(msg("Processing", 70)), null);
  s.finished(msg("Succeeded"));
  assert.equal(s.size, 0);
});

test("a start is held for the start window: an end within it carries the start's time", () => {
  const c = clock();
  const s = new StatusStreams(500, c.now, 50);
  const start = msg("Processing");
  assert.equal(s.holdStart(start), true); // nothing to send now
  assert.equal(s.nextDueInMs(), 50);
  c.advance(30);
  assert.deepEqual(s.due(), []);
  const end = s.offerPhase(msg("Succeeded", 100));
  assert.equal(end.started_at, start.at); // one message, not two
  c.advance(1000);
  assert.deepEqual(s.due(), []); // the start is never sent
  assert.equal(s.nextDueInMs(), null);
});

test("a start still held when its window ends is sent then, with its own time", () => {
  const c = clock();
  const s = new StatusStreams(500, c.now, 50);
  const start = msg("Processing");
  s.holdStart(start);
  c.advance(49);
  assert.deepEqual(s.due(), []);
  c.advance(1);
  assert.deepEqual(s.due(), [start]); // its `at` is the handler's start
  assert.equal(s.offerPhase(msg("Succeeded", 100)).started_at, undefined);
});

test("progress within the window is held with the start: after it, or never", () => {
  const c = clock();
  const s = new StatusStreams(500, c.now, 50);
  const start = msg("Processing");
  s.holdStart(start);
  assert.equal(s.offerProgress(msg("Processing", 10)), null); // not before the start
  assert.equal(s.nextDueInMs(), 50);
  c.advance(50);
  assert.deepEqual(s.due(), [start]); // the start first; the progress an interval later
  c.advance(500);
  assert.deepEqual(
    s.due().map((m) => m.progress),
    [10],
  );
  const ended = new StatusStreams(500, c.now, 50);
  const second = msg("Processing", null, 2);
  ended.holdStart(second);
  ended.offerProgress(msg("Processing", 10, 2));
  assert.equal(ended.offerPhase(msg("Succeeded", 100, 2)).started_at, second.at);
  c.advance(1000);
  assert.deepEqual(ended.due(), []); // neither the start nor the progress
});

test("a window of 0 holds no start; a forced flush sends a held one", () => {
  const none = new StatusStreams(500, clock().now, 0);
  assert.equal(none.holdStart(msg("Processing")), false);
  const s = new StatusStreams(500, clock().now, 50);
  const start = msg("Processing");
  s.holdStart(start);
  assert.deepEqual(s.due(true), [start]); // at a stop
});
