// Events: the tenant's feed, newest first with a live tail (a long-poll that adds events
// as they commit), or in feed order from a time or a cursor; filtered by type.

import { api, query, ProblemError } from "../api.js";
import { h, show, time, problem, loading, empty, copyButton } from "../dom.js";
import { typeOptions } from "./catalogue.js";

const PAGE = 50;
const WAIT_SECONDS = 25;

export async function render(main) {
  const controller = new AbortController();
  const signal = controller.signal;
  const filters = { type: "", mode: "newest", since: "", after: "", live: true };
  let generation = 0; // a new search abandons the previous one's loops

  const typeSelect = h("select", { id: "filter-type", name: "type" }, h("option", { value: "" }, "All types"));
  const modeSelect = h("select", { id: "filter-mode", name: "mode" },
    h("option", { value: "newest" }, "Newest first"),
    h("option", { value: "since" }, "From a time"),
    h("option", { value: "after" }, "After a cursor"));
  const sinceInput = h("input", { id: "filter-since", name: "since", type: "datetime-local", step: "1" });
  const afterInput = h("input", { id: "filter-after", name: "after", type: "text", placeholder: "a next_cursor", spellcheck: "false" });
  const liveBox = h("input", { id: "filter-live", name: "live", type: "checkbox", checked: true });
  const sinceField = h("div", { class: "field", hidden: true }, h("label", { for: "filter-since" }, "From (your time)"), sinceInput);
  const afterField = h("div", { class: "field", hidden: true }, h("label", { for: "filter-after" }, "Cursor"), afterInput);
  const liveField = h("div", { class: "field check" }, liveBox, h("label", { for: "filter-live" }, "Live tail"));
  const form = h("form", { class: "filters", "aria-label": "Filter events" },
    h("div", { class: "field" }, h("label", { for: "filter-type" }, "Type"), typeSelect),
    h("div", { class: "field" }, h("label", { for: "filter-mode" }, "Show"), modeSelect),
    sinceField, afterField, liveField,
    h("button", { type: "submit" }, "Apply"));
  modeSelect.addEventListener("change", () => {
    sinceField.hidden = modeSelect.value !== "since";
    afterField.hidden = modeSelect.value !== "after";
    liveField.hidden = modeSelect.value !== "newest";
  });

  const liveStatus = h("p", { class: "live-status", role: "status", "aria-live": "polite" });
  const errors = h("div");
  const list = h("div", { class: "event-list" });
  const more = h("div", { class: "more" });

  show(main, h("h1", {}, "Events"), form, liveStatus, errors, list, more);

  api("/catalogue", { signal }).then((catalogue) => {
    for (const option of typeOptions(catalogue)) typeSelect.append(option);
  }).catch(() => { /* the filter works without the list: types can still be typed in the URL */ });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    filters.type = typeSelect.value;
    filters.mode = modeSelect.value;
    filters.live = liveBox.checked;
    filters.since = sinceInput.value ? new Date(sinceInput.value).toISOString() : "";
    filters.after = afterInput.value.trim();
    start();
  });

  let rows = [];
  let tbody;

  function eventRow(envelope, fresh = false) {
    const type = `${envelope.subject}.${envelope.action}`;
    return h("tr", { class: fresh ? "fresh" : null, dataset: { eventId: envelope.id } },
      h("td", { "data-label": "Created" }, time(envelope.created)),
      h("td", { "data-label": "Type" }, h("code", {}, type)),
      h("td", { "data-label": "Entity" }, envelope.data?.id ?? ""),
      h("td", { "data-label": "Event" }, h("a", { href: `#/events/${envelope.id}` }, envelope.id)));
  }

  function renderList() {
    if (rows.length === 0) {
      show(list, empty(filters.mode === "newest"
        ? "No events yet. New ones appear here as they commit."
        : "No events from there yet."));
      tbody = null;
      return;
    }
    tbody = h("tbody", {}, rows.map((envelope) => eventRow(envelope)));
    show(list, h("div", { class: "table-wrap" }, h("table", { class: "events" },
      h("thead", {}, h("tr", {}, ["Created", "Type", "Entity", "Event"].map((label) => h("th", { scope: "col" }, label)))),
      tbody)));
  }

  function addNewest(envelopes) {
    // Long-poll pages come oldest first; the list shows newest first.
    const fresh = [...envelopes].reverse();
    rows = [...fresh, ...rows];
    if (!tbody) {
      renderList();
      for (const tr of list.querySelectorAll("tbody tr")) if (fresh.some((e) => e.id === tr.dataset.eventId)) tr.classList.add("fresh");
      return;
    }
    tbody.prepend(...fresh.map((envelope) => eventRow(envelope, true)));
  }

  const types = () => (filters.type ? [filters.type] : []);

  async function tail(mine, follow) {
    while (!signal.aborted && mine === generation) {
      liveStatus.textContent = "Live: waiting for new events…";
      try {
        const page = await api(`/events/${query({ after: follow, wait: WAIT_SECONDS, limit: 100, type: types() })}`, { signal });
        if (mine !== generation) return;
        if (page.data.length > 0) addNewest(page.data);
        follow = page.next_cursor;
        errors.replaceChildren();
      } catch (err) {
        if (signal.aborted || mine !== generation) return;
        errors.replaceChildren(problem(err));
        const pause = err instanceof ProblemError && err.status === 429 ? 3000 : 5000;
        liveStatus.textContent = "Live tail paused; retrying…";
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  async function start() {
    const mine = ++generation;
    rows = [];
    tbody = null;
    show(list, loading("Loading events"));
    show(more);
    errors.replaceChildren();
    liveStatus.textContent = "";
    try {
      if (filters.mode === "newest") {
        const page = await api(`/events/recent${query({ limit: PAGE, type: types() })}`, { signal });
        if (mine !== generation) return;
        rows = page.data;
        renderList();
        olderButton(mine, page);
        if (filters.live) tail(mine, page.follow_cursor);
      } else {
        const from = filters.mode === "since" ? { since: filters.since } : { after: filters.after };
        await forward(mine, from);
      }
    } catch (err) {
      if (signal.aborted || mine !== generation) return;
      show(list, problem(err));
    }
  }

  function olderButton(mine, page) {
    if (!page.has_more) {
      show(more);
      return;
    }
    const button = h("button", { type: "button", class: "secondary" }, "Older events");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const older = await api(`/events/recent${query({ before: page.next_cursor, limit: PAGE, type: types() })}`, { signal });
        if (mine !== generation) return;
        rows = [...rows, ...older.data];
        if (tbody) tbody.append(...older.data.map((envelope) => eventRow(envelope)));
        else renderList();
        olderButton(mine, older);
      } catch (err) {
        button.disabled = false;
        errors.replaceChildren(problem(err));
      }
    });
    show(more, button);
  }

  async function forward(mine, from) {
    const page = await api(`/events/${query({ ...from, limit: PAGE, type: types() })}`, { signal });
    if (mine !== generation) return;
    rows = [...rows, ...page.data];
    if (tbody && page.data.length) tbody.append(...page.data.map((envelope) => eventRow(envelope)));
    else renderList();
    const next = h("button", { type: "button", class: "secondary" }, page.has_more ? "More events" : "Check for newer events");
    next.addEventListener("click", async () => {
      next.disabled = true;
      try {
        await forward(mine, { after: page.next_cursor });
      } catch (err) {
        next.disabled = false;
        errors.replaceChildren(problem(err));
      }
    });
    show(more, next, h("span", { class: "cursor" }, "Next cursor: ", h("code", {}, page.next_cursor), " ", copyButton(page.next_cursor, "Copy cursor")));
  }

  start();
  return () => controller.abort();
}
