// The page's logic that does not touch the DOM: layout of the graph,
// number formatting and the health of a node. app.mjs draws with it;
// graph.test.mjs tests it under node's test runner.

export const BOX = { w: 206, h: 78, gapX: 56, gapY: 22, pad: 12 };

// layers gives every node the length of the longest path from a node
// without incoming edges: sources 0, their steps 1.., topics after them,
// and so on. Nodes on a cycle (none in a pipeline) keep what they had.
export function layers(graph) {
  const layer = new Map(graph.nodes.map((n) => [n.id, 0]));
  const n = graph.nodes.length;
  for (let round = 0; round < n; round++) {
    let changed = false;
    for (const e of graph.edges) {
      if (!layer.has(e.from) || !layer.has(e.to)) continue;
      if (layer.get(e.to) < layer.get(e.from) + 1) {
        layer.set(e.to, layer.get(e.from) + 1);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return layer;
}

// layout places the nodes in columns by layer (rows on a narrow screen,
// where the graph reads top to bottom) and returns each box and the size
// of the drawing.
export function layout(graph, { narrow = false } = {}) {
  const layer = layers(graph);
  const columns = [];
  for (const node of graph.nodes) {
    const l = layer.get(node.id);
    (columns[l] ||= []).push(node.id);
  }
  const boxes = new Map();
  const tallest = Math.max(0, ...columns.map((c) => (c ? c.length : 0)));
  const along = BOX.w + BOX.gapX; // between layers
  const across = BOX.h + BOX.gapY; // between nodes of one layer
  const narrowAlong = BOX.h + BOX.gapX;
  const narrowAcross = BOX.w + BOX.gapY;
  columns.forEach((ids, l) => {
    if (!ids) return;
    // Centre short columns against the tallest one.
    const offset = (tallest - ids.length) / 2;
    ids.forEach((id, i) => {
      const slot = i + offset;
      boxes.set(id, narrow
        ? { x: BOX.pad + slot * narrowAcross, y: BOX.pad + l * narrowAlong, w: BOX.w, h: BOX.h }
        : { x: BOX.pad + l * along, y: BOX.pad + slot * across, w: BOX.w, h: BOX.h });
    });
  });
  const n = columns.length;
  const width = narrow ? BOX.pad * 2 + tallest * narrowAcross - BOX.gapY : BOX.pad * 2 + n * along - BOX.gapX;
  const height = narrow ? BOX.pad * 2 + n * narrowAlong - BOX.gapX : BOX.pad * 2 + tallest * across - BOX.gapY;
  return { boxes, width: Math.max(width, 0), height: Math.max(height, 0) };
}

// edgePath is the SVG path of an arrow from box a to box b.
export function edgePath(a, b, narrow) {
  if (narrow) {
    const x1 = a.x + a.w / 2, y1 = a.y + a.h, x2 = b.x + b.w / 2, y2 = b.y;
    const my = (y1 + y2) / 2;
    return `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`;
  }
  const x1 = a.x + a.w, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y + b.h / 2;
  const mx = (x1 + x2) / 2;
  return `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
}

// count formats 1234 as "1234", 12345 as "12.3k", 4560000 as "4.56M".
export function count(v) {
  if (v == null || Number.isNaN(v)) return "-";
  if (v >= 1e9) return (v / 1e9).toFixed(2) + "G";
  if (v >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (v >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (v > 0 && v < 10 && !Number.isInteger(v)) return v.toFixed(1);
  return String(Math.round(v));
}

export function rate(v) {
  return count(v) + "/s";
}

// duration formats milliseconds as "850ms", "12s", "3m05s", "2h14m".
export function duration(ms) {
  if (ms == null || ms < 0 || Number.isNaN(ms)) return "-";
  if (ms < 1000) return Math.round(ms) + "ms";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m" + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") + "m";
}

// latency formats a batch latency in milliseconds.
export function latency(ms) {
  if (ms == null) return "-";
  if (ms < 1) return (ms * 1000).toFixed(0) + "µs";
  if (ms < 100) return ms.toFixed(1) + "ms";
  return duration(ms);
}

// health is the colour of a node: "bad" (failed, or its breaker open),
// "warn" (half-open breaker, or a problem in the last minute), "ok"
// (running), "idle" (starting, stopped, or not run by this process).
export function health(ns, nowMs = Date.now()) {
  if (!ns || !ns.state) return "idle";
  if (ns.state === "Failed" || ns.breaker === "open") return "bad";
  const recent = (ns.problems || []).some((p) => nowMs - Date.parse(p.at) < 60000);
  if (ns.breaker === "half-open" || recent) return "warn";
  return ns.state === "Running" ? "ok" : "idle";
}

// breaker describes a breaker; probeInMs counts down between updates.
export function breaker(ns, sinceUpdateMs = 0) {
  if (!ns || !ns.breaker) return "";
  if (ns.breaker === "open") {
    const left = Math.max((ns.probe_in_ms || 0) - sinceUpdateMs, 0);
    return `breaker open · probe in ${duration(left)}`;
  }
  return "breaker " + ns.breaker;
}

// reason is the newest problem's reason, else the last error.
export function reason(ns) {
  if (!ns) return "";
  if (ns.problems && ns.problems.length) return ns.problems[0].reason;
  return ns.last_error || "";
}

// progress describes a snapshot task: "public.orders 40k/1.00M (4%) · 12.0k/s · ETA 1m20s".
export function progress(p) {
  let s = `${p.task} ${count(p.done)}`;
  if (p.total > 0) s += `/${count(p.total)} (${p.percent}%)`;
  if (p.rate_per_sec > 0) s += ` · ${rate(p.rate_per_sec)}`;
  if (p.eta_secs > 0) s += ` · ETA ${duration(p.eta_secs * 1000)}`;
  return s;
}

// lines are the text lines of a node's box after its name.
export function boxLines(node, ns, sinceUpdateMs = 0) {
  const lines = [node.connector || node.kind];
  if (!ns) {
    lines.push(node.live ? "waiting…" : "not in this process");
    return lines;
  }
  if (node.kind === "transform") {
    // A step has no counters of its own: its owner's filtered events.
    lines.push(`dropped ${count(ns.dropped)}`);
    return lines;
  }
  if (node.kind === "topic") {
    lines.push(`${rate(ns.rate_in)} · ${count(ns.events_in)} events`);
    return lines;
  }
  const r = node.kind === "source" ? ns.rate_out : ns.rate_in;
  let l = `${rate(r)}`;
  if (ns.lag != null) l += ` · lag ${count(ns.lag)}`;
  if (ns.batch_ms != null) l += ` · ${latency(ns.batch_ms)}`;
  lines.push(l);
  const b = breaker(ns, sinceUpdateMs);
  if (b && ns.breaker !== "closed") {
    lines.push(b);
  } else if (ns.errors || ns.dead_lettered) {
    lines.push(`err ${count(ns.errors)} · dlq ${count(ns.dead_lettered)}`);
  } else if (ns.progress && ns.progress.length) {
    const p = ns.progress[0];
    lines.push(p.total > 0 ? `snapshot ${p.percent}%` : `snapshot ${count(p.done)}`);
  } else {
    lines.push(ns.state);
  }
  return lines;
}

// owner is the id of the connector a transform step belongs to
// ("sink:hook/1" → "sink:hook"); other ids are their own.
export function owner(id) {
  const slash = id.indexOf("/");
  return slash < 0 ? id : id.slice(0, slash);
}
