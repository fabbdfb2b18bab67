// Unit tests of the page's logic: node --test shared/dashboard/web/
// (TestPageLogic runs them with the Go suite).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as g from "./graph.mjs";

const pipeline = {
  nodes: [
    { id: "source:orders", kind: "source", name: "orders", connector: "datagen", live: true },
    { id: "source:orders/0", kind: "transform", name: "MaskField", connector: "MaskField", live: true },
    { id: "topic:orders", kind: "topic", name: "orders", live: true },
    { id: "topic:users", kind: "topic", name: "users", live: true },
    { id: "source:users", kind: "source", name: "users", connector: "datagen", live: true },
    { id: "sink:hook", kind: "sink", name: "hook", connector: "http_webhook", live: true },
    { id: "sink:s3", kind: "sink", name: "s3", connector: "s3", live: false },
  ],
  edges: [
    { from: "source:orders", to: "source:orders/0" },
    { from: "source:orders/0", to: "topic:orders" },
    { from: "source:users", to: "topic:users" },
    { from: "topic:orders", to: "sink:hook" },
    { from: "topic:users", to: "sink:hook" },
    { from: "topic:orders", to: "sink:s3" },
  ],
};

test("layers follow the longest path from the sources", () => {
  const l = g.layers(pipeline);
  assert.equal(l.get("source:orders"), 0);
  assert.equal(l.get("source:users"), 0);
  assert.equal(l.get("source:orders/0"), 1);
  assert.equal(l.get("topic:orders"), 2);
  // users has no step but its topic sits with the other topics' sinks'
  // inputs only as far as its own path goes.
  assert.equal(l.get("topic:users"), 1);
  assert.equal(l.get("sink:hook"), 3);
  assert.equal(l.get("sink:s3"), 3);
});

test("every box is inside the drawing and no two overlap, wide and narrow", () => {
  for (const narrow of [false, true]) {
    const { boxes, width, height } = g.layout(pipeline, { narrow });
    assert.equal(boxes.size, pipeline.nodes.length);
    const list = [...boxes.values()];
    for (const b of list) {
      assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.w <= width && b.y + b.h <= height, `box ${JSON.stringify(b)} outside ${width}x${height}`);
    }
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i], b = list[j];
        const apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
        assert.ok(apart, `boxes overlap (narrow=${narrow})`);
      }
    }
  }
});

test("a narrow screen stacks the layers top to bottom", () => {
  const wide = g.layout(pipeline);
  const narrow = g.layout(pipeline, { narrow: true });
  assert.ok(wide.width > wide.height);
  assert.ok(narrow.height > narrow.width);
  assert.ok(narrow.boxes.get("sink:hook").y > narrow.boxes.get("topic:orders").y);
  assert.ok(wide.boxes.get("sink:hook").x > wide.boxes.get("topic:orders").x);
});

test("edges leave one box and enter the next", () => {
  const a = { x: 0, y: 0, w: 100, h: 50 }, b = { x: 200, y: 100, w: 100, h: 50 };
  assert.equal(g.edgePath(a, b, false), "M100,25 C150,25 150,125 200,125");
  assert.equal(g.edgePath(a, b, true), "M50,50 C50,75 250,75 250,100");
});

test("numbers and durations read as the terminal status does", () => {
  assert.equal(g.count(1234), "1234");
  assert.equal(g.count(12345), "12.3k");
  assert.equal(g.count(4560000), "4.56M");
  assert.equal(g.count(2.5), "2.5");
  assert.equal(g.count(undefined), "-");
  assert.equal(g.rate(0), "0/s");
  assert.equal(g.duration(850), "850ms");
  assert.equal(g.duration(12400), "12s");
  assert.equal(g.duration(185000), "3m05s");
  assert.equal(g.duration(2 * 3600e3 + 14 * 60e3), "2h14m");
  assert.equal(g.latency(0.25), "250µs");
  assert.equal(g.latency(12.34), "12.3ms");
  assert.equal(g.latency(1500), "2s");
});

