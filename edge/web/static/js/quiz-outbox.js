// The tablet's outbox of quiz answers, in IndexedDB: an answer is written here
// before it is sent, and removed only when the hub has acknowledged it (or
// refused it for good). Reloading the page, losing Wi-Fi or the hub restarting
// therefore never loses an answer; a resend carries the same client_id, so the
// hub records it once.

import { opener, transact } from "./idb.js";

const STORE = "outbox";
const open = opener("hub-quiz", (db) => db.createObjectStore(STORE, { keyPath: "client_id" }));
// Resolves on commit: only then is the answer durable on the tablet.
const tx = (mode, fn) => transact(open, [STORE], mode, (t) => fn(t.objectStore(STORE)));

/** Keep an answer body (with its client_id) until acknowledged. */
export function put(body) {
  return tx("readwrite", (s) => s.put({ client_id: body.client_id, body, queued_at: Date.now() }));
}

export function remove(clientId) {
  return tx("readwrite", (s) => s.delete(clientId));
}

/** Every unacknowledged answer, oldest first. */
export async function all() {
  const rows = await tx("readonly", (s) => s.getAll());
  return (rows || []).sort((a, b) => a.queued_at - b.queued_at);
}
