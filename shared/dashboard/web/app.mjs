// Draws the pipeline graph and keeps it live from the server's event
// stream. Only text nodes carry data from the server (no innerHTML).
import * as g from "./graph.mjs";

const SVG = "http://www.w3.org/2000/svg";
const narrowQuery = window.matchMedia("(max-width: 700px)");
let graph = { nodes: [], edges: [] };
let state = { nodes: {}, samples: {} };
let stateAt = Date.now();

function el(tag, attrs = {}, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

function nodeState(node) {
  return state.nodes[node.kind === "transform" ? g.owner(node.id) : node.id];
}

function drawGraph() {
  const svg = document.getElementById("graph");
  const narrow = narrowQuery.matches;
  const { boxes, width, height } = g.layout(graph, { narrow });
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const defs = el("svg:defs");
  const marker = el("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
  marker.append(el("svg:path", { d: "M0,0 L10,5 L0,10 z", fill: "#98a2b3" }));
  defs.append(marker);
  svg.append(defs);
  for (const e of graph.edges) {
    const a = boxes.get(e.from), b = boxes.get(e.to);
    if (a && b) svg.append(el("svg:path", { class: "edge", d: g.edgePath(a, b, narrow), "marker-end": "url(#arrow)" }));
  }
  for (const node of graph.nodes) {
    const b = boxes.get(node.id);
    const grp = el("svg:g", { class: `node ${node.kind}`, "data-node": node.id, "data-kind": node.kind, transform: `translate(${b.x},${b.y})` });
    grp.append(el("svg:title", {}, `${node.kind} ${node.name}`));
    grp.append(el("svg:rect", { width: b.w, height: b.h, rx: node.kind === "topic" ? 18 : 6 }));
    grp.append(el("svg:text", { class: "name", x: 10, y: 19 }, clipText(node.name, 24)));
    for (let i = 0; i < 3; i++) grp.append(el("svg:text", { class: "line", x: 10, y: 37 + i * 15 }));
    svg.append(grp);
  }
  updateGraph();
}

function clipText(s, n) {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

function updateGraph() {
  const since = Date.now() - stateAt;
  for (const node of graph.nodes) {
    const grp = document.querySelector(`[data-node="${CSS.escape(node.id)}"]`);
    if (!grp) continue;
    const ns = nodeState(node);
    const h = node.kind === "topic" ? "topic" : g.health(ns);
    grp.setAttribute("class", `node ${node.kind} ${h}`);
    grp.dataset.health = h;
    const lines = g.boxLines(node, ns, since);
    const texts = grp.querySelectorAll("text.line");
    texts.forEach((t, i) => {
      t.textContent = clipText(lines[i] || "", 30);
      t.setAttribute("class", "line" + (h === "bad" && i === 2 ? " alert" : ""));
    });
    const title = grp.querySelector("title");
    const why = g.reason(ns);
    title.textContent = `${node.kind} ${node.name}` + (why ? `\n${why}` : "");
  }
}

function row(dl, k, v) {
  dl.append(el("dt", {}, k), el("dd", { "data-field": k }, v));
}

function drawCards() {
  const cards = document.getElementById("cards");
  const since = Date.now() - stateAt;
  const out = [];
  for (const node of graph.nodes) {
    if (node.kind !== "source" && node.kind !== "sink") continue;
    const ns = state.nodes[node.id];
    const card = el("article", { class: `card ${g.health(ns)}`, "data-card": node.id });
    card.append(el("h3", {}, `${node.kind} ${node.name} `));
    card.firstChild.append(el("small", {}, node.connector));
    if (!ns) {
      card.append(el("p", { class: "note" }, node.live ? "waiting for the first numbers" : "runs in another process"));
      out.push(card);
      continue;
    }
    const dl = el("dl");
    row(dl, "state", ns.state);
    row(dl, "events/s", `in ${g.rate(ns.rate_in)} · out ${g.rate(ns.rate_out)}`);
    row(dl, "events", `in ${g.count(ns.events_in)} · out ${g.count(ns.events_out)}`);
    if (ns.lag != null) row(dl, "lag", g.count(ns.lag));
    row(dl, "batch latency", g.latency(ns.batch_ms));
    row(dl, "errors", g.count(ns.errors));
    row(dl, "dead-lettered", g.count(ns.dead_lettered));
    if (ns.dropped) row(dl, "filtered", g.count(ns.dropped));
    if (ns.restarts) row(dl, "restarts", g.count(ns.restarts));
    if (ns.breaker) row(dl, "breaker", g.breaker(ns, since).replace(/^breaker /, ""));
    card.append(dl);
    if (ns.progress && ns.progress.length) {
      const box = el("div", { class: "progress" });
      for (const p of ns.progress) {
        box.append(el("div", {}, g.progress(p)));
        if (p.total > 0) {
          const bar = el("div", { class: "bar" });
          const fill = el("span");
          fill.style.width = `${p.percent}%`;
          bar.append(fill);
          box.append(bar);
        }
      }
      card.append(box);
    }
    if (ns.problems && ns.problems.length) {
      const ul = el("ul", { class: "problems" });
      for (const p of ns.problems) {
        const when = new Date(p.at).toLocaleTimeString();
        ul.append(el("li", { class: p.kind }, `${when} ${p.kind === "dead_letter" ? "dead-lettered" : "error"}: ${p.reason}`));
      }
      card.append(ul);
    }
    out.push(card);
  }
  cards.replaceChildren(...out);
}

function drawSamples() {
  const box = document.getElementById("samples");
  const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.topic));
  const out = [];
  for (const t of Object.keys(state.samples || {}).sort()) {
    const d = el("details", { "data-topic": t });
    if (open.has(t)) d.open = true;
    const n = state.nodes["topic:" + t];
    d.append(el("summary", {}, `${t}${n ? ` · ${g.count(n.events_in)} events · ${g.rate(n.rate_in)}` : ""}`));
    for (const s of state.samples[t]) {
      const head = [new Date(s.at).toLocaleTimeString(), s.key ? `key ${s.key}` : "", s.dead_letter ? `dead letter: ${s.dead_letter}` : ""];
      d.append(el("pre", { class: s.dead_letter ? "dlq" : "" }, head.filter(Boolean).join(" · ") + "\n" + s.value));
    }
    out.push(d);
  }
  if (!out.length) out.push(el("p", { class: "note" }, "no events yet"));
  box.replaceChildren(...out);
}

function render() {
  updateGraph();
  drawCards();
  drawSamples();
}

async function main() {
  graph = await (await fetch("api/graph")).json();
  document.getElementById("title").textContent = graph.title || "";
  drawGraph();
  narrowQuery.addEventListener("change", drawGraph);
  const conn = document.getElementById("conn");
  const es = new EventSource("api/events");
  es.addEventListener("state", (ev) => {
    state = JSON.parse(ev.data);
    stateAt = Date.now();
    conn.textContent = "live";
    conn.className = "conn live";
    render();
  });
  es.onerror = () => {
    conn.textContent = "disconnected, retrying…";
    conn.className = "conn lost";
  };
  // The breaker's countdown moves between updates.
  setInterval(updateGraph, 1000);
}

main();
