// The student app's service worker: lesson files and the app shell stay usable
// while the tablet is offline.
//
// - /api/v1/content/sha256/<hash>: cache first. The URL names the bytes, so a
//   cached copy is never stale. Range requests (video seeking) are answered from
//   the cached file with 206; an uncached file is fetched from the network and
//   kept whole in the background.
// - /static/<build>/...: cache first (the build hash is in the path).
// - the student page and the few API answers the viewer needs to reopen a lesson
//   (/me, /lessons, /lessons/<id>, the class's current page): network first, the
//   last good answer when offline. Signing out empties that cache.

const LESSONS = "hub-lessons-v1"; // also in lesson-view.js
const SHELL = "hub-shell-v1";
const API = "hub-api-v1";
const API_CACHED = [/^\/api\/v1\/me$/, /^\/api\/v1\/lessons$/, /^\/api\/v1\/lessons\/\d+$/, /^\/api\/v1\/classes\/\d+\/page$/, /^\/api\/v1\/session$/];
const PAGES = ["/student", "/manifest.webmanifest"];

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const keep = new Set([LESSONS, SHELL, API]);
      for (const name of await caches.keys()) if (!keep.has(name)) await caches.delete(name);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (req.method === "POST" && url.pathname === "/api/v1/auth/logout") {
    event.waitUntil(caches.delete(API));
    return;
  }
  if (req.method !== "GET") return;
  if (url.pathname.startsWith("/api/v1/content/sha256/")) event.respondWith(content(event, url.pathname));
  else if (url.pathname.startsWith("/static/")) event.respondWith(cacheFirst(req, SHELL));
  else if (PAGES.includes(url.pathname)) event.respondWith(networkFirst(req, SHELL, url.pathname));
  else if (API_CACHED.some((re) => re.test(url.pathname))) event.respondWith(networkFirst(req, API, url.pathname + url.search));
});

async function cacheFirst(req, name) {
  const cache = await caches.open(name);
  const hit = await cache.match(req);
  if (hit) return hit;
  const resp = await fetch(req);
  if (resp.status === 200) await cache.put(req, resp.clone());
  return resp;
}

async function networkFirst(req, name, key) {
  const cache = await caches.open(name);
  try {
    const resp = await fetch(req);
    if (resp.status === 200) await cache.put(key, resp.clone());
    return resp;
  } catch (err) {
    const hit = await cache.match(key);
    if (hit) return hit;
    throw err;
  }
}

async function content(event, path) {
  const cache = await caches.open(LESSONS);
  const hit = await cache.match(path);
  const range = event.request.headers.get("Range");
  if (hit) return range ? slice(hit, range) : hit;
  if (range) {
    // Play from the network now; keep the whole file for later.
    event.waitUntil(fetch(path, { credentials: "same-origin" }).then((r) => (r.status === 200 ? cache.put(path, r) : undefined)).catch(() => {}));
    return fetch(event.request);
  }
  const resp = await fetch(path, { credentials: "same-origin" });
  if (resp.status === 200) await cache.put(path, resp.clone());
  return resp;
}

async function slice(resp, header) {
  const blob = await resp.blob();
  const size = blob.size;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  let start;
  let end;
  if (m && m[1] !== "") {
    start = Number(m[1]);
    end = m[2] !== "" ? Math.min(Number(m[2]), size - 1) : size - 1;
  } else if (m && m[2] !== "") {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  }
  if (start === undefined || start > end || start >= size) {
    return new Response(null, { status: 416, headers: { "Content-Range": `bytes */${size}` } });
  }
  return new Response(blob.slice(start, end + 1), {
    status: 206,
    headers: {
      "Content-Type": resp.headers.get("Content-Type") || "application/octet-stream",
      "Content-Range": `bytes ${start}-${end}/${size}`,
      "Content-Length": String(end - start + 1),
      "Accept-Ranges": "bytes",
    },
  });
}
