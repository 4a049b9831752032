// The teacher's lessons: pick a lesson, open it, turn pages (each turn is pushed
// to every tablet of the class), and see which students are online.
//
// Pushing is POST /classes/<id>/page; the hub stores the class's current page and
// sends `lesson.page` to the class. Who is online comes from the students' lesson
// views checking in (GET /classes/<id>/online, polled every 10 s while open).

import { api, ApiError } from "./api.js";
import { renderPage } from "./lesson-view.js";
import { $, h, setMessage, showError, tr } from "./ui.js";

const ONLINE_POLL_MS = 10000;

let classId = null;
let lessons = [];
let lesson = null;
let pageNo = 1;
let onlineTimer = null;

function currentClassId() {
  const select = $("#class-select");
  return select && select.value ? Number(select.value) : classId;
}

async function loadLessons() {
  const answer = await api("GET", "/lessons");
  lessons = answer.lessons;
  const select = $("#lesson-select");
  select.replaceChildren(...lessons.map((l) => h("option", { attrs: { value: l.id }, text: `${l.subject} · ${l.title}` })));
  $("#lesson-open").disabled = lessons.length === 0;
  // Assigning needs today's date from the schedule: enabled once that has loaded.
  $("#lesson-assign").disabled = true;
  $("#lessons-empty").hidden = lessons.length > 0;
  if (!classId) {
    const classes = (await api("GET", "/classes")).classes;
    classId = classes.length ? classes[0].id : null;
  }
  // Resume where the class is: the hub remembers the current page.
  const cid = currentClassId();
  if (cid) {
    const current = await api("GET", `/classes/${cid}/page`);
    if (current && current.lesson) $("#lesson-select").value = String(current.lesson);
    await loadSchedule();
  }
}

// -- today's periods (the tablets prefetch these lessons' files) ------------------------

async function loadSchedule() {
  const answer = await api("GET", `/classes/${currentClassId()}/schedule`);
  $("#lesson-today").dataset.day = answer.day;
  $("#lesson-assign").disabled = lessons.length === 0;
  $("#lesson-today").replaceChildren(
    ...answer.periods.map((p) =>
      h("li", { dataset: { period: p.period, lesson: p.lesson } }, h("span", { class: "muted", i18n: "lessons.periodN", params: { n: p.period } }), ` ${p.title}`),
    ),
  );
}

async function assignPeriod() {
  const period = Number($("#lesson-period").value);
  const lessonId = Number($("#lesson-select").value);
  try {
    if (!$("#lesson-today").dataset.day) await loadSchedule();
    const day = $("#lesson-today").dataset.day;
    await api("PUT", `/classes/${currentClassId()}/schedule/${day}/${period}`, { json: { lesson: lessonId } });
    setMessage($("#lesson-msg"), "lessons.assigned", { n: period }, "ok");
    await loadSchedule();
  } catch (err) {
    showError($("#lesson-msg"), err);
  }
}

async function openLesson() {
  const id = Number($("#lesson-select").value);
  const msg = $("#lesson-msg");
  try {
    lesson = await api("GET", `/lessons/${id}`);
  } catch (err) {
    showError(msg, err);
    return;
  }
  setMessage(msg, null);
  $("#t-viewer-title").textContent = lesson.title;
  $("#teacher-lesson").hidden = false;
  document.body.classList.add("viewing");
  const current = await api("GET", `/classes/${currentClassId()}/page`).catch(() => null);
  await push(current && current.lesson === lesson.id ? current.page : 1);
  pollOnline();
}

async function push(page) {
  pageNo = Math.min(Math.max(1, page), lesson.pages.length);
  renderPage($("#t-viewer-stage"), lesson.pages[pageNo - 1]);
  tr($("#t-viewer-page-no"), "lessons.pageOf", { page: pageNo, total: lesson.pages.length });
  $("#t-viewer-prev").disabled = pageNo <= 1;
  $("#t-viewer-next").disabled = pageNo >= lesson.pages.length;
  const state = $("#t-viewer-pushed");
  try {
    await api("POST", `/classes/${currentClassId()}/page`, { json: { lesson: lesson.id, page: pageNo } });
    setMessage(state, "lessons.pushed", { page: pageNo }, "ok");
    state.dataset.page = String(pageNo);
  } catch (err) {
    showError(state, err);
    delete state.dataset.page;
  }
}

async function pollOnline() {
  clearTimeout(onlineTimer);
  if ($("#teacher-lesson").hidden) return;
  try {
    const answer = await api("GET", `/classes/${currentClassId()}/online`);
    tr($("#t-online-count"), "lessons.online", { n: answer.online, total: answer.total });
    $("#t-online").replaceChildren(
      ...answer.students.filter((s) => s.online).map((s) => h("li", { class: "chip", dataset: { studentId: s.student_id }, text: s.name })),
    );
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 0) showError($("#t-viewer-pushed"), err);
  }
  onlineTimer = setTimeout(pollOnline, ONLINE_POLL_MS);
}

function closeViewer() {
  $("#teacher-lesson").hidden = true;
  document.body.classList.remove("viewing");
  $("#t-viewer-stage").replaceChildren();
  clearTimeout(onlineTimer);
  lesson = null;
}

function main() {
  $("#lesson-open").addEventListener("click", openLesson);
  $("#lesson-assign").addEventListener("click", assignPeriod);
  $("#lesson-period").replaceChildren(
    ...Array.from({ length: 8 }, (_, i) => h("option", { attrs: { value: i + 1 }, i18n: "lessons.periodN", params: { n: i + 1 } })),
  );
  $("#t-viewer-close").addEventListener("click", closeViewer);
  $("#t-viewer-prev").addEventListener("click", () => push(pageNo - 1));
  $("#t-viewer-next").addEventListener("click", () => push(pageNo + 1));
  // teacher.js shows the class screen after login; load the lessons then.
  const load = () => {
    if (document.body.dataset.screen === "screen-class" && !lessons.length) loadLessons().catch((err) => showError($("#lesson-msg"), err));
  };
  new MutationObserver(load).observe(document.body, { attributes: true, attributeFilter: ["data-screen"] });
  load();
}

main();
