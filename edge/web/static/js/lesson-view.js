// Showing one lesson page, shared by the student viewer and the teacher's preview.
//
// Images, audio and video come from content-addressed URLs (same origin, cached
// forever, kept offline by the service worker). Interactive HTML runs in an
// iframe with sandbox="allow-scripts" and no allow-same-origin, served with a
// CSP sandbox header too: an opaque origin that can reach neither the hub's
// cookies nor its API.

import { h, tr } from "./ui.js";

/** Replace the content of `stage` with `page` (an item of a lesson's `pages`). */
export function renderPage(stage, page) {
  let el;
  if (page.kind === "image") {
    el = h("img", { class: "page-media", attrs: { src: page.url, alt: page.title, draggable: "false" } });
  } else if (page.kind === "video") {
    el = h("video", { class: "page-media", attrs: { src: page.url, controls: true, preload: "auto", playsinline: true } });
  } else if (page.kind === "audio") {
    el = h("div", { class: "page-audio" }, h("p", { class: "page-audio-title", text: page.title }),
      h("audio", { attrs: { src: page.url, controls: true, preload: "auto" } }));
  } else if (page.kind === "html" && page.frame_url) {
    el = h("iframe", {
      class: "page-frame",
      attrs: { src: page.frame_url, sandbox: "allow-scripts", referrerpolicy: "no-referrer", title: page.title },
    });
  } else {
    el = h("p", { class: "hint center" });
    tr(el, "lessons.unsupported");
  }
  stage.replaceChildren(el);
  stage.dataset.page = String(page.number);
  stage.dataset.kind = page.kind;
}

// The service worker's cache of lesson files; the same name is in sw.js.
export const LESSON_CACHE = "hub-lessons-v1";

/** Keep `urls` in the offline cache; resolves to how many are there. Without the
 * Cache API (an insecure origin) the browser's HTTP cache is all there is.
 *
 * With a service worker in control, the worker stores the file before it answers
 * the fetch (sw.js), so the page only asks. Storing it here as well rewrote an entry
 * the worker had just stored, and a second put that fails (the tablet going offline
 * while it read the body) can leave no entry at all; a CI run found the lesson's audio
 * missing from the cache that way, once, after it had been counted as kept. */
export async function keepOffline(urls, onProgress, signal) {
  if (!("caches" in self)) return 0;
  const cache = await caches.open(LESSON_CACHE);
  let done = 0;
  const queue = [...new Set(urls)];
  async function worker() {
    while (queue.length && !(signal && signal.aborted)) {
      const url = queue.shift();
      try {
        if (!(await cache.match(url))) {
          const resp = await fetch(url, { credentials: "same-origin", signal });
          if (resp.status === 200 && !navigator.serviceWorker?.controller) await cache.put(url, resp);
          else await resp.body?.cancel();
          if (!(await cache.match(url))) throw new Error(`not kept: ${url}`);
        }
        done += 1;
      } catch {
        // Offline or refused: the next prefetch tries again.
      }
      if (onProgress) onProgress(done);
    }
  }
  await Promise.all([worker(), worker()]); // two at a time: 55 tablets share one Wi-Fi
  return done;
}
