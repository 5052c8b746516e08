// Small helpers to build the page: elements, times, JSON blocks, states and dialogs.
// Everything is built with DOM calls, never by parsing HTML, so no text from the API can run.

/** An element: h("a", { href: "#/x", class: "y", onclick: fn }, "text", child, …). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces what `node` shows. */
export function show(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** A time in the viewer's zone; UTC on hover. */
export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, iso);
  return h("time", { datetime: iso, title: `${date.toISOString().replace(".000Z", "Z")} (UTC)` }, dateTime.format(date));
}

/** Pretty JSON with a copy button. */
export function jsonBlock(value, label = "JSON") {
  const text = JSON.stringify(value, null, 2);
  return h("div", { class: "json" },
    copyButton(text, `Copy ${label}`),
    h("pre", { tabindex: "0", "aria-label": label }, text));
}

export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "small copy" }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      // No clipboard (an insecure origin, or denied): select the text for the person.
      const pre = button.parentElement?.querySelector("pre, code");
      if (pre) window.getSelection()?.selectAllChildren(pre);
      button.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => { button.textContent = label; }, 2000);
  });
  return button;
}

/** An API error as the page shows it: the problem's title and detail. */
export function problem(err) {
  const title = err?.title || "Something went wrong";
  const detail = err?.detail || err?.message || "";
  return h("div", { class: "problem", role: "alert" },
    h("strong", {}, title), detail ? h("span", {}, `: ${detail}`) : null);
}

export function loading(what = "Loading") {
  return h("p", { class: "loading", role: "status" }, `${what}…`);
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

/** A short message at the top of the page. */
export function flash(text, kind = "ok") {
  const area = document.getElementById("flash");
  const note = h("div", { class: `flash ${kind}` }, text);
  area.append(note);
  setTimeout(() => note.remove(), 6000);
}

/** A modal question; resolves true when confirmed. */
export function confirmDialog(question, confirmLabel = "Confirm") {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-label": "Confirm" },
      h("p", {}, question),
      h("div", { class: "actions" },
        h("button", { type: "button", value: "cancel", class: "secondary" }, "Cancel"),
        h("button", { type: "button", value: "confirm", class: "danger" }, confirmLabel)));
    dialog.addEventListener("click", (event) => {
      const value = event.target?.value;
      if (value === "confirm" || value === "cancel") dialog.close(value);
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "confirm");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A secret shown once, with a copy button and a warning. */
export function secretOnce(label, secret) {
  return h("div", { class: "secret", role: "alert" },
    h("p", {}, h("strong", {}, label), ": shown once, copy it now."),
    h("code", { class: "secret-value" }, secret),
    copyButton(secret, "Copy"));
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}` }, text);
}

/** A table from column definitions [{ label, cell(row) }]. */
export function table(columns, rows, { caption, rowAttrs } = {}) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
      h("tbody", {}, rows.map((row) =>
        h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map((c) => h("td", { "data-label": c.label }, c.cell(row))))))));
}

/** Runs an action from a button: disables it meanwhile and shows a failure in `where`. */
export async function busy(button, where, action) {
  button.disabled = true;
  try {
    return await action();
  } catch (err) {
    if (where) where.replaceChildren(problem(err));
    return undefined;
  } finally {
    button.disabled = false;
  }
}
