// Talking to the hub's /api/v1. Credentials are the HttpOnly cookies the hub sets
// (hub_session, hub_device): no token is ever kept in script-readable storage.

import { hasKey } from "./i18n.js";

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super((problem && problem.detail) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    // Seconds, from the Retry-After header of a 429 (lockouts).
    this.retryAfter = retryAfter ? Number.parseInt(retryAfter, 10) || null : null;
  }

  /** The stable last part of the problem type, e.g. "pairing-code-expired". */
  get slug() {
    const type = this.problem.type || "";
    return type.slice(type.lastIndexOf("/") + 1);
  }
}

/**
 * Call the API. `json` is sent as application/json (the hub refuses other types
 * with 415); `body` + `contentType` sends a raw body (roster CSV). Resolves to the
 * parsed JSON answer (null for 204); rejects with ApiError, status 0 when the hub
 * could not be reached (or `signal` aborted the call).
 */
export async function api(method, path, { json, body, contentType, signal } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" }, signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
    init.headers["Content-Type"] = contentType || "application/octet-stream";
  } else if (method !== "GET" && method !== "HEAD" && method !== "DELETE") {
    init.headers["Content-Type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch(API + path, init);
  } catch {
    throw new ApiError(0, { type: "/problems/network" });
  }
  if (resp.status === 204) return null;
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await resp.json().catch(() => null) : null;
  // Aborted while the body was read: the caller gave up on this answer.
  if (signal?.aborted) throw new ApiError(0, { type: "/problems/network" });
  if (!resp.ok) throw new ApiError(resp.status, data, resp.headers.get("Retry-After"));
  return data;
}

/**
 * What to tell a person about an error, as an i18n key and its parameters.
 * Known problem types have their own message; other errors show the hub's
 * `detail` inside a generic sentence, never a stack trace.
 */
export function errorMessage(err, context) {
  if (!(err instanceof ApiError)) return { key: "error.unexpected", params: {} };
  if (err.status === 0) return { key: "error.network", params: {} };
  const params = { detail: err.problem.detail || err.message };
  // The hub rounds Retry-After up by a second; round to whole minutes, at least one.
  if (err.retryAfter) params.minutes = Math.max(1, Math.round(err.retryAfter / 60));
  const slug = err.slug;
  // Most specific first: "error.pin.bad-credentials" on the PIN pad, then
  // "error.bad-credentials", then the status; each with a ".wait" variant used
  // when the hub said how long to wait (Retry-After).
  const bases = slug ? (context ? [`error.${context}.${slug}`, `error.${slug}`] : [`error.${slug}`]) : [];
  bases.push(`error.status.${err.status}`);
  for (const base of bases) {
    if (params.minutes && hasKey(`${base}.wait`)) return { key: `${base}.wait`, params };
    if (hasKey(base)) return { key: base, params };
  }
  return { key: "error.detail", params };
}

/** An RFC 4122 version 4 UUID. crypto.randomUUID() needs a secure context, and a
 * classroom hub is usually reached over plain HTTP on the LAN, so build it from
 * getRandomValues(), which works everywhere. */
export function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
