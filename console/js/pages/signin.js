// Sign in: paste an API key. The key is checked against the API before it is kept.

import { identify, session, ProblemError } from "../api.js";
import { h, show, problem } from "../dom.js";

export async function render(main, _params, { onSignedIn, reason }) {
  const status = h("div", { class: "form-status" });
  const input = h("input", {
    id: "api-key", name: "api-key", type: "password", autocomplete: "off", spellcheck: "false",
    required: true, placeholder: "egk_…", "aria-describedby": "key-help",
  });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "card signin", "aria-label": "Sign in" },
    h("label", { for: "api-key" }, "API key"),
    input,
    h("p", { id: "key-help", class: "hint" },
      "A client key shows your tenant's events and destinations; the platform key shows tenants, keys and delivery health. ",
      "The key stays in this tab only (sessionStorage) and is sent to this server's API, nowhere else."),
    submit,
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    submit.disabled = true;
    show(status, h("p", { class: "loading" }, "Checking the key…"));
    try {
      const { role, tenant } = await identify(key);
      session.save(key, role, tenant);
      onSignedIn();
    } catch (err) {
      const refused = err instanceof ProblemError && err.status === 401;
      show(status, problem(refused ? { title: "This key cannot sign in", detail: err.detail } : err));
    } finally {
      submit.disabled = false;
    }
  });
  show(main,
    h("h1", {}, "Sign in"),
    reason ? problem({ title: "Signed out: the server refused the key", detail: reason.detail }) : null,
    form);
  input.focus();
}
