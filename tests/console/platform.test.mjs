// The console as the operator uses it with the platform key: tenants, keys shown once and
// revoked, delivery health; and what a refused key sees.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import {
  BASE, PLATFORM_KEY, call, closeBrowser, openPage, screenshot, signIn, tenantWithKey, unique,
} from "./harness.mjs";

after(closeBrowser);

test("the platform creates a tenant and a key, revokes it, and the revoked key cannot sign in", async () => {
  const page = await openPage();
  await signIn(page, PLATFORM_KEY);
  await page.waitForURL(/#\/tenants$/);
  const id = unique("acme");
  await page.getByLabel("Id", { exact: true }).fill(id);
  await page.getByLabel("Name", { exact: true }).fill("Acme Bank");
  await page.getByRole("button", { name: "Create tenant" }).click();
  await page.getByRole("heading", { name: `Tenant ${id}` }).waitFor();
  await page.getByText("No client key yet.").waitFor();

  await page.getByLabel("Role", { exact: true }).selectOption("client");
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = (await page.locator(".secret-value").textContent()).trim();
  assert.match(secret, /^egk_/);
  const row = page.locator("tbody tr", { hasText: "active" });
  await row.waitFor();
  const keyId = await row.getAttribute("data-key");
  await screenshot(page, "tenant");

  // The new key works: it signs in, as a client of this tenant.
  const client = await openPage();
  await signIn(client, secret);
  await client.getByText(`Client key · ${id}`).waitFor();
  await client.finish();

  await row.getByRole("button", { name: "Revoke" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
  await page.locator(`tr[data-key="${keyId}"]`, { hasText: "revoked" }).waitFor();
  await page.finish();

  // Revoked: refused at sign-in with the server's reason (the 401 is the one console error).
  const refused = await openPage({ expected: [/401/] });
  await refused.goto(`${BASE}/console/`);
  await refused.getByLabel("API key").fill(secret);
  await refused.getByRole("button", { name: "Sign in" }).click();
  await refused.getByText("This key cannot sign in").waitFor();
  assert.equal(await refused.evaluate(() => sessionStorage.getItem("eventgate.key")), null);
  await screenshot(refused, "signin-refused");
  await refused.finish();
});

test("a client signed in when its key is revoked is signed out with the reason", async () => {
  const { key } = await tenantWithKey();
  const page = await openPage({ expected: [/401/] });
  await signIn(page, key);
  // Leave the events page first: its live tail would otherwise be the call that meets the
  // 401, at a moment the test does not choose.
  await page.getByRole("link", { name: "Catalogue" }).click();
  await page.getByRole("heading", { name: "Catalogue" }).waitFor();
  const me = await call("GET", "/me", { key });
  await call("DELETE", `/platform/keys/${me.key_id}`);
  await page.getByRole("link", { name: "Destinations" }).click();
  await page.getByText("Signed out: the server refused the key").waitFor();
  await page.getByLabel("API key").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("eventgate.key")), null);
  await page.finish();
});

test("delivery health lists every tenant's destinations, failing first, and headline numbers", async () => {
  const { tenant } = await tenantWithKey();
  // A destination nobody listens at: it fails, and shows as failing.
  const failing = await call("POST", "/destinations", {
    body: { tenant, kind: "webhook", url: "http://127.0.0.1:9/nobody-listens" },
  });
  await call("POST", "/platform/events", {
    body: { tenant, subject: "portfolios", action: "creation", data: { id: unique("P"), external_id: "x", owned_by_user_id: "U1" } },
  });
  const page = await openPage();
  await signIn(page, PLATFORM_KEY);
  await page.getByRole("link", { name: "Delivery health" }).click();
  await page.getByRole("heading", { name: "Now" }).waitFor();
  await page.getByText("Events in the outbox").waitFor();
  await page.locator(`tr[data-destination="${failing.id}"]`).waitFor();
  // Reload until the failure is recorded (the first attempt is immediate).
  for (let tries = 0; tries < 50; tries++) {
    const text = await page.locator(`tr[data-destination="${failing.id}"]`).textContent();
    if (/failing/.test(text)) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
    await page.reload();
    await page.locator(`tr[data-destination="${failing.id}"]`).waitFor();
  }
  assert.match(await page.locator(`tr[data-destination="${failing.id}"]`).textContent(), /failing/);
  await screenshot(page, "health");
  await page.getByRole("link", { name: "Tenants" }).click();
  await page.getByRole("heading", { name: "Tenants" }).waitFor();
  await screenshot(page, "tenants");
  await page.finish();
});

test("every page works in a narrow window", async () => {
  const { tenant, key } = await tenantWithKey();
  await call("POST", "/platform/events", {
    body: { tenant, subject: "portfolios", action: "creation", data: { id: unique("P"), external_id: "x", owned_by_user_id: "U1" } },
  });
  const page = await openPage({ width: 390, height: 844 });
  await signIn(page, key);
  for (const [link, heading] of [["Events", "Events"], ["Destinations", "Destinations"], ["Catalogue", "Catalogue"], ["Look up", "Look up"]]) {
    await page.getByRole("link", { name: link }).click();
    await page.getByRole("heading", { name: heading, exact: true }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `${link}: the page is ${overflow}px wider than the window`);
  }
  await page.getByRole("link", { name: "Events" }).click();
  await page.locator("tbody tr").first().waitFor();
  await screenshot(page, "events-narrow");
  await page.finish();
});