test("health: failed or an open breaker is bad, half-open or a fresh problem a warning", () => {
  const now = Date.parse("2026-01-01T00:01:00Z");
  assert.equal(g.health(undefined), "idle");
  assert.equal(g.health({ state: "Running" }, now), "ok");
  assert.equal(g.health({ state: "Starting" }, now), "idle");
  assert.equal(g.health({ state: "Failed" }, now), "bad");
  assert.equal(g.health({ state: "Running", breaker: "open" }, now), "bad");
  assert.equal(g.health({ state: "Running", breaker: "half-open" }, now), "warn");
  assert.equal(g.health({ state: "Running", problems: [{ at: "2026-01-01T00:00:30Z", kind: "error", reason: "x" }] }, now), "warn");
  assert.equal(g.health({ state: "Running", problems: [{ at: "2025-12-31T23:00:00Z", kind: "error", reason: "x" }] }, now), "ok");
});

test("an open breaker counts down to its probe between updates", () => {
  const ns = { state: "Running", breaker: "open", probe_in_ms: 30000 };
  assert.equal(g.breaker(ns), "breaker open · probe in 30s");
  assert.equal(g.breaker(ns, 12000), "breaker open · probe in 18s");
  assert.equal(g.breaker(ns, 40000), "breaker open · probe in 0ms");
  assert.equal(g.breaker({ breaker: "closed" }), "breaker closed");
  assert.equal(g.breaker({}), "");
});

test("the reason is the newest problem, else the last error", () => {
  assert.equal(g.reason({ problems: [{ reason: "new" }, { reason: "old" }], last_error: "last" }), "new");
  assert.equal(g.reason({ last_error: "last" }), "last");
  assert.equal(g.reason(undefined), "");
});

test("snapshot progress shows rows of the estimate, rate and time left", () => {
  assert.equal(g.progress({ task: "public.orders", done: 40000, total: 1000000, percent: 4, rate_per_sec: 12000, eta_secs: 80 }),
    "public.orders 40.0k/1.00M (4%) · 12.0k/s · ETA 1m20s");
  assert.equal(g.progress({ task: "public.items", done: 5, total: 0, percent: -1, rate_per_sec: 0 }), "public.items 5");
});

test("box lines: rate, lag, latency, then breaker, errors or snapshot", () => {
  const sink = pipeline.nodes[5];
  assert.deepEqual(g.boxLines(sink, { state: "Running", rate_in: 120, lag: 3, batch_ms: 2.5, breaker: "closed" }),
    ["http_webhook", "120/s · lag 3 · 2.5ms", "Running"]);
  assert.deepEqual(g.boxLines(sink, { state: "Running", rate_in: 0, breaker: "open", probe_in_ms: 9000, errors: 4 }),
    ["http_webhook", "0/s", "breaker open · probe in 9s"]);
  assert.deepEqual(g.boxLines(sink, { state: "Running", rate_in: 1, errors: 2, dead_lettered: 1 }),
    ["http_webhook", "1/s", "err 2 · dlq 1"]);
  const src = pipeline.nodes[0];
  assert.deepEqual(g.boxLines(src, { state: "Running", rate_out: 50, progress: [{ task: "t", done: 5, total: 10, percent: 50 }] }),
    ["datagen", "50/s", "snapshot 50%"]);
  assert.deepEqual(g.boxLines(pipeline.nodes[6], undefined), ["s3", "not in this process"]);
  assert.deepEqual(g.boxLines(pipeline.nodes[2], { events_in: 12345, rate_in: 40 }), ["topic", "40/s · 12.3k events"]);
  assert.deepEqual(g.boxLines(pipeline.nodes[1], { dropped: 7 }), ["MaskField", "dropped 7"]);
  assert.equal(g.owner("sink:hook/2"), "sink:hook");
  assert.equal(g.owner("topic:a.b"), "topic:a.b");
});
