// Delivery health (platform key): every tenant's destinations, the failing ones first,
// the latest delivery health events, and headline numbers from /metrics.

import { api, query } from "../api.js";
import { h, show, loading, empty, problem, time, table } from "../dom.js";
import { destinationsTable } from "./destinations.js";

/** Headline numbers: a metric's samples summed over their labels. */
const HEADLINES = [
  ["eventgate_outbox_events", "Events in the outbox"],
  ["eventgate_deposits_total", "Deposits taken"],
  ["eventgate_delivery_attempts_total", "Delivery attempts"],
  ["eventgate_webhook_pending_deliveries", "Webhook deliveries pending"],
  ["eventgate_destination_lag_events", "Events waiting at destinations"],
  ["eventgate_outbox_oldest_event_age_seconds", "Oldest event's age (s)"],
  ["eventgate_feed_waiters", "Long-polls waiting"],
  ["eventgate_http_requests_total", "HTTP requests"],
];

function sums(text) {
  const totals = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/);
    if (!match) continue;
    const value = Number(match[2]);
    if (Number.isFinite(value)) totals.set(match[1], (totals.get(match[1]) ?? 0) + value);
  }
  return totals;
}

export async function render(main) {
  const numbers = h("section", { "aria-labelledby": "numbers-heading" }, loading("Loading metrics"));
  const failing = h("section", { "aria-labelledby": "failing-heading" }, loading("Loading destinations"));
  const recent = h("section", { "aria-labelledby": "events-heading" }, loading("Loading health events"));
  show(main, h("h1", {}, "Delivery health"), numbers, failing, recent);

  api("/metrics").then((text) => {
    const totals = sums(String(text));
    const shown = HEADLINES.filter(([name]) => totals.has(name));
    show(numbers, h("h2", { id: "numbers-heading" }, "Now"),
      shown.length ? h("dl", { class: "numbers" }, shown.flatMap(([name, label]) => [
        h("div", {}, h("dt", {}, label), h("dd", {}, Math.round(totals.get(name) * 100) / 100))]))
        : empty("No headline metric found."));
  }).catch((err) => show(numbers, h("h2", { id: "numbers-heading" }, "Now"), problem(err)));

  api("/destinations").then(({ data }) => {
    const rank = (d) => (d.status.failing_since || d.status.gap || d.status.failed_deliveries > 0 ? 0 : d.status.lag > 0 ? 1 : d.enabled ? 2 : 3);
    data.sort((a, b) => rank(a) - rank(b) || b.status.lag - a.status.lag);
    const bad = data.filter((d) => rank(d) === 0).length;
    show(failing, h("h2", { id: "failing-heading" }, "Destinations"),
      h("p", { class: "hint" }, `${data.length} destination(s), ${bad} failing.`),
      data.length ? destinationsTable(data) : empty("No destination yet."));
  }).catch((err) => show(failing, h("h2", { id: "failing-heading" }, "Destinations"), problem(err)));

  loadEvents().catch((err) => show(recent, h("h2", { id: "events-heading" }, "Health events"), problem(err)));
  async function loadEvents() {
    // The log is oldest first: walk to its end and show the latest.
    let after;
    let last = [];
    for (let pages = 0; pages < 20; pages++) {
      const page = await api(`/platform/delivery-events${query({ after, limit: 1000 })}`);
      if (page.data.length) last = page.data;
      if (page.data.length < 1000) break;
      after = page.next_cursor;
    }
    const latest = last.slice(-20).reverse();
    show(recent, h("h2", { id: "events-heading" }, "Latest health events"),
      latest.length ? table([
        { label: "When", cell: (e) => time(e.event.created) },
        { label: "Tenant", cell: (e) => e.tenant },
        { label: "Event", cell: (e) => h("code", {}, `${e.event.subject}.${e.event.action}`) },
        { label: "Destination", cell: (e) => h("a", { href: `#/destinations/${e.event.data.id}` }, e.event.data.id) },
      ], latest) : empty("No destination has failed, recovered or been disabled."));
  }
}
