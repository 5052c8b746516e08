// The console as an integrator uses it with a client key: the live tail, an event and
// where it went, a webhook destination with its attempts, retry, replay and rotation.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import {
  BASE, call, closeBrowser, openPage, publishPortfolio, receiver, screenshot, signIn, tenantWithKey, until,
} from "./harness.mjs";

after(closeBrowser);

test("a published event appears in the live tail and opens with where it went", async () => {
  const { tenant, key } = await tenantWithKey();
  const page = await openPage();
  await signIn(page, key);
  await page.waitForURL(/#\/events$/);
  await page.getByText("Live: waiting for new events").waitFor();

  const event = await publishPortfolio(tenant);
  const row = page.locator(`tr[data-event-id="${event.id}"]`);
  await row.waitFor({ timeout: 15000 });
  assert.match(await row.textContent(), /portfolios\.creation/);
  await screenshot(page, "events");

  await row.getByRole("link", { name: event.id }).click();
  await page.getByRole("heading", { name: "portfolios.creation" }).waitFor();
  const envelope = JSON.parse(await page.locator(".json pre").first().textContent());
  assert.equal(envelope.id, event.id);
  assert.deepEqual(envelope.data, event.data);
  await page.getByRole("heading", { name: "Where it went" }).waitFor();
  await page.getByText("No destination takes this event's type.").waitFor();
  await page.finish();
});

test("a webhook destination made in the console delivers, shows its attempts, retries, replays and rotates", async () => {
  const { tenant, key } = await tenantWithKey();
  const hook = await receiver();
  const page = await openPage();
  try {
    await signIn(page, key);
    await page.getByRole("link", { name: "Destinations" }).click();
    await page.getByRole("heading", { name: "Destinations" }).waitFor();
    await page.getByText("No destination yet: create one below.").waitFor();

    await page.getByLabel("Kind").selectOption("webhook");
    await page.getByLabel("URL").fill(hook.url);
    await page.getByRole("button", { name: "Create destination" }).click();
    const firstSecret = (await page.locator(".secret-value").textContent()).trim();
    assert.match(firstSecret, /^whsec_/);
    const link = page.locator("tbody tr").first().getByRole("link", { name: "webhook" });
    await link.waitFor();
    await screenshot(page, "destinations");
    await link.click();
    await page.getByRole("heading", { name: "webhook destination" }).waitFor();
    const destination = page.url().split("/").pop();

    // A delivery, and its attempt in the log with the headers the receiver really got.
    const first = await publishPortfolio(tenant);
    const got = await until("the first delivery", () => hook.requests.find((r) => r.headers["webhook-id"] === first.id));
    await until("the attempt recorded", async () => {
      const page = await call("GET", `/destinations/${destination}/attempts`, { key });
      return page.data.some((a) => a.message_id === first.id);
    });
    await page.getByRole("button", { name: "Refresh" }).click();
    const attempt = page.locator("tbody tr", { hasText: first.id });
    await attempt.waitFor();
    assert.match(await attempt.textContent(), /succeeded/);
    await attempt.getByText("Request headers").click();
    const signature = attempt.locator("dl.headers dt", { hasText: /^webhook-signature$/ }).locator("xpath=following-sibling::dd[1]");
    assert.equal((await signature.textContent()).trim(), got.headers["webhook-signature"]);
    await screenshot(page, "destination");

    // A delivery that runs out of attempts (one retry after 1 s on this server), retried
    // from the event's page once the receiver is back.
    hook.answer(500);
    const second = await publishPortfolio(tenant);
    await until("the second delivery to fail", async () => {
      const where = await call("GET", `/events/${second.id}/deliveries`, { key });
      return where.destinations[0]?.state === "failed";
    });
    hook.answer(200);
    await page.goto(`${BASE}/console/#/events/${second.id}`);
    const delivery = page.locator(`article[data-destination="${destination}"]`);
    await delivery.locator("header .badge", { hasText: "failed" }).waitFor();
    assert.match(await delivery.textContent(), /receiver says no/);
    await screenshot(page, "event");
    await delivery.getByRole("button", { name: "Retry delivery" }).click();
    await page.getByText("Delivery queued for an attempt now.").waitFor();
    await until("the retried delivery", () =>
      hook.requests.filter((r) => r.headers["webhook-id"] === second.id).length >= 3);
    await until("the retry to be delivered", async () => {
      const where = await call("GET", `/events/${second.id}/deliveries`, { key });
      return where.destinations[0]?.state === "delivered";
    });

    // Replay from before the first event: it is delivered again.
    await page.goto(`${BASE}/console/#/destinations/${destination}`);
    await page.getByRole("heading", { name: "webhook destination" }).waitFor();
    const before = await page.evaluate((created) => {
      const at = new Date(new Date(created).getTime() - 60_000);
      const pad = (n) => String(n).padStart(2, "0");
      return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
    }, first.created);
    const deliveredBefore = hook.requests.filter((r) => r.headers["webhook-id"] === first.id).length;
    await page.getByLabel("Time").fill(before);
    await page.getByRole("button", { name: "Replay" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Replay" }).click();
    await page.getByText("Replay started.").waitFor();
    await until("the replayed delivery", () =>
      hook.requests.filter((r) => r.headers["webhook-id"] === first.id).length > deliveredBefore);

    // Rotation: a new secret, shown once.
    await page.getByRole("button", { name: "Rotate signing key" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Rotate" }).click();
    await page.getByText("New signing secret").waitFor();
    const rotated = (await page.locator(".secret-value").textContent()).trim();
    assert.match(rotated, /^whsec_/);
    assert.notEqual(rotated, firstSecret);
    await page.finish();
  } finally {
    await hook.close();
  }
});

test("the catalogue shows every type with its schema and an example", async () => {
  const { key } = await tenantWithKey();
  const catalogue = await call("GET", "/catalogue");
  const page = await openPage();
  await signIn(page, key);
  await page.getByRole("link", { name: "Catalogue" }).click();
  for (const entry of catalogue.types) {
    await page.getByRole("button", { name: new RegExp(`^${entry.type.replace(".", "\\.")}`) }).waitFor();
  }
  const type = catalogue.types.find((t) => t.type === "portfolios.funding");
  await page.getByRole("button", { name: /^portfolios\.funding/ }).click();
  await page.getByRole("heading", { name: "portfolios.funding" }).waitFor();
  const example = JSON.parse(await page.locator(".json pre").first().textContent());
  assert.deepEqual(example, type.example);
  await screenshot(page, "catalogue");
  await page.finish();
});
