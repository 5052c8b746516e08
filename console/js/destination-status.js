// How a destination's delivery stands, shown the same way on every page that lists them.

import { h, time, badge } from "./dom.js";

/** Where a destination sends: its URL (credentials already `***`) or its brokers. */
export function target(destination) {
  if (destination.kind === "kafka") return `${(destination.bootstrap_servers || []).join(", ")} → ${destination.topic}`;
  if (destination.kind === "amqp") return `${destination.url} → ${destination.exchange}`;
  if (destination.kind === "mqtt") return `${destination.url} → ${destination.topic}`;
  return destination.url;
}

export function healthBadge(destination) {
  const s = destination.status;
  if (!destination.enabled) return badge(s.disabled_reason ? "disabled: " + s.disabled_reason : "disabled", "muted");
  if (s.gap) return badge("gap: replay needed", "bad");
  if (s.failing_since) return badge("failing", "bad");
  if (s.failed_deliveries > 0) return badge(`${s.failed_deliveries} failed`, "bad");
  if (s.lag > 0) return badge(`lag ${s.lag}`, "warn");
  return badge("healthy", "ok");
}

export function statusFacts(destination) {
  const s = destination.status;
  return h("dl", { class: "facts" },
    h("dt", {}, "Health"), h("dd", {}, healthBadge(destination)),
    h("dt", {}, "Lag"), h("dd", {}, `${s.lag} event(s) of its types not yet handed over`),
    h("dt", {}, "Delivered through"), h("dd", {}, h("code", {}, s.delivered_through)),
    h("dt", {}, "Last success"), h("dd", {}, time(s.last_success_at)),
    h("dt", {}, "Last error"), h("dd", {}, s.last_error ? [h("span", { class: "error-text" }, s.last_error), " ", time(s.last_error_at)] : h("span", { class: "muted" }, "none")),
    h("dt", {}, "Failing since"), h("dd", {}, time(s.failing_since)),
    destination.kind === "webhook" ? [
      h("dt", {}, "Pending deliveries"), h("dd", {}, String(s.pending_deliveries)),
      h("dt", {}, "Failed deliveries"), h("dd", {}, String(s.failed_deliveries)),
    ] : null,
    s.held_back_by ? [h("dt", {}, "Held back by"), h("dd", {}, JSON.stringify(s.held_back_by))] : null,
    s.gap ? [h("dt", {}, "Gap"), h("dd", {}, `events after ${s.gap.after} through ${s.gap.through} may be lost: replay to go on`)] : null);
}
