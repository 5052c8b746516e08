// Catalogue: every event type, its entity mapping, the JSON Schema of its data and an
// example envelope.

import { api } from "../api.js";
import { h, show, jsonBlock, loading, badge } from "../dom.js";

/** <option>s for a type filter: each subject's wildcard, then each type. */
export function typeOptions(catalogue) {
  const subjects = [...new Set(catalogue.types.map((t) => t.subject))];
  return [
    ...subjects.map((subject) => h("option", { value: `${subject}.*` }, `${subject}.* (every ${subject} event)`)),
    ...catalogue.types.map((t) => h("option", { value: t.type }, t.type)),
  ];
}

export async function render(main) {
  show(main, h("h1", {}, "Catalogue"), loading("Loading the catalogue"));
  const catalogue = await api("/catalogue");
  const detail = h("section", { class: "type-detail", "aria-live": "polite" });
  const items = catalogue.types.map((entry) => {
    const button = h("button", { type: "button", class: "type-link", "aria-controls": "type-detail" },
      h("code", {}, entry.type),
      entry.preview ? badge("preview", "warn") : null,
      entry.emitted ? badge("eventgate", "info") : null);
    button.addEventListener("click", () => {
      for (const other of main.querySelectorAll(".type-link[aria-pressed]")) other.removeAttribute("aria-pressed");
      button.setAttribute("aria-pressed", "true");
      showType(detail, entry);
    });
    return h("li", {}, button);
  });
  detail.id = "type-detail";
  show(main,
    h("h1", {}, "Catalogue"),
    h("p", { class: "hint" }, `Envelope version ${catalogue.version}. `,
      catalogue.preview_enabled ? "Preview types are enabled on this server." : "Preview types are off on this server."),
    h("div", { class: "split" },
      h("nav", { class: "type-list", "aria-label": "Event types" }, h("ul", {}, items)),
      detail));
  if (catalogue.types.length) items[0].querySelector("button").click();
}

function showType(detail, entry) {
  show(detail,
    h("h2", {}, entry.type),
    h("dl", { class: "facts" },
      h("dt", {}, "Entity"), h("dd", {}, entry.entity),
      h("dt", {}, "Change"), h("dd", {}, entry.change),
      h("dt", {}, "Published by"), h("dd", {}, entry.emitted ? "eventgate itself (delivery health)" : "the platform")),
    h("h3", {}, "Example envelope"),
    jsonBlock(entry.example, "example"),
    h("h3", {}, "Schema of data"),
    jsonBlock(entry.schema, "schema"));
}
