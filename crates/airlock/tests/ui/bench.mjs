// Web UI load benchmark, run by `airlock-bench ui`: Airlock's UI and OpenBao's, side by side
// in the same headless Chromium. Each run is a new browser context (an empty cache, no
// cookies): the time until the sign-in page is usable, the load event, the first
// contentful paint, and the bytes transferred (compressed as sent). For Airlock also the
// first page after signing in. Prints medians and p90s over RUNS runs and the ratios.
//
// Env: A_URL, A_TOKEN (Airlock), B_URL (OpenBao, its UI enabled), RUNS (default 10).

import { chromium } from 'playwright-core';

const RUNS = Number(process.env.RUNS || 10);
const targets = [
  { name: 'airlock', url: process.env.A_URL, ready: 'input[name=token]' },
  { name: 'openbao', url: process.env.B_URL, ready: 'input, button' },
];

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });

function stat(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.round((s.length - 1) * p))];
  return { p50: q(0.5), p90: q(0.9) };
}

async function once(t) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  let bytes = 0;
  page.on('response', async (r) => {
    const size = Number(r.headers()['content-length'] || 0) || (await r.body().catch(() => Buffer.alloc(0))).length;
    bytes += size;
  });
  const t0 = Date.now();
  await page.goto(`${t.url}/ui/`, { waitUntil: 'load' });
  await page.waitForSelector(t.ready, { timeout: 30_000 });
  const usable = Date.now() - t0;
  const perf = await page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    return { load: n ? n.loadEventEnd : 0, fcp: fcp ? fcp.startTime : 0 };
  });
  let firstPage = 0;
  if (t.name === 'airlock' && process.env.A_TOKEN) {
    await page.fill('input[name=token]', process.env.A_TOKEN);
    const s0 = Date.now();
    await page.click('form button[type=submit]');
    await page.waitForSelector('h1:text("Secrets engines")');
    firstPage = Date.now() - s0;
  }
  await ctx.close();
  return { usable, load: perf.load, fcp: perf.fcp, bytes, firstPage };
}

const results = {};
for (const t of targets) {
  if (!t.url) continue;
  await once(t); // the server's own first-request costs are not the browser's
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await once(t));
  results[t.name] = runs;
}
await browser.close();

const row = (label, key, unit, fmt = (v) => v.toFixed(0)) => {
  const a = results.airlock ? stat(results.airlock.map((r) => r[key])) : null;
  const b = results.openbao ? stat(results.openbao.map((r) => r[key])) : null;
  const ratio = a && b && a.p50 > 0 ? (b.p50 / a.p50).toFixed(1) + 'x' : '';
  console.log(`${label.padEnd(34)} | airlock p50 ${fmt(a.p50).padStart(8)} ${unit} p90 ${fmt(a.p90).padStart(8)} ${unit} | openbao p50 ${b ? fmt(b.p50).padStart(8) : '       -'} ${unit} p90 ${b ? fmt(b.p90).padStart(8) : '       -'} ${unit} | ${ratio}`);
};
console.log(`web UI, cold cache, ${RUNS} runs each (new browser context per run)`);
row('sign-in page usable', 'usable', 'ms');
row('load event', 'load', 'ms');
row('first contentful paint', 'fcp', 'ms');
row('bytes transferred', 'bytes', 'KiB', (v) => (v / 1024).toFixed(1));
if (results.airlock && results.airlock[0].firstPage) {
  const s = stat(results.airlock.map((r) => r.firstPage));
  console.log(`${'airlock: sign-in to first page'.padEnd(34)} | p50 ${s.p50} ms p90 ${s.p90} ms`);
}
