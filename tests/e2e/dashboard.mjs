// End-to-end check of the dashboard in headless Chromium (Debian's), driven
// by Playwright: the page loads, shows three backends carrying traffic with
// charts, and a drain click changes that backend's state in the daemon.
//   node tests/e2e/dashboard.mjs http://127.0.0.1:PORT/ BACKEND
// playwright-core is web/'s development dependency (npm ci --prefix web).
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("../../web/package.json", import.meta.url));
const { chromium } = createRequire(web)("playwright-core");

const [url, target] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const fail = async (message) => {
  console.error("dashboard: " + message);
  await browser.close();
  process.exit(1);
};
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  // Three backend rows, each with delivered messages.
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("tr.backend")];
    return rows.length === 3 &&
      rows.every((r) => Number(r.querySelector(".delivered").textContent) > 0);
  }, null, { timeout: 20000 });
  // The charts are uPlot's, with a line per backend.
  const charts = await page.locator(".uplot").count();
  if (charts !== 3) await fail(`expected 3 charts, found ${charts}`);
  const legend = await page.locator("#chart-rate .u-legend .u-series").count();
  if (legend !== 4) await fail(`expected 3 backends in the rate legend, found ${legend - 1}`);
  // Drain one backend by its button; the row and the daemon agree.
  await page.click(`tr.backend[data-backend="${target}"] button[data-action="drain"]`);
  await page.waitForFunction((name) =>
    document.querySelector(`tr.backend[data-backend="${name}"] .admin`)?.textContent === "drain",
    target, { timeout: 10000 });
  const status = await (await fetch(new URL("/api/v1/status", url))).json();
  const drained = status.pools[0].backends.find((b) => b.name === target);
  if (drained.admin !== "drain") await fail(`the daemon says ${drained.admin}, not drain`);
  if (errors.length) await fail("page errors: " + errors.join("; "));
  console.log(`dashboard: ok (3 backends with traffic, ${charts} charts, ${target} drained)`);
} catch (e) {
  await fail(e.message);
}
await browser.close();
