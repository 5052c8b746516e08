// The console's shell: the sign-in gate, the navigation for the key's role, and a small
// router over the URL's fragment (#/events, #/destinations/<id>, …). Each page renders into
// <main> and may return a function that stops what it started (a live tail, say).

import { session } from "./api.js";
import { h, show, problem } from "./dom.js";
import * as signin from "./pages/signin.js";
import * as events from "./pages/events.js";
import * as event from "./pages/event.js";
import * as destinations from "./pages/destinations.js";
import * as destination from "./pages/destination.js";
import * as catalogue from "./pages/catalogue.js";
import * as lookup from "./pages/lookup.js";
import * as tenants from "./pages/tenants.js";
import * as tenant from "./pages/tenant.js";
import * as health from "./pages/health.js";

const CLIENT_NAV = [
  ["#/events", "Events"],
  ["#/destinations", "Destinations"],
  ["#/catalogue", "Catalogue"],
  ["#/lookup", "Look up"],
];
const PLATFORM_NAV = [
  ["#/tenants", "Tenants"],
  ["#/health", "Delivery health"],
  ["#/destinations", "Destinations"],
  ["#/catalogue", "Catalogue"],
];

const ROUTES = [
  [/^#\/events$/, events, "client"],
  [/^#\/events\/([0-9a-f-]{36})$/, event, "client"],
  [/^#\/destinations$/, destinations, null],
  [/^#\/destinations\/([0-9a-f-]{36})$/, destination, null],
  [/^#\/catalogue$/, catalogue, null],
  [/^#\/lookup$/, lookup, "client"],
  [/^#\/tenants$/, tenants, "platform"],
  [/^#\/tenants\/([^/]+)$/, tenant, "platform"],
  [/^#\/health$/, health, "platform"],
];

let stop = null;
let navigation = 0;

function home() {
  return session.role === "platform" ? "#/tenants" : "#/events";
}

function renderNav() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!session.key) {
    show(nav);
    show(who);
    return;
  }
  const items = session.role === "platform" ? PLATFORM_NAV : CLIENT_NAV;
  const current = location.hash;
  show(nav, h("ul", {}, items.map(([href, label]) =>
    h("li", {}, h("a", { href, "aria-current": current.startsWith(href) ? "page" : null }, label)))));
  show(who,
    h("span", { class: "role" }, session.role === "platform" ? "Platform key" : `Client key · ${session.tenant}`),
    h("button", { type: "button", class: "secondary small", onclick: () => signOut() }, "Sign out"));
}

let signedOutBecause = null;

function go(target) {
  if (location.hash === target) route();
  else location.hash = target;
}

export function signOut(reason = null) {
  session.clear();
  signedOutBecause = reason;
  go("#/signin");
}

async function route() {
  const current = ++navigation;
  if (stop) {
    stop();
    stop = null;
  }
  const main = document.getElementById("main");
  if (!session.key) {
    renderNav();
    const reason = signedOutBecause;
    signedOutBecause = null;
    stop = (await signin.render(main, [], { onSignedIn, reason })) || null;
    return;
  }
  let hash = location.hash;
  if (!hash || hash === "#/" || hash === "#/signin") {
    location.replace(home());
    return;
  }
  renderNav();
  for (const [pattern, page, role] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    if (role && role !== session.role) {
      show(main, h("h1", {}, "Not for this key"),
        problem({ title: "Forbidden", detail: `this page needs a ${role} key; you signed in with a ${session.role} key` }));
      return;
    }
    try {
      const stopPage = (await page.render(main, match.slice(1).map(decodeURIComponent))) || null;
      // Another page was asked for while this one loaded: stop what this one started.
      if (current === navigation) stop = stopPage;
      else stopPage?.();
    } catch (err) {
      if (current === navigation) show(main, h("h1", {}, "Could not show this page"), problem(err));
    }
    main.focus({ preventScroll: true });
    return;
  }
  show(main, h("h1", {}, "Not found"), h("p", {}, "There is no such page. ", h("a", { href: home() }, "Go home")));
}

function onSignedIn() {
  go(home());
}

window.addEventListener("hashchange", route);
// A revoked or expired key: back to sign-in with the reason.
window.addEventListener("eventgate:unauthorized", (event) => signOut(event.detail));
route();
