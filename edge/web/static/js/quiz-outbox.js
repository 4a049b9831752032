// The tablet's outbox of quiz answers, in IndexedDB: an answer is written here
// before it is sent, and removed only when the hub has acknowledged it (or
// refused it for good). Reloading the page, losing Wi-Fi or the hub restarting
// therefore never loses an answer; a resend carries the same client_id, so the
// hub records it once.

const DB_NAME = "hub-quiz";
const STORE = "outbox";

let dbPromise = null;

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "client_id" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return dbPromise;
}

function tx(mode, fn) {
  return open().then(
    (db) =>
      new Promise((resolve, reject) => {
        const t = db.transaction(STORE, mode);
        const result = fn(t.objectStore(STORE));
        // Resolve on commit: only then is the answer durable on the tablet.
        t.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
        t.onerror = () => reject(t.error);
        t.onabort = () => reject(t.error);
      }),
  );
}

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
