// One destination: its settings (credentials as ***) and delivery status; enable,
// disable, edit, delete, replay from a time, and for webhooks rotate the signing key,
// send a test, and read the attempt log with the headers each request sent.

import { api, query } from "../api.js";
import { h, show, jsonBlock, loading, problem, empty, flash, confirmDialog, secretOnce, busy } from "../dom.js";
import { attemptsTable } from "../attempts.js";
import { statusFacts, target } from "../destination-status.js";

const ATTEMPTS_PAGE = 25;

export async function render(main, [id]) {
  show(main, h("h1", {}, "Destination"), loading("Loading the destination"));
  const path = `/destinations/${encodeURIComponent(id)}`;
  const notice = h("div", { class: "notice-area" });
  const body = h("div");
  show(main, h("p", {}, h("a", { href: "#/destinations" }, "← Destinations")), notice, body);

  async function refresh() {
    const destination = await api(path);
    draw(destination);
  }

  function draw(d) {
    const { status, secret, ...settings } = d;
    const isWebhook = d.kind === "webhook";
    const actions = h("div", { class: "actions", role: "group", "aria-label": "Actions" });
    const act = (label, handler, kind = "secondary") => {
      const button = h("button", { type: "button", class: kind }, label);
      button.addEventListener("click", () => busy(button, notice, handler));
      actions.append(button);
      return button;
    };
    act(d.enabled ? "Disable" : "Enable", async () => {
      draw(await api(path, { method: "PATCH", body: { enabled: !d.enabled } }));
      flash(d.enabled ? "Disabled." : "Enabled.");
    });
    if (isWebhook) {
      act("Send test event", async () => {
        const result = await api(`${path}/test`, { method: "POST" });
        show(notice, h("div", { class: result.succeeded ? "flash ok" : "problem" },
          result.succeeded ? `Test delivered: the endpoint answered ${result.response_status}.` : `Test failed: ${result.error}`));
      });
      act("Rotate signing key", async () => {
        if (!(await confirmDialog("Rotate the signing key? The old key keeps signing beside the new one for 24 hours.", "Rotate"))) return;
        const rotated = await api(`${path}/rotate-secret`, { method: "POST" });
        draw(rotated);
        show(notice, rotated.secret
          ? secretOnce("New signing secret", rotated.secret)
          : h("div", { class: "flash ok" }, `New public key: ${rotated.public_key}`));
      });
    }
    act("Delete", async () => {
      if (!(await confirmDialog(`Delete this ${d.kind} destination (${target(d)})? Nothing more is delivered to it.`, "Delete"))) return;
      await api(path, { method: "DELETE" });
      flash("Destination deleted.");
      location.hash = "#/destinations";
    }, "danger");

    show(body,
      h("h1", {}, `${d.kind} destination`),
      h("p", { class: "hint" }, h("code", {}, target(d)), " · tenant ", d.tenant),
      actions,
      h("h2", {}, "Delivery"),
      statusFacts(d),
      replayForm(d),
      h("h2", {}, "Settings"),
      jsonBlock(settings, "settings"),
      editForm(d),
      isWebhook ? attemptLog(d) : null);
  }

  function replayForm(d) {
    const status = h("div", { class: "form-status" });
    const from = h("select", { id: "replay-from", name: "from" },
      h("option", { value: "since" }, "from a time"),
      h("option", { value: "oldest" }, "from the oldest event kept"),
      h("option", { value: "now" }, "from now (skip what is pending)"));
    const since = h("input", { id: "replay-since", name: "since", type: "datetime-local", step: "1", required: true });
    from.addEventListener("change", () => { since.disabled = from.value !== "since"; since.required = from.value === "since"; });
    const submit = h("button", { type: "submit", class: "secondary" }, "Replay");
    const form = h("form", { class: "inline", "aria-label": "Replay" },
      h("label", { for: "replay-from" }, "Deliver again"), from,
      h("label", { for: "replay-since", class: "visually-hidden" }, "Time"), since,
      submit, status);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const request = from.value === "since" ? { since: new Date(since.value).toISOString() } : { from: from.value };
      if (!(await confirmDialog("Move this destination's position? Events from there are delivered again.", "Replay"))) return;
      await busy(submit, status, async () => {
        draw(await api(`${path}/replay`, { method: "POST", body: request }));
        flash("Replay started.");
      });
    });
    return form;
  }

  function editForm(d) {
    const status = h("div", { class: "form-status" });
    const patch = h("textarea", { id: "edit-patch", name: "patch", rows: "4", spellcheck: "false" });
    patch.value = JSON.stringify({ types: d.types }, null, 2);
    const submit = h("button", { type: "submit", class: "secondary" }, "Save changes");
    const form = h("form", { class: "card", "aria-label": "Edit" },
      h("details", {},
        h("summary", {}, "Edit settings"),
        h("label", { for: "edit-patch" }, "Changes (JSON: any setting of this kind; kind and tenant cannot change)"),
        patch, submit, status));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      let body;
      try {
        body = JSON.parse(patch.value);
      } catch (err) {
        show(status, problem({ title: "Changes", detail: `not JSON (${err.message})` }));
        return;
      }
      await busy(submit, status, async () => {
        draw(await api(path, { method: "PATCH", body }));
        flash("Saved.");
      });
    });
    return form;
  }

  function attemptLog(d) {
    const section = h("section", { "aria-labelledby": "attempts-heading" });
    const filter = h("select", { id: "attempt-status", name: "status" },
      h("option", { value: "" }, "all"), h("option", { value: "failed" }, "failed"), h("option", { value: "succeeded" }, "succeeded"));
    const list = h("div");
    const more = h("div", { class: "more" });
    const refreshButton = h("button", { type: "button", class: "secondary small" }, "Refresh");
    let pages = [];
    async function load(after) {
      const page = await api(`/destinations/${d.id}/attempts${query({ status: filter.value, after, limit: ATTEMPTS_PAGE })}`);
      pages = after ? [...pages, ...page.data] : page.data;
      show(list, pages.length ? attemptsTable(pages, { caption: "Oldest first" }) : empty("No attempt yet."));
      addRetries(list, d.id, refresh);
      // A full page may have more after it (the log has no count).
      if (page.data.length === ATTEMPTS_PAGE) {
        const button = h("button", { type: "button", class: "secondary" }, "More attempts");
        button.addEventListener("click", () => busy(button, list, () => load(page.next_cursor)));
        show(more, button);
      } else {
        show(more);
      }
    }
    filter.addEventListener("change", () => load().catch((err) => show(list, problem(err))));
    refreshButton.addEventListener("click", () => busy(refreshButton, list, () => load()));
    show(section,
      h("h2", { id: "attempts-heading" }, "Attempts"),
      h("div", { class: "inline" }, h("label", { for: "attempt-status" }, "Outcome"), filter, refreshButton),
      list, more);
    show(list, loading("Loading attempts"));
    load().catch((err) => show(list, problem(err)));
    return section;
  }

  await refresh();
}

/** A retry button on each failed attempt of an event (a lifecycle message has no retry). */
function addRetries(list, destination, refresh) {
  for (const row of list.querySelectorAll("tbody tr")) {
    const outcome = row.querySelector('td[data-label="Outcome"]')?.textContent;
    const message = row.querySelector('td[data-label="Message"]')?.textContent ?? "";
    if (outcome !== "failed" || !/^[0-9a-f-]{36}$/.test(message)) continue;
    const cell = row.querySelector('td[data-label="Details"]');
    const status = h("div");
    const retry = h("button", { type: "button", class: "small" }, "Retry delivery");
    retry.addEventListener("click", () => busy(retry, status, async () => {
      await api(`/destinations/${destination}/deliveries/${message}/retry`, { method: "POST" });
      flash("Delivery queued for an attempt now.");
      await refresh();
    }));
    cell.append(retry, status);
  }
}
