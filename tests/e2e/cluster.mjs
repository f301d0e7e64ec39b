// The dashboard's cluster section in headless Chromium (Debian's), driven
// by Playwright: tests/integration/test_cluster_nodes.py runs three nodes,
// one of them with another configuration and a backend down for it only.
// Waits until the section lists NODES nodes and one row of the opinions
// table has a "down" cell, then prints what the section shows as JSON.
//   node tests/e2e/cluster.mjs http://127.0.0.1:PORT/ NODES
// playwright-core is web/'s development dependency (npm ci --prefix web).
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("../../web/package.json", import.meta.url));
const { chromium } = createRequire(web)("playwright-core");

const [url, nodes] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForFunction(
    (n) => !document.getElementById("cluster-section").hidden &&
      document.querySelectorAll("#cluster-nodes tbody tr").length === n &&
      [...document.querySelectorAll("#cluster-opinions tbody td")]
        .some((td) => td.textContent === "down"),
    Number(nodes), { timeout: 30000 });
  const shown = await page.evaluate(() => ({
    caption: document.getElementById("cluster-caption").textContent,
    nodes: [...document.querySelectorAll("#cluster-nodes tbody tr")]
      .map((tr) => [...tr.cells].map((td) => td.textContent)),
    opinions: [...document.querySelectorAll("#cluster-opinions tr")]
      .map((tr) => [...tr.cells].map((td) => td.textContent)),
  }));
  console.log(JSON.stringify(shown));
} catch (e) {
  console.error("cluster dashboard: " + e.message.split("\n")[0]);
  process.exitCode = 1;
} finally {
  await browser.close();
}
