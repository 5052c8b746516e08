// Look up: one portfolio, optimization or deposit by id (the read model the events point
// to), or the deposits made with an Idempotency-Key.

import { api, query } from "../api.js";
import { h, show, jsonBlock, problem, loading } from "../dom.js";

const KINDS = [
  ["portfolio", "Portfolio id", (id) => `/portfolios/${encodeURIComponent(id)}`],
  ["optimization", "Optimization id", (id) => `/optimizations/${encodeURIComponent(id)}`],
  ["deposit", "Deposit id", (id) => `/deposits/${encodeURIComponent(id)}`],
  ["idempotency", "Deposit Idempotency-Key", (key) => `/deposits${query({ idempotency_key: key })}`],
];

export async function render(main) {
  const kind = h("select", { id: "lookup-kind", name: "kind" }, KINDS.map(([value, label]) => h("option", { value }, label)));
  const id = h("input", { id: "lookup-id", name: "id", type: "text", required: true, spellcheck: "false" });
  const result = h("section", { "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Look up");
  const form = h("form", { class: "inline", "aria-label": "Look up" },
    h("label", { for: "lookup-kind" }, "What"), kind,
    h("label", { for: "lookup-id", class: "visually-hidden" }, "Id"), id, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [, label, path] = KINDS.find(([value]) => value === kind.value);
    show(result, loading("Looking up"));
    submit.disabled = true;
    try {
      show(result, h("h2", {}, label, " ", h("code", {}, id.value.trim())), jsonBlock(await api(path(id.value.trim())), "result"));
    } catch (err) {
      show(result, problem(err));
    } finally {
      submit.disabled = false;
    }
  });
  show(main, h("h1", {}, "Look up"),
    h("p", { class: "hint" }, "The state the events so far made: what the seeds call the follow-up call."),
    form, result);
  id.focus();
}
