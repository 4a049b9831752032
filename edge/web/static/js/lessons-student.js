// The student's lessons: the list on the home screen, the full-screen viewer, the
// class following the teacher's page, and files kept for offline use.
//
// Following: while a student is signed in the page holds an EventSource on
// /api/v1/events; a `lesson.page` event {lesson, lesson_id, page, at} opens that
// lesson on that page. Every time the stream (re)opens, after a Wi-Fi drop for
// instance, it asks GET /classes/<id>/page, so a tablet that reconnects lands on
// the teacher's current page even if it missed events; that call, repeated every
// 20 s, is also how the teacher sees who is online.

import { api, ApiError } from "./api.js";
import { keepOffline, renderPage } from "./lesson-view.js";
import { subscribe } from "./live.js";
import { $, h, setMessage, tr } from "./ui.js";

const HEARTBEAT_MS = 20000;

let me = null;
let unsubscribe = null; // the live stream (live.js)
let heartbeat = null;
let lesson = null; // the open lesson's detail
let pageNo = 1;
const details = new Map(); // lesson id -> detail (so a push during an outage still renders)
let fetching = new AbortController(); // background caching for this session; aborted at sign-out

async function loadDetail(id) {
  if (details.has(id)) return details.get(id);
  const detail = await api("GET", `/lessons/${id}`);
  details.set(id, detail);
  // An open lesson keeps working offline: keep every one of its files.
  keepOffline(detail.files.map((f) => f.url), null, fetching.signal).catch(() => {});
  return detail;
}

// -- the list ---------------------------------------------------------------------------

async function showList() {
  const list = $("#lesson-list");
  let answer;
  try {
    answer = await api("GET", "/lessons");
  } catch (err) {
    setMessage($("#lessons-msg"), err instanceof ApiError && err.status === 0 ? "lessons.offline" : "error.unexpected");
    return;
  }
  setMessage($("#lessons-msg"), null);
  list.replaceChildren(
    ...answer.lessons.map((l) =>
      h(
        "li",
        {},
        h(
          "button",
          { class: "lesson-btn", attrs: { type: "button" }, dataset: { lessonId: l.id }, on: { click: () => openLesson(l.id, 1) } },
          h("span", { class: "lesson-subject", text: `${l.subject} · ${l.grade}` }),
          h("span", { class: "lesson-title", text: l.title }),
          h("span", { class: "lesson-meta", i18n: "lessons.pages", params: { n: l.pages } }),
        ),
      ),
    ),
  );
  $("#lessons-empty").hidden = answer.lessons.length > 0;
}

async function prefetchDay() {
  let plan;
  try {
    plan = await api("GET", "/me/prefetch");
  } catch {
    return;
  }
  const status = $("#lessons-ready");
  const total = plan.files.length;
  if (!total) return;
  const done = await keepOffline(plan.files.map((f) => f.url), (n) => tr(status, "lessons.ready", { done: n, total }), fetching.signal);
  tr(status, "lessons.ready", { done, total });
}

// -- the viewer -------------------------------------------------------------------------

async function openLesson(id, page) {
  try {
    lesson = await loadDetail(id);
  } catch (err) {
    setMessage($("#lessons-msg"), err instanceof ApiError && err.status === 0 ? "lessons.offline" : "error.unexpected");
    return;
  }
  $("#viewer-title").textContent = lesson.title;
  $("#lesson-viewer").hidden = false;
  document.body.classList.add("viewing");
  goTo(page);
}

function goTo(page) {
  if (!lesson) return;
  pageNo = Math.min(Math.max(1, page), lesson.pages.length);
  renderPage($("#viewer-stage"), lesson.pages[pageNo - 1]);
  tr($("#viewer-page-no"), "lessons.pageOf", { page: pageNo, total: lesson.pages.length });
  $("#viewer-prev").disabled = pageNo <= 1;
  $("#viewer-next").disabled = pageNo >= lesson.pages.length;
}

function closeViewer() {
  $("#lesson-viewer").hidden = true;
  document.body.classList.remove("viewing");
  $("#viewer-stage").replaceChildren(); // stops audio and video
  lesson = null;
}

async function follow(current) {
  if (!current || !current.lesson) return;
  if (lesson && lesson.id === current.lesson) goTo(current.page);
  else await openLesson(current.lesson, current.page);
}

// -- live -------------------------------------------------------------------------------

function setFollow(state) {
  const el = $("#viewer-follow");
  el.className = `live ${state}`;
  tr(el, state === "on" ? "lessons.following" : "lessons.offline");
}

async function checkIn() {
  if (!me) return;
  try {
    const current = await api("GET", `/classes/${me.class_ids[0]}/page`);
    await follow(current);
  } catch {
    // Offline: the EventSource reconnects and calls again.
  }
}

function startLive() {
  stopLive();
  unsubscribe = subscribe({
    open: () => {
      setFollow("on");
      checkIn();
    },
    error: () => setFollow("off"),
    "lesson.page": (ev) => follow(JSON.parse(ev.data)),
  });
  heartbeat = setInterval(checkIn, HEARTBEAT_MS);
}

function stopLive() {
  if (unsubscribe) unsubscribe();
  unsubscribe = null;
  clearInterval(heartbeat);
}

async function onScreen(screen) {
  if (screen !== "screen-home") {
    me = null;
    fetching.abort();
    stopLive();
    closeViewer();
    return;
  }
  if (me) return;
  fetching = new AbortController();
  try {
    me = await api("GET", "/me");
  } catch {
    return;
  }
  if (me.role !== "student") return;
  await showList();
  startLive();
  prefetchDay();
}

function registerServiceWorker() {
  // Secure contexts only (HTTPS, or localhost): see the README on serving tablets over HTTPS.
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {});
}

function main() {
  registerServiceWorker();
  $("#viewer-close").addEventListener("click", closeViewer);
  // Before student.js ends the session: no file request may go out after it.
  $("#signout").addEventListener("click", () => {
    fetching.abort();
    stopLive();
  }, { capture: true });
  $("#viewer-prev").addEventListener("click", () => goTo(pageNo - 1));
  $("#viewer-next").addEventListener("click", () => goTo(pageNo + 1));
  window.addEventListener("online", checkIn);
  // student.js decides which screen shows; follow its decision.
  new MutationObserver(() => onScreen(document.body.dataset.screen)).observe(document.body, { attributes: true, attributeFilter: ["data-screen"] });
  onScreen(document.body.dataset.screen);
}

main();
