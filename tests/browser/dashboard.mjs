// Drives the dashboard in Debian's headless Chromium: sign-in page, one-time link, the figures as
// shown, a filter, a device search, sign-out, sign-in with a token. Prints one JSON object of
// what the page showed (the Rust test compares it with the API); exits non-zero on any console
// message, failed request or unexpected page.
//
// Environment: GRAPHPILOT_BASE (http://127.0.0.1:PORT), GRAPHPILOT_SIGNIN_URL (from
// `graphpilot dashboard`), GRAPHPILOT_TOKEN (a read token for the form), GRAPHPILOT_SERIAL (a
// serial number to search), GRAPHPILOT_SCREENSHOT (where to save the page), CHROMIUM (the browser).
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("GRAPHPILOT_BASE");
const problems = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
const page = await context.newPage();
try {
  page.on("console", (message) => problems.push(`console ${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()} for ${response.url()}`);
  });

  /** Waits until the dashboard has answered every panel of the current filters. */
  async function loaded() {
    await page.waitForFunction(() => {
      const status = document.getElementById("status");
      return status && status.textContent !== "Loading…";
    }, null, { timeout: 20000 });
    const statusText = await page.textContent("#status");
    if (await page.$eval("#status", (node) => node.classList.contains("error"))) {
      problems.push(`dashboard error: ${statusText}`);
    }
  }

  /** What the page shows, read from the DOM. */
  async function shown() {
    return page.evaluate(() => {
      const $ = (id) => document.getElementById(id);
      const value = (id) => $(id).dataset.value;
      const text = (id) => $(id).textContent;
      const rows = (id) => [...$(id).tBodies[0].rows]
        .filter((row) => !row.querySelector("td.empty"))
        .map((row) => [...row.cells].map((cell) => ({ text: cell.textContent, value: cell.dataset.value ?? null })));
      return {
        from: $("content").dataset.from,
        to: $("content").dataset.to,
        headline: Object.fromEntries(
          ["successRate", "deployments", "succeeded", "failed", "inProgress", "finished", "timedOut", "p50", "p90"]
            .map((id) => [id, { text: text(id), value: value(id) }])),
        timeline: [...document.querySelectorAll("#timeline g[data-start]")].map((g) => ({
          start: g.dataset.start, succeeded: Number(g.dataset.succeeded), failed: Number(g.dataset.failed),
        })),
        bucket: text("bucket"),
        profiles: rows("profiles"),
        failures: rows("failures"),
        stuck: rows("stuck"),
        stuckCount: value("stuckCount"),
        blockers: rows("blockers"),
        profileOptions: [...$("profile").options].map((o) => o.value),
      };
    });
  }

  // Without a session: the sign-in page, answered 200.
  const signIn = await page.goto(`${base}/dashboard`);
  if (signIn.status() !== 200) problems.push(`sign-in page answered ${signIn.status()}`);
  const hasForm = await page.$("form[action='/dashboard/session'] textarea[name=token]");
  if (!hasForm) problems.push("no token form on the sign-in page");
  const csp = signIn.headers()["content-security-policy"];

  // The one-time link signs in and lands on the dashboard.
  await page.goto(env("GRAPHPILOT_SIGNIN_URL"));
  if (!page.url().endsWith("/dashboard")) problems.push(`the link landed on ${page.url()}`);
  await loaded();
  const initial = await shown();
  const cookies = await context.cookies();

  // One device's history.
  await page.fill("#serial", env("GRAPHPILOT_SERIAL"));
  await page.click("#deviceSearch button");
  await page.waitForSelector("#device:not([hidden])");
  await page.waitForFunction(() => document.getElementById("deviceAttempts").textContent !== "");
  const device = await page.evaluate(() => ({
    serial: document.getElementById("deviceSerial").textContent,
    attempts: document.getElementById("deviceAttempts").dataset.value,
    firstTimeRight: document.getElementById("deviceFirstTimeRight").dataset.value,
    rows: document.getElementById("deviceEvents").tBodies[0].rows.length,
  }));
  await page.screenshot({ path: env("GRAPHPILOT_SCREENSHOT"), fullPage: true });

  // The widest preset, then a profile filter.
  await page.check("input[name=preset][value='30d']");
  await loaded();
  const profile = initial.profileOptions.find((option) => option !== "");
  let filtered = null;
  if (profile) {
    await page.selectOption("#profile", profile);
    await loaded();
    filtered = { profile, ...(await shown()) };
  }

  // A stuck device's serial number opens its history.
  const stuckSerial = await page.$("#stuck tbody button.link");
  let stuckDevice = null;
  if (stuckSerial) {
    const serial = await stuckSerial.textContent();
    await stuckSerial.click();
    await page.waitForFunction((s) => document.getElementById("deviceSerial").textContent === s, serial);
    stuckDevice = { serial, attempts: await page.$eval("#deviceAttempts", (n) => n.dataset.value) };
  }

  // Keyboard: the filters can be reached and used without a mouse.
  await page.focus("#profile");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);

  // Sign out: back to the sign-in page, and the old cookie opens nothing.
  await page.click("form.signout button");
  await page.waitForSelector("form[action='/dashboard/session']");
  const afterSignOut = await page.evaluate(async () => (await fetch("/graphpilot/analytics/summary")).status);
  // That 401 was asked for: it is not a problem of the page.
  const expected401 = problems.findIndex((p) => p.startsWith("HTTP 401") && p.includes("/graphpilot/analytics/summary"));
  if (expected401 >= 0) problems.splice(expected401, 1);
  const consoleAfter = problems.findIndex((p) => p.startsWith("console error") && p.includes("401"));
  if (consoleAfter >= 0) problems.splice(consoleAfter, 1);

  // Sign in with a pasted token.
  await page.fill("textarea[name=token]", env("GRAPHPILOT_TOKEN"));
  await page.click("form[action='/dashboard/session'] button");
  await page.waitForURL(`${base}/dashboard`);
  await loaded();
  const withToken = await page.textContent("#tenant");

  console.log(JSON.stringify({ problems, csp, cookies, initial, filtered, device, stuckDevice, focused, afterSignOut, withToken }));
} catch (error) {
  // Say where it stopped and what the page was showing.
  const html = await page.content().catch(() => "");
  console.error(JSON.stringify({ error: error.message, problems, url: page.url(), html: html.slice(0, 3000) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
