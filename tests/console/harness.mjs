// What the console tests share: the server under test (started by scripts/console.sh and
// named by environment variables), API calls made as the platform would, a local webhook
// receiver, and a browser page that records every console error.

import http from "node:http";
import { mkdir } from "node:fs/promises";
import { chromium } from "playwright-core";

export const BASE = process.env.EVENTGATE_URL;
export const PLATFORM_KEY = process.env.EVENTGATE_PLATFORM_KEY;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SCREENSHOTS = process.env.EVENTGATE_SCREENSHOTS;

if (!BASE || !PLATFORM_KEY) {
  throw new Error("run these tests with scripts/console.sh (EVENTGATE_URL and EVENTGATE_PLATFORM_KEY unset)");
}

/** An API call outside the browser; throws on a status other than `expect`. */
export async function call(method, path, { key = PLATFORM_KEY, body, expect = [200, 201, 204] } = {}) {
  const response = await fetch(BASE + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (![expect].flat().includes(response.status)) {
    throw new Error(`${method} ${path}: ${response.status} ${text}`);
  }
  return text ? JSON.parse(text) : null;
}

let counter = 0;
/** A fresh tenant id per test run and call. */
export function unique(prefix) {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/** A tenant with a client key. */
export async function tenantWithKey() {
  const id = unique("t");
  await call("POST", "/platform/tenants", { body: { id, name: `Tenant ${id}` } });
  const key = await call("POST", `/platform/tenants/${id}/keys`, { body: { role: "client" } });
  return { tenant: id, key: key.key };
}

/** Publishes a portfolio creation for `tenant`; the created event. */
export async function publishPortfolio(tenant, id = unique("P")) {
  return call("POST", "/platform/events", {
    body: { tenant, subject: "portfolios", action: "creation", data: { id, external_id: `ext-${id}`, owned_by_user_id: "U1" } },
  });
}

/**
 * A webhook receiver on 127.0.0.1: records every request; answers `status()` (200 unless
 * the test changes it).
 */
export async function receiver() {
  const requests = [];
  const state = { status: 200 };
  const server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => { body += chunk; });
    request.on("end", () => {
      requests.push({ headers: request.headers, body });
      response.writeHead(state.status, { "Content-Type": "text/plain" });
      response.end(state.status === 200 ? "ok" : "receiver says no");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/hook`,
    requests,
    answer(status) { state.status = status; },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Waits until `check()` is truthy (polling), or fails with `what`. */
export async function until(what, check, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

let browser;
export async function launch() {
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  return browser;
}

export async function closeBrowser() {
  await browser?.close();
  browser = undefined;
}

/**
 * A page that records console errors and uncaught exceptions. `expected` lists patterns of
 * errors a test provokes on purpose (a refused key's 401): those are allowed, and must
 * appear. `assertClean()` fails the test on any other.
 */
export async function openPage({ width = 1280, height = 900, expected = [] } = {}) {
  const context = await (await launch()).newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
  page.assertClean = () => {
    const unexpected = errors.filter((text) => !expected.some((pattern) => pattern.test(text)));
    if (unexpected.length) throw new Error(`console errors on the page:\n${unexpected.join("\n")}`);
    for (const pattern of expected) {
      if (!errors.some((text) => pattern.test(text))) throw new Error(`expected a console error matching ${pattern}`);
    }
  };
  page.finish = async () => {
    page.assertClean();
    await context.close();
  };
  return page;
}

/** Signs in with `key` and waits for the signed-in shell. */
export async function signIn(page, key) {
  await page.goto(`${BASE}/console/`);
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

/** Saves a screenshot as docs/console/<name>.png when EVENTGATE_SCREENSHOTS names a folder. */
export async function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: false });
}
