// Drives the dashboard of a running `rivven-connect local --ui` in headless
// Chromium through playwright-core (TestDashboardInChromium starts it).
// Environment: DASH_URL (the page), BREAK_URL (makes the webhook sink's
// server fail), NODES (JSON list of node ids the graph must show),
// SECRET (a secret value that must never show), SHOT and SHOT_NARROW
// (screenshot paths), CHROMIUM (the browser binary).
const { chromium } = require("playwright-core");

const env = (k) => {
  if (!process.env[k]) throw new Error(`${k} is not set`);
  return process.env[k];
};

async function main() {
  const base = env("DASH_URL");
  const browser = await chromium.launch({ executablePath: env("CHROMIUM"), args: ["--no-sandbox", "--disable-gpu"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    const problems = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e}`));
    page.on("console", (m) => { if (m.type() === "error") problems.push(`console error: ${m.text()}`); });
    page.on("request", (r) => { if (!r.url().startsWith(base)) problems.push(`request to another origin: ${r.url()}`); });
    await page.goto(base);

    // The graph shows every connector, topic and step.
    for (const id of JSON.parse(env("NODES"))) {
      await page.waitForSelector(`[data-node="${id}"]`, { timeout: 15000 });
    }
    await page.waitForSelector("#conn.live", { timeout: 15000 });

    // Counters rise: the sink's events in, read twice from its card.
    const sinkIn = async () => {
      const t = await page.textContent('[data-card="sink:hook"] [data-field="events"]');
      return Number((/in ([\d.]+)(k?)/.exec(t) || [])[1] || 0) * (/in [\d.]+k/.test(t) ? 1000 : 1);
    };
    await page.waitForFunction(() => {
      const t = document.querySelector('[data-card="sink:hook"] [data-field="events"]');
      return t && /in [1-9]/.test(t.textContent);
    }, null, { timeout: 30000 });
    const first = await sinkIn();
    await page.waitForFunction((n) => {
      const t = document.querySelector('[data-card="sink:hook"] [data-field="events"]').textContent;
      const m = /in ([\d.]+)(k?)/.exec(t);
      return m && Number(m[1]) * (m[2] ? 1000 : 1) > n;
    }, first, { timeout: 30000 });
    const second = await sinkIn();
    const rateText = await page.textContent('[data-node="source:orders"] text.line:nth-of-type(3)');
    const healthy = await page.getAttribute('[data-node="sink:hook"]', "data-health");

    // Breaking the sink turns its node red, with the reason.
    const r = await fetch(env("BREAK_URL"), { method: "POST" });
    if (!r.ok) throw new Error(`break: ${r.status}`);
    await page.waitForSelector('[data-node="sink:hook"][data-health="bad"]', { timeout: 90000 });
    const boxText = await page.$$eval('[data-node="sink:hook"] text', (ts) => ts.map((t) => t.textContent).join(" | "));
    const title = await page.textContent('[data-node="sink:hook"] title');
    await page.waitForSelector('[data-card="sink:hook"] .problems li', { timeout: 15000 });
    const reasons = await page.$$eval('[data-card="sink:hook"] .problems li', (ls) => ls.map((l) => l.textContent));
    const cardClass = await page.getAttribute('[data-card="sink:hook"]', "class");
    const otherSink = await page.getAttribute('[data-node="sink:archive"]', "data-health");

    // Samples: every topic's recent events, the secret blanked.
    await page.waitForSelector('details[data-topic="demo.orders"] pre', { state: "attached", timeout: 15000 });
    // Opened as a click would; the page keeps it open across updates.
    await page.$eval('details[data-topic="demo.orders"]', (d) => { d.open = true; });
    await page.waitForSelector('details[data-topic="demo.orders"] pre', { timeout: 15000 });
    const html = await page.content();
    const sample = await page.textContent('details[data-topic="demo.orders"] pre');

    await page.screenshot({ path: env("SHOT"), fullPage: true });

    // A narrow screen: the graph reads top to bottom and nothing scrolls
    // sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const narrow = await page.evaluate(() => {
      const svg = document.getElementById("graph").getBoundingClientRect();
      const src = document.querySelector('[data-node="source:orders"]').getBoundingClientRect();
      const sink = document.querySelector('[data-node="sink:hook"]').getBoundingClientRect();
      return { scrollWidth: document.documentElement.scrollWidth, svgWidth: svg.width, sourceAboveSink: src.bottom <= sink.top };
    });
    await page.screenshot({ path: env("SHOT_NARROW"), fullPage: true });

    console.log(JSON.stringify({
      first, second, rateText, healthy, boxText, title, reasons, cardClass, otherSink,
      secretShown: html.includes(env("SECRET")), blanked: sample.includes("****"), sample: sample.slice(0, 400),
      narrow, problems,
    }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
