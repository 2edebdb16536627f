// Drives headless Chromium through Caxton's status page as a person would:
// open it, give the token, see the agents, search memory, open a
// conversation, look at it on a phone, reload. Run by tests/status_page.rs
// with:
//   CAXTON_URL        the server (http://127.0.0.1:PORT)
//   CAXTON_TOKEN      its API token
//   EXPECT_AGENTS     comma-separated agent names the page must list
//   EXPECT_HIT        entity name the search for SEARCH_QUERY must show
//   SEARCH_QUERY      what to type into the search box
//   CONVERSATION_ID   a conversation to open; EXPECT_IN_THREAD a text in it
//   ARTIFACTS         directory for the screenshots
// Prints one JSON line of timings; exits non-zero on the first failure.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const require = createRequire(process.env.DRIVER_DIR + "/");
const { chromium } = require("playwright-core");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("CAXTON_URL");
const artifacts = env("ARTIFACTS");
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // This machine has no internet: without these Chromium keeps trying to
  // reach Google's services.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  // A refused request is logged by the browser itself; which requests
  // were refused is judged from the responses below instead: a page still
  // fetching with the wrong token when the right one is given is not a
  // fault, a refusal of the right token is.
  page.on("console", (msg) => {
    if (msg.type() === "error" && !/status of 401/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  page.on("response", (response) => {
    const sent = response.request().headers()["authorization"];
    if (response.status() === 401 && sent === `Bearer ${env("CAXTON_TOKEN")}`) {
      problems.push(`the right token was refused: ${response.url()}`);
    }
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()}`));
  page.on("request", (request) => {
    if (!request.url().startsWith(base) && !request.url().startsWith("data:")) {
      problems.push(`request to another host: ${request.url()}`);
    }
  });

  // The page loads without a token and asks for one.
  const started = Date.now();
  await page.goto(`${base}/`);
  const loaded = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    return nav ? nav.loadEventEnd - nav.startTime : null;
  });
  if (!page.url().endsWith("/ui/")) throw new Error(`/ did not lead to /ui/ but to ${page.url()}`);
  await page.locator("#login").waitFor({ state: "visible" });
  // A wrong token is refused and asked again (a 401 on purpose: not a fault).
  await page.fill("#token", "not-the-token");
  await page.click("#login button");
  await page.locator("#login-error").filter({ hasText: "not accepted" }).waitFor();
  await page.fill("#token", env("CAXTON_TOKEN"));
  await page.click("#login button");

  // The agents, with their kinds and counters.
  const shown = Date.now();
  for (const name of env("EXPECT_AGENTS").split(",")) {
    await page.locator(`#agents tr[data-agent="${name}"]`).waitFor();
  }
  const firstData = Date.now() - shown;
  const echoRow = await page.locator('#agents tr[data-agent="echo"]').innerText();
  if (!/agent \(component\)/.test(echoRow) || !/running/.test(echoRow)) {
    throw new Error(`the echo row reads ${JSON.stringify(echoRow)}`);
  }
  await page.locator("#embeddings").filter({ hasText: "ready" }).waitFor();
  // Two samples draw the rate sparklines.
  await page.locator("#spark-requests polyline").waitFor({ state: "attached", timeout: 15000 });
  await page.screenshot({ path: join(artifacts, "status-desktop.png"), fullPage: true });

  // Memory search.
  await page.fill("#query", env("SEARCH_QUERY"));
  await page.click("#search button");
  const hit = page.locator("#hits li").filter({ hasText: env("EXPECT_HIT") });
  await hit.first().waitFor();
  const hitText = await hit.first().innerText();
  if (!/similarity/.test(hitText)) throw new Error(`the hit was not a semantic match: ${hitText}`);
  await page.screenshot({ path: join(artifacts, "status-search.png"), fullPage: true });

  // A conversation opens and reads as a thread.
  const id = env("CONVERSATION_ID");
  await page.locator(`#conversations a[data-id="${id}"]`).click();
  await page.locator("#thread-messages li").filter({ hasText: env("EXPECT_IN_THREAD") }).first().waitFor();
  const thread = await page.locator("#thread-messages").innerText();
  if (!thread.includes("→")) throw new Error(`the thread shows no sender and receiver: ${thread}`);
  await page.locator("#thread").screenshot({ path: join(artifacts, "status-conversation.png") });

  // A phone: everything fits the width.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth);
  if (overflow > 1) throw new Error(`on a 390 px wide screen the page is ${overflow} px too wide`);
  await page.screenshot({ path: join(artifacts, "status-phone.png"), fullPage: true });

  // The token lasts for the session: a reload does not ask again.
  await page.reload();
  await page.locator('#agents tr[data-agent="echo"]').waitFor();
  if (await page.locator("#login").isVisible()) throw new Error("the reload asked for the token again");

  if (problems.length) throw new Error(`the browser reported:\n${problems.join("\n")}`);
  console.log(JSON.stringify({ load_ms: loaded, first_data_ms: firstData, total_ms: Date.now() - started }));
} finally {
  await browser.close();
}
