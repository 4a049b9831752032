// The two IndexedDB chores every store of the tablet's pages needs: one connection per
// page, opened (and created or upgraded) on first use, and transactions that resolve
// only once they have committed, which is when what they wrote is durable on the device.

/** A function returning the page's one connection to database `name` (version 1), made by `create(db)` the first time. */
export function opener(name, create) {
  let dbPromise = null;
  return () => {
    if (!dbPromise) {
      dbPromise = new Promise((resolve, reject) => {
        const req = indexedDB.open(name, 1);
        req.onupgradeneeded = () => create(req.result);
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    }
    return dbPromise;
  };
}

/** Run `fn(transaction)` over `stores`; resolves with the result of the request it returned, once committed. */
export function transact(open, stores, mode, fn) {
  return open().then(
    (db) =>
      new Promise((resolve, reject) => {
        const t = db.transaction(stores, mode);
        const result = fn(t);
        t.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
        t.onerror = () => reject(t.error);
        t.onabort = () => reject(t.error);
      }),
  );
}
