// One event: its envelope, and where it went (each destination that takes its type, and
// a webhook's attempts), with a retry for a webhook delivery that failed.

import { api } from "../api.js";
import { h, show, jsonBlock, loading, empty, flash, busy } from "../dom.js";
import { attemptsTable, outcomeBadge } from "../attempts.js";

export async function render(main, [id]) {
  show(main, h("h1", {}, "Event"), loading("Loading the event"));
  const [envelope, deliveries] = await Promise.all([
    api(`/events/${encodeURIComponent(id)}`),
    api(`/events/${encodeURIComponent(id)}/deliveries`),
  ]);
  const where = h("section", { "aria-labelledby": "where-heading" });
  show(main,
    h("p", {}, h("a", { href: "#/events" }, "← Events")),
    h("h1", {}, h("code", {}, `${envelope.subject}.${envelope.action}`)),
    h("p", { class: "hint" }, "Event ", h("code", {}, envelope.id), " · feed position ", h("code", {}, deliveries.position)),
    h("h2", {}, "Envelope"),
    jsonBlock(envelope, "envelope"),
    where);
  renderDeliveries(where, id, deliveries);
}

function renderDeliveries(where, id, deliveries) {
  show(where, h("h2", { id: "where-heading" }, "Where it went"));
  if (deliveries.destinations.length === 0) {
    where.append(empty("No destination takes this event's type."));
    return;
  }
  for (const d of deliveries.destinations) {
    const status = h("div");
    const actions = [];
    if (d.kind === "webhook" && d.state === "failed") {
      const retry = h("button", { type: "button", class: "small" }, "Retry delivery");
      retry.addEventListener("click", () => busy(retry, status, async () => {
        await api(`/destinations/${d.destination}/deliveries/${id}/retry`, { method: "POST" });
        flash("Delivery queued for an attempt now.");
        renderDeliveries(where, id, await api(`/events/${encodeURIComponent(id)}/deliveries`));
      }));
      actions.push(retry);
    }
    where.append(h("article", { class: "card delivery", dataset: { destination: d.destination } },
      h("header", {},
        h("h3", {}, h("a", { href: `#/destinations/${d.destination}` }, `${d.kind} destination`)),
        outcomeBadge(d.state),
        d.enabled ? null : h("span", { class: "muted" }, " (disabled)"),
        actions),
      d.kind === "webhook"
        ? [h("p", { class: "hint" }, `${d.attempt_count} attempt(s)`, d.next_attempt_at ? ` · next at ${new Date(d.next_attempt_at).toLocaleString()}` : ""),
          d.attempts.length ? attemptsTable(d.attempts) : empty("No attempt yet.")]
        : h("p", { class: "hint" }, d.state === "handed_over"
          ? "The broker confirmed it (or the destination started after this event)."
          : "Not handed over yet."),
      status));
  }
}
