// The dashboard's Limits panel in headless Chromium (Debian's) through
// Playwright, against a daemon that tests/integration/test_limits_api.py has
// driven over a limit: after the token login, the panel must show that
// limit's refusals and the key at its limit, in red, and its caption add
// them up.
//   SMTPLB_TOKEN=... node tests/e2e/limits.mjs http://127.0.0.1:PORT/ LIMIT KEY REFUSED
// playwright-core is web/'s development dependency (npm ci --prefix web).
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("../../web/package.json", import.meta.url));
const { chromium } = createRequire(web)("playwright-core");

const [url, limit, key, refused] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });

function expect(ok, message) {
  if (!ok) throw new Error(message);
}

try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForFunction(() => !document.getElementById("login").hidden, null,
                             { timeout: 30000 });
  await page.fill("#token", process.env.SMTPLB_TOKEN);
  await page.click("#login button[type=submit]");
  const row = `tr.limit[data-limit="${limit}"]`;
  try {
    await page.waitForFunction(([row, n]) =>
      document.querySelector(`${row} .tempfail`)?.textContent === n, [row, refused],
      { timeout: 30000 });
  } catch (e) {
    const shown = await page.evaluate(() =>
      [document.getElementById("limits-section").hidden ? "(limits hidden)" : "",
       document.getElementById("limits-caption").textContent,
       document.querySelector("#limits tbody")?.textContent,
       document.getElementById("error").textContent].join(" | "));
    throw new Error(`${limit} with ${refused} refused: not seen; the page showed: ${shown}`);
  }
  const item = page.locator(`${row} li[data-key="${key}"]`);
  expect(await item.count() === 1, `${key} is not among the keys nearest ${limit}`);
  const words = await item.textContent();
  expect(words.startsWith(`${key}: 0 of `) && words.endsWith("(at the limit)"),
         `the key reads: ${words}`);
  expect(await item.evaluate((li) => li.classList.contains("at-limit") &&
                             getComputedStyle(li).color === "rgb(176, 0, 32)"),
         "the key at its limit is not shown in red");
  const caption = await page.locator("#limits-caption").textContent();
  expect(new RegExp(`^Limits \\(\\d+: ${refused} refused, 0 delayed since start; 1 of the keys ` +
                    "shown at their limit\\)$").test(caption), `caption: ${caption}`);
  const wide = await page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(wide <= 0, `the page scrolls sideways by ${wide} px at 1280 px`);
  expect(errors.length === 0, "page errors: " + errors.join("; "));
  console.log(`limits panel: ok (${limit}: ${refused} refused, ${key} at its limit)`);
} catch (e) {
  console.error("limits panel: " + e.message);
  await browser.close();
  process.exit(1);
}
await browser.close();
process.exit(0);
