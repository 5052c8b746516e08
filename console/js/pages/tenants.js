// Tenants (platform key): the list, and the form to create one.

import { api, query } from "../api.js";
import { h, show, loading, empty, table, time, problem, flash } from "../dom.js";

export async function render(main) {
  const list = h("section", { "aria-label": "Tenants" }, loading("Loading tenants"));
  const more = h("div", { class: "more" });
  let tenants = [];
  async function load(after) {
    const page = await api(`/platform/tenants${query({ after, limit: 100 })}`);
    tenants = after ? [...tenants, ...page.data] : page.data;
    show(list, tenants.length ? table([
      { label: "Id", cell: (t) => h("a", { href: `#/tenants/${encodeURIComponent(t.id)}` }, t.id) },
      { label: "Name", cell: (t) => t.name },
      { label: "Created", cell: (t) => time(t.created) },
    ], tenants) : empty("No tenant yet: create one below."));
    if (page.has_more) {
      const button = h("button", { type: "button", class: "secondary" }, "More tenants");
      button.addEventListener("click", () => load(page.next_cursor).catch((err) => show(more, problem(err))));
      show(more, button);
    } else {
      show(more);
    }
  }

  const status = h("div", { class: "form-status" });
  const id = h("input", { id: "tenant-id", name: "id", type: "text", required: true, spellcheck: "false", placeholder: "acme" });
  const name = h("input", { id: "tenant-name", name: "name", type: "text", required: true, placeholder: "Acme Bank" });
  const submit = h("button", { type: "submit" }, "Create tenant");
  const form = h("form", { class: "card create", "aria-label": "New tenant" },
    h("h2", {}, "New tenant"),
    h("div", { class: "field" }, h("label", { for: "tenant-id" }, "Id"), id),
    h("div", { class: "field" }, h("label", { for: "tenant-name" }, "Name"), name),
    submit, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const tenant = await api("/platform/tenants", { method: "POST", body: { id: id.value.trim(), name: name.value } });
      flash(`Tenant ${tenant.id} created.`);
      location.hash = `#/tenants/${encodeURIComponent(tenant.id)}`;
    } catch (err) {
      show(status, problem(err));
    } finally {
      submit.disabled = false;
    }
  });
  show(main, h("h1", {}, "Tenants"), list, more, form);
  await load();
}
