// One tenant (platform key): its keys (create: shown once; revoke) and its destinations
// with their health.

import { api, query } from "../api.js";
import { h, show, loading, empty, table, time, problem, flash, confirmDialog, secretOnce, badge, busy } from "../dom.js";
import { destinationsTable } from "./destinations.js";

export async function render(main, [tenant]) {
  const keys = h("section", { "aria-labelledby": "keys-heading" });
  const keyList = h("div", {}, loading("Loading keys"));
  const created = h("div");
  const destinations = h("section", { "aria-labelledby": "destinations-heading" }, loading("Loading destinations"));

  async function loadKeys() {
    const all = [];
    let after;
    for (;;) {
      const page = await api(`/platform/tenants/${encodeURIComponent(tenant)}/keys${query({ after, limit: 1000 })}`);
      all.push(...page.data);
      if (!page.has_more) break;
      after = page.next_cursor;
    }
    show(keyList, all.length ? table([
      { label: "Key id", cell: (k) => h("code", {}, k.id) },
      { label: "Role", cell: (k) => k.role },
      { label: "Created", cell: (k) => time(k.created) },
      { label: "Expires", cell: (k) => (k.expires_at ? time(k.expires_at) : "never") },
      { label: "State", cell: (k) => (k.revoked_at ? [badge("revoked", "muted"), " ", time(k.revoked_at)] : badge("active", "ok")) },
      { label: "", cell: (k) => (k.revoked_at ? null : revokeButton(k)) },
    ], all, { rowAttrs: (k) => ({ dataset: { key: k.id } }) }) : empty("No client key yet."));
  }

  function revokeButton(key) {
    const status = h("span");
    const button = h("button", { type: "button", class: "danger small" }, "Revoke");
    button.addEventListener("click", async () => {
      if (!(await confirmDialog(`Revoke key ${key.id}? It stops working at once, on every replica.`, "Revoke"))) return;
      await busy(button, status, async () => {
        await api(`/platform/keys/${key.id}`, { method: "DELETE" });
        flash("Key revoked.");
        await loadKeys();
      });
    });
    return h("span", {}, button, status);
  }

  const role = h("select", { id: "key-role", name: "role" }, h("option", { value: "client" }, "client"), h("option", { value: "platform" }, "platform"));
  const expires = h("input", { id: "key-expires", name: "expires_at", type: "datetime-local" });
  const submit = h("button", { type: "submit" }, "Create key");
  const status = h("div", { class: "form-status" });
  const form = h("form", { class: "inline", "aria-label": "New key" },
    h("label", { for: "key-role" }, "Role"), role,
    h("label", { for: "key-expires" }, "Expires (optional)"), expires,
    submit, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { role: role.value };
    if (expires.value) body.expires_at = new Date(expires.value).toISOString();
    await busy(submit, status, async () => {
      const key = await api(`/platform/tenants/${encodeURIComponent(tenant)}/keys`, { method: "POST", body });
      status.replaceChildren();
      show(created, secretOnce(`New ${key.role} key ${key.id}`, key.key));
      await loadKeys();
    });
  });

  show(keys, h("h2", { id: "keys-heading" }, "API keys"),
    h("p", { class: "hint" }, "A platform key acts for every tenant and is not listed under one."),
    keyList, form, created);
  show(main,
    h("p", {}, h("a", { href: "#/tenants" }, "← Tenants")),
    h("h1", {}, "Tenant ", h("code", {}, tenant)),
    keys,
    destinations);
  try {
    await loadKeys();
  } catch (err) {
    show(keyList, problem(err));
  }
  try {
    const { data } = await api(`/destinations${query({ tenant })}`);
    show(destinations, h("h2", { id: "destinations-heading" }, "Destinations"),
      data.length ? destinationsTable(data) : empty("This tenant has no destination."));
  } catch (err) {
    show(destinations, h("h2", { id: "destinations-heading" }, "Destinations"), problem(err));
  }
}
