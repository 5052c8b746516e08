// Calls the eventgate JSON API with the key the person signed in with. The key lives in
// sessionStorage only: it is gone when the tab closes, and no cookie carries it.

const KEY = "eventgate.key";
const ROLE = "eventgate.role";
const TENANT = "eventgate.tenant";

/** An API answer that was not 2xx, with its problem+json `detail`. */
export class ProblemError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title || `HTTP ${status}`;
    this.detail = problem.detail || "";
  }
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  get role() { return sessionStorage.getItem(ROLE); },
  get tenant() { return sessionStorage.getItem(TENANT); },
  save(key, role, tenant) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.setItem(ROLE, role);
    if (tenant) sessionStorage.setItem(TENANT, tenant); else sessionStorage.removeItem(TENANT);
  },
  clear() {
    for (const name of [KEY, ROLE, TENANT]) sessionStorage.removeItem(name);
  },
};

/**
 * One API call. Resolves to the parsed JSON (or text for non-JSON answers, null for 204);
 * rejects with a ProblemError carrying the server's problem+json detail.
 */
export async function api(path, { method = "GET", body, signal, key = session.key } = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ProblemError(0, { title: "Network error", detail: "The server could not be reached." });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const isJson = type.includes("json");
  const payload = isJson ? await response.json().catch(() => ({})) : await response.text();
  if (!response.ok) {
    const problem = isJson ? payload : { title: `HTTP ${response.status}`, detail: String(payload).slice(0, 300) };
    const error = new ProblemError(response.status, problem);
    if (response.status === 401 && key && key === session.key) {
      // The signed-in key stopped working (revoked or expired): sign out, saying why.
      window.dispatchEvent(new CustomEvent("eventgate:unauthorized", { detail: error }));
    }
    throw error;
  }
  return payload;
}

/** A query string from an object; arrays repeat their name, empty values are left out. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== undefined && one !== null && one !== "") search.append(name, one);
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Finds out what a key is and whom it acts for (GET /me). */
export async function identify(key) {
  const me = await api("/me", { key });
  return { role: me.role, tenant: me.tenant };
}
