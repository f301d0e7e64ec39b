// End-to-end check of the dashboard in headless Chromium (Debian's), driven
// by Playwright, one browser for the whole story (tests/integration/
// test_dashboard.py sets the daemon up and changes its state):
//   1. the token login: the page loads without a token and asks for it; a
//      wrong one is refused; the right one shows the dashboard and stays in
//      sessionStorage across a reload;
//   2. state A, all up: the captions and tables say so; a drain click
//      changes that backend's state in the daemon;
//   3. state B (after "go" on stdin): one drained, one down, spool not
//      empty: the captions and tables say that instead.
//   SMTPLB_TOKEN=... node tests/e2e/dashboard.mjs http://127.0.0.1:PORT/ DRAIN DOWN
// DASHBOARD_SCREENSHOTS=DIR keeps a picture of each state there.
// playwright-core is web/'s development dependency (npm ci --prefix web).
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("../../web/package.json", import.meta.url));
const { chromium } = createRequire(web)("playwright-core");

const [url, drainTarget, downTarget] = process.argv.slice(2);
const token = process.env.SMTPLB_TOKEN;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

async function fail(message) {
  console.error("dashboard: " + message);
  await browser.close();
  process.exit(1);
}
const screenshot = async (page, name) => {
  const dir = process.env.DASHBOARD_SCREENSHOTS;
  if (dir) await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
};
const text = (page, selector) => page.locator(selector).first().textContent();
function expect(ok, message) {
  if (!ok) throw new Error(message);
}
// Waits until `check` (run in the page) returns true; on a timeout, says
// what the page showed then.
async function waitFor(page, what, check, arg) {
  try {
    await page.waitForFunction(check, arg, { timeout: 30000 });
  } catch (e) {
    const shown = await page.evaluate(() => [
      document.title,
      document.getElementById("summary")?.textContent,
      document.getElementById("backends-caption")?.textContent,
      document.getElementById("caption-spool")?.textContent,
      document.getElementById("error")?.textContent,
      document.getElementById("login-error")?.textContent].join(" | "));
    throw new Error(`${what}: not seen (${e.message.split("\n")[0]}); the page showed: ${shown}`);
  }
}

async function login(page) {
  await page.goto(url);
  await waitFor(page, "the login form", () => !document.getElementById("login").hidden);
  expect(await page.locator("#dashboard").isHidden(), "the dashboard shows without a token");
  await page.fill("#token", "not-the-token-0123456789");
  await page.click("#login button[type=submit]");
  await waitFor(page, "the wrong token refused", () =>
    document.getElementById("login-error").textContent.includes("not accepted"));
  await page.fill("#token", token);
  await page.click("#login button[type=submit]");
  await waitFor(page, "the dashboard after login", () =>
    !document.getElementById("dashboard").hidden && document.querySelectorAll("tr.backend").length > 0);
  const kept = await page.evaluate(() => sessionStorage.getItem("smtplb-token"));
  expect(kept === token, "the token is not in sessionStorage");
  await page.reload();
  await waitFor(page, "the dashboard after a reload, without asking again", () =>
    !document.getElementById("dashboard").hidden && document.getElementById("login").hidden &&
    document.querySelectorAll("tr.backend").length > 0);
}

