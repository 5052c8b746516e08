// The form that creates a destination: its kind, where it goes, the types it takes, and
// the kind's other settings as JSON (every setting the API has, without a field for each).

import { api, session } from "./api.js";
import { h, show, problem, secretOnce } from "./dom.js";

const KINDS = {
  webhook: { target: "url", placeholder: "https://hooks.example.com/eventgate", more: { signature: "hmac-sha256" } },
  amqp: { target: "url", placeholder: "amqps://user:password@broker.example.com/%2f", more: { exchange: "events", routing_key: "" } },
  mqtt: { target: "url", placeholder: "mqtts://broker.example.com:8883", more: { topic: "eventgate/acme", qos: 1 } },
  kafka: { target: "bootstrap_servers", placeholder: "kafka-1.example.com:9093", more: { topic: "eventgate-acme" } },
};

/** A form; `onCreated(destination)` is called with the created destination. */
export function destinationForm({ tenant, onCreated }) {
  const status = h("div", { class: "form-status" });
  const kind = h("select", { id: "new-kind", name: "kind" },
    Object.keys(KINDS).map((name) => h("option", { value: name }, name)));
  const target = h("input", { id: "new-target", name: "target", type: "text", required: true, spellcheck: "false" });
  const targetLabel = h("label", { for: "new-target" }, "URL");
  const types = h("input", { id: "new-types", name: "types", type: "text", placeholder: "all types (or e.g. portfolios.*, optimizations.status-update)", spellcheck: "false" });
  const more = h("textarea", { id: "new-settings", name: "settings", rows: "6", spellcheck: "false" });
  const tenantInput = session.role === "platform" && !tenant
    ? h("input", { id: "new-tenant", name: "tenant", type: "text", required: true, placeholder: "tenant id" })
    : null;
  const enabled = h("input", { id: "new-enabled", name: "enabled", type: "checkbox", checked: true });
  const submit = h("button", { type: "submit" }, "Create destination");

  function pickKind() {
    const spec = KINDS[kind.value];
    targetLabel.textContent = spec.target === "url" ? "URL" : "Bootstrap servers (comma-separated)";
    target.placeholder = spec.placeholder;
    more.value = JSON.stringify(spec.more, null, 2);
  }
  kind.addEventListener("change", pickKind);
  pickKind();

  const form = h("form", { class: "card create", "aria-label": "New destination" },
    h("h2", {}, "New destination"),
    tenantInput ? h("div", { class: "field" }, h("label", { for: "new-tenant" }, "Tenant"), tenantInput) : null,
    h("div", { class: "field" }, h("label", { for: "new-kind" }, "Kind"), kind),
    h("div", { class: "field wide" }, targetLabel, target),
    h("div", { class: "field wide" }, h("label", { for: "new-types" }, "Event types (comma-separated)"), types),
    h("div", { class: "field wide" }, h("label", { for: "new-settings" }, "Other settings (JSON)"), more,
      h("p", { class: "hint" }, "Every setting of this kind is in the API reference (/openapi.yaml): tls, oauth2, headers, format, ordering…")),
    h("div", { class: "field check" }, enabled, h("label", { for: "new-enabled" }, "Enabled")),
    submit,
    status);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let settings;
    try {
      settings = more.value.trim() ? JSON.parse(more.value) : {};
      if (typeof settings !== "object" || Array.isArray(settings) || settings === null) throw new Error("not an object");
    } catch (err) {
      show(status, problem({ title: "Other settings", detail: `must be a JSON object (${err.message})` }));
      return;
    }
    const spec = KINDS[kind.value];
    const body = { ...settings, kind: kind.value, enabled: enabled.checked };
    const value = target.value.trim();
    body[spec.target] = spec.target === "url" ? value : value.split(",").map((s) => s.trim()).filter(Boolean);
    const typeList = types.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (typeList.length) body.types = typeList;
    if (tenant) body.tenant = tenant;
    else if (tenantInput) body.tenant = tenantInput.value.trim();
    submit.disabled = true;
    try {
      const created = await api("/destinations", { method: "POST", body });
      show(status, created.secret ? secretOnce("Signing secret", created.secret) : null);
      onCreated(created);
    } catch (err) {
      show(status, problem(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
