// Destinations: each with its kind, target, health and lag; and the form to create one.
// The platform key sees every tenant's.

import { api, session } from "../api.js";
import { h, show, loading, empty, table, time } from "../dom.js";
import { destinationForm } from "../destination-form.js";
import { healthBadge, target } from "../destination-status.js";

export function destinationsTable(destinations) {
  const columns = [
    { label: "Kind", cell: (d) => h("a", { href: `#/destinations/${d.id}` }, d.kind) },
    { label: "Target", cell: (d) => h("code", { class: "target" }, target(d)) },
    { label: "Types", cell: (d) => (d.types.length ? d.types.join(", ") : "all") },
    { label: "Health", cell: (d) => healthBadge(d) },
    { label: "Lag", cell: (d) => String(d.status.lag) },
    { label: "Last error", cell: (d) => (d.status.last_error ? h("span", { class: "error-text" }, d.status.last_error) : "—") },
    { label: "Failing since", cell: (d) => time(d.status.failing_since) },
  ];
  if (session.role === "platform") columns.unshift({ label: "Tenant", cell: (d) => h("a", { href: `#/tenants/${encodeURIComponent(d.tenant)}` }, d.tenant) });
  return table(columns, destinations, { rowAttrs: (d) => ({ dataset: { destination: d.id } }) });
}

export async function render(main) {
  const list = h("section", { "aria-label": "Destinations" }, loading("Loading destinations"));
  async function refresh() {
    const { data } = await api("/destinations");
    show(list, data.length ? destinationsTable(data) : empty("No destination yet: create one below."));
  }
  show(main,
    h("h1", {}, "Destinations"),
    list,
    destinationForm({ onCreated: refresh }));
  await refresh();
}