async function stateAllUp(page, backends) {
  await waitFor(page, "all up, with traffic", (n) => {
    const rows = [...document.querySelectorAll("tr.backend")];
    return rows.length === n &&
      rows.every((r) => r.querySelector(".health").textContent === "up") &&
      rows.filter((r) => Number(r.querySelector(".delivered").textContent) > 0).length >= n - 1 &&
      rows.some((r) => Number(r.querySelector(".rate").textContent) > 0);
  }, backends);
  const caption = await text(page, "#backends-caption");
  expect(caption.includes(`${backends} up, 0 busy, 0 down, 0 misconfigured; 0 drained`),
         `backends caption: ${caption}`);
  const health = await text(page, "#caption-health");
  expect(health === `Health (${backends} up, 0 busy, 0 down, 0 misconfigured)`, `health: ${health}`);
  const spool = await text(page, "#caption-spool");
  expect(spool === "Spool depth: empty", `spool caption: ${spool}`);
  expect(await page.locator("#spool-figure").isVisible(), "no spool chart though a pool spools");
  const daemon = await text(page, "#daemon");
  expect(/version \d+\.\d+\.\d+ · up \d+ s · 0 reloads, 0 refused/.test(daemon), `daemon: ${daemon}`);
  const listener = await page.locator("tr.listener").first().evaluate((r) =>
    [...r.cells].map((c) => c.textContent));
  expect(listener[1].startsWith("127.0.0.1:") && listener[2] === "smtp" && listener[3] === "inbound",
         `listener row: ${listener}`);
  const charts = await page.locator(".uplot").count();
  expect(charts === 4, `expected 4 charts (rate, classes, health, spool), found ${charts}`);
  const lastCheck = await text(page, "tr.backend .last-check");
  expect(/^healthy at \w+.* \(\d+ s ago\)$/.test(lastCheck), `last check: ${lastCheck}`);
  const wide = await page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(wide <= 0, `the page scrolls sideways by ${wide} px at 1280 px`);
}

async function drain(page) {
  await page.click(`tr.backend[data-backend="${drainTarget}"] button[data-action="drain"]`);
  await waitFor(page, "the drained row", (name) =>
    document.querySelector(`tr.backend[data-backend="${name}"] .admin`)?.textContent === "drain",
    drainTarget);
  const response = await fetch(new URL("/api/v1/status", url),
                               { headers: { Authorization: "Bearer " + token } });
  const status = await response.json();
  const drained = status.pools.flatMap((p) => p.backends).find((b) => b.name === drainTarget);
  expect(drained.admin === "drain", `the daemon says ${drained.admin}, not drain`);
}

async function stateDrainedDownSpooled(page, backends) {
  await waitFor(page, "one drained, one down, spool not empty", () =>
    /Spool depth: [1-9]\d* queued/.test(document.getElementById("caption-spool").textContent) &&
    document.getElementById("backends-caption").textContent.includes("1 down"));
  const caption = await text(page, "#backends-caption");
  expect(caption.includes(`${backends - 1} up, 0 busy, 1 down, 0 misconfigured; 1 drained`),
         `backends caption: ${caption}`);
  const health = await text(page, "#caption-health");
  expect(health === `Health (${backends - 1} up, 0 busy, 1 down, 0 misconfigured)`, `health: ${health}`);
  const down = `tr.backend[data-backend="${downTarget}"]`;
  expect(await text(page, `${down} .health`) === "down", "the stopped backend is not shown down");
  expect(await page.locator(`${down} .health.state-down`).count() === 1, "down is not styled down");
  const change = await text(page, `${down} .last-change`);
  expect(change.startsWith("up → down by "), `last change: ${change}`);
  const summary = await text(page, "#summary");
  expect(/spool: [1-9]\d* queued/.test(summary), `summary: ${summary}`);
  const spooled = await page.locator("tr.listener").first().evaluate((r) => r.cells[12].textContent);
  expect(Number(spooled) >= 1, `the listener shows ${spooled} spooled`);
}

try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await login(page);
  const backends = await page.locator("tr.backend").count();
  await stateAllUp(page, backends);
  await screenshot(page, "state-a");
  await drain(page);
  console.log("state A: ok");
  const next = await lines.next();
  expect(!next.done && next.value.trim() === "go", "no go for state B");
  await stateDrainedDownSpooled(page, backends);
  await screenshot(page, "state-b");
  expect(errors.length === 0, "page errors: " + errors.join("; "));
  console.log(`dashboard: ok (login, ${backends} backends all up, then ${drainTarget} drained, ` +
              `${downTarget} down, spool not empty)`);
} catch (e) {
  await fail(e.message);
}
await browser.close();
process.exit(0);
