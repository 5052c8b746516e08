// A webhook attempt as the console shows it: outcome, response and the request headers
// sent (the signature among them), for debugging a receiver's verifier.

import { h, time, badge, table } from "./dom.js";

export function outcomeBadge(status) {
  return badge(status.replace("_", " "), status === "succeeded" || status === "delivered" || status === "handed_over" ? "ok"
    : status === "failed" ? "bad" : "warn");
}

function headersList(headers) {
  if (!headers) return h("span", { class: "muted" }, "nothing sent");
  return h("details", {},
    h("summary", {}, "Request headers"),
    h("dl", { class: "headers" }, Object.entries(headers).flatMap(([name, value]) => [
      h("dt", {}, name), h("dd", {}, h("code", {}, value))])));
}

export function attemptsTable(attempts, { caption } = {}) {
  return table([
    { label: "Attempted", cell: (a) => time(a.attempted_at) },
    { label: "Outcome", cell: (a) => outcomeBadge(a.status) },
    { label: "Response", cell: (a) => (a.response_status ?? "no answer") },
    { label: "Took", cell: (a) => `${a.duration_ms} ms` },
    { label: "Message", cell: (a) => h("code", {}, a.message_id) },
    { label: "Details", cell: (a) => h("div", { class: "attempt-details" },
      a.error ? h("p", { class: "error-text" }, a.error) : null,
      a.response_excerpt ? h("details", {}, h("summary", {}, "Response body"), h("pre", {}, a.response_excerpt)) : null,
      headersList(a.request_headers)) },
  ], attempts, { caption });
}
