// The teacher's quizzes: start a quiz from the bank, import a question file, the
// live view (answered count, option distribution, correctness grid, the most-missed
// question with one-tap re-push), projector mode, 抢答 and 随机点名, reports.
//
// The live view is re-read from GET /quiz/sessions/<id>/live whenever a quiz event
// arrives on the live stream (coalesced, so a burst of 55 answers costs a few reads).
// Projector mode asks the hub for the anonymous view (projector=1): the names are
// not hidden by CSS, they are never sent to the page.

import { api, ApiError } from "./api.js";
import { subscribe } from "./live.js";
import { barChart } from "./quiz-chart.js";
import { $, h, setMessage, tr } from "./ui.js";

let classId = null;
let sessionId = null;
let projector = false;
let events = null; // unsubscribes from the live stream (live.js)
let pending = null;

async function currentClass() {
  const sel = $("#class-select");
  if (sel && sel.value) return Number(sel.value);
  const answer = await api("GET", "/classes");
  return answer.classes.length ? answer.classes[0].id : null;
}

// -- the bank and starting ---------------------------------------------------------------

async function loadQuizzes() {
  const select = $("#quiz-select");
  try {
    const { quizzes } = await api("GET", "/quizzes");
    select.replaceChildren(...quizzes.map((q) => h("option", { text: `${q.title} (${q.items})`, attrs: { value: q.id } })));
    $("#quiz-start").disabled = quizzes.length === 0;
    if ($("#quiz-exit-ticket")) $("#quiz-exit-ticket").disabled = quizzes.length === 0;
  } catch (err) {
    setMessage($("#quiz-msg"), "error.detail", { detail: err.message });
  }
}

async function start(body) {
  try {
    const r = await api("POST", "/quiz/sessions", { json: { class_id: classId, ...body } });
    await openLive(r.id);
  } catch (err) {
    setMessage($("#quiz-msg"), "error.detail", { detail: err instanceof ApiError ? err.problem.detail || err.message : String(err) });
  }
}

async function importFile(ev) {
  ev.preventDefault();
  const file = $("#quiz-file").files[0];
  if (!file) return;
  const msg = $("#quiz-import-msg");
  try {
    const rep = await api("POST", `/quiz/imports?filename=${encodeURIComponent(file.name)}&title=${encodeURIComponent(file.name.replace(/\.[^.]+$/, ""))}`,
      { body: file, contentType: "application/octet-stream" });
    setMessage(msg, "quiz.importDone", { imported: rep.imported, duplicates: rep.duplicates, refused: rep.refused }, "ok");
    $("#quiz-import-report").replaceChildren(...rep.rows.filter((r) => r.status === "refused").map((r) =>
      h("li", { text: `${r.where}: ${r.reason}` })));
    await loadQuizzes();
  } catch (err) {
    setMessage(msg, "error.detail", { detail: err instanceof ApiError ? err.problem.detail || err.message : String(err) });
  }
}

// -- the live view ------------------------------------------------------------------------

async function openLive(id) {
  sessionId = id;
  $("#quiz-live-panel").hidden = false;
  await renderLive();
}

function scheduleRender() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    renderLive();
  }, 150);
}

async function renderLive() {
  if (!sessionId) return;
  let v;
  try {
    v = await api("GET", `/quiz/sessions/${sessionId}/live${projector ? "?projector=1" : ""}`);
  } catch {
    return;
  }
  $("#quiz-live-title").textContent = v.title;
  const answeredStudents = projector
    ? v.grid.filter((row) => row.some((c) => c !== "none")).length
    : v.students.filter((s) => s.answers.some((a) => a.correct !== "none")).length;
  tr($("#quiz-answered"), "quiz.answeredCount", { n: answeredStudents, total: v.class_size });
  $("#quiz-answered").dataset.answered = answeredStudents;
  $("#quiz-close").hidden = Boolean(v.closed_at);
  const items = v.items.map((it) => {
    const right = it.key && it.key.choices ? it.key.choices : it.type === "truefalse" ? [it.key.value ? 0 : 1] : [];
    const chart = it.distribution.length
      ? barChart(it.distribution, { right, total: it.answered, labels: it.type === "truefalse" ? ["✓", "✗"] : undefined })
      : null;
    return h("li", { class: "quiz-live-item", dataset: { itemId: it.id } },
      h("p", { class: "quiz-stem", text: `${it.position + 1}. ${it.stem}` }),
      h("p", { class: "quiz-live-counts", i18n: "quiz.itemCounts", params: { answered: it.answered, correct: it.correct, wrong: it.wrong } }),
      chart);
  });
  $("#quiz-live-items").replaceChildren(...items);
  // most-missed question, re-pushed with one tap as a single question
  const missed = v.items.find((it) => it.id === v.most_missed);
  const box = $("#quiz-missed");
  box.hidden = !missed;
  if (missed) {
    tr($("#quiz-missed-text"), "quiz.mostMissed", { n: missed.position + 1, wrong: missed.wrong });
    $("#quiz-repush").onclick = () => start({ kind: "question", item_ids: [missed.id], title: `${v.title} · ${missed.position + 1}` });
  }
  renderGrid(v);
  $("#quiz-report-csv").href = `/api/v1/quiz/sessions/${sessionId}/report.csv`;
  $("#quiz-report-xlsx").href = `/api/v1/quiz/sessions/${sessionId}/report.xlsx`;
}

function cell(state) {
  const cls = state === true ? "right" : state === false ? "wrong" : state === null ? "pending" : "none";
  return h("td", { class: `cell ${cls}`, text: state === true ? "✓" : state === false ? "✗" : state === null ? "?" : "" });
}

function renderGrid(v) {
  const head = h("tr", {}, h("th", { text: "" }), ...v.items.map((it) => h("th", { text: it.position + 1 })));
  const rows = projector
    ? v.grid.map((row, i) => h("tr", {}, h("th", { text: i + 1 }), ...row.map(cell)))
    : v.students.map((s) => h("tr", {}, h("th", { class: "name", text: s.name }), ...s.answers.map((a) => cell(a.correct))));
  $("#quiz-grid").replaceChildren(h("thead", {}, head), h("tbody", {}, ...rows));
}

function setProjector(on) {
  projector = on;
  document.body.classList.toggle("quiz-projector", on);
  tr($("#quiz-projector"), on ? "quiz.projectorOff" : "quiz.projectorOn");
  renderLive();
}

// -- 抢答 and 随机点名 -----------------------------------------------------------------------

async function buzzRound() {
  const btn = $("#quiz-buzz-open");
  const out = $("#quiz-buzz-result");
  if (btn.dataset.round) {
    const r = await api("POST", `/quiz/buzz-rounds/${btn.dataset.round}/close`);
    delete btn.dataset.round;
    tr(btn, "quiz.buzzOpen");
    out.replaceChildren(...r.order.slice(0, 5).map((o, i) => h("li", { text: `${i + 1}. ${o.name} (+${o.offset_ms} ms)` })));
    return;
  }
  const r = await api("POST", "/quiz/buzz-rounds", { json: { class_id: classId } });
  btn.dataset.round = r.round_id;
  tr(btn, "quiz.buzzClose");
  out.replaceChildren();
}

async function pick() {
  try {
    const r = await api("POST", "/quiz/picks", { json: { class_id: classId, window: 10 } });
    $("#quiz-pick-result").textContent = r.name;
  } catch (err) {
    setMessage($("#quiz-msg"), "error.detail", { detail: err.message });
  }
}

// -- wiring --------------------------------------------------------------------------------

function startLive() {
  if (events) events();
  const mine = (ev) => {
    if (sessionId && JSON.parse(ev.data).session_id === sessionId) scheduleRender();
  };
  events = subscribe({ open: scheduleRender, "quiz.answer": mine, "quiz.marked": mine, "quiz.closed": mine });
}

async function onScreen(screen) {
  if (screen !== "screen-class") {
    if (events) events();
    events = null;
    return;
  }
  classId = await currentClass().catch(() => null);
  if (!classId) return;
  await loadQuizzes();
  startLive();
}

function main() {
  if (!$("#quiz-card")) return;
  $("#quiz-start").addEventListener("click", () => {
    const limit = Number($("#quiz-time").value) || null;
    start({ quiz_id: Number($("#quiz-select").value), time_limit_s: limit && limit > 0 ? limit * 60 : null });
  });
  // Exit ticket (离堂小测): the same quiz, recorded as the lesson's exit ticket.
  const exit = h("button", { class: "btn", i18n: "quiz.exitTicket", attrs: { type: "button", id: "quiz-exit-ticket" },
    on: { click: () => start({ quiz_id: Number($("#quiz-select").value), kind: "exit_ticket" }) } });
  $("#quiz-start").after(exit);
  $("#quiz-import").addEventListener("submit", importFile);
  $("#quiz-close").addEventListener("click", async () => {
    await api("POST", `/quiz/sessions/${sessionId}/close`, { json: {} });
    renderLive();
  });
  $("#quiz-projector").addEventListener("click", () => setProjector(!projector));
  $("#quiz-live-hide").addEventListener("click", () => {
    sessionId = null;
    setProjector(false);
    $("#quiz-live-panel").hidden = true;
  });
  $("#quiz-buzz-open").addEventListener("click", () => buzzRound().catch((err) => setMessage($("#quiz-msg"), "error.detail", { detail: err.message })));
  $("#quiz-pick").addEventListener("click", pick);
  $("#class-select")?.addEventListener("change", () => onScreen(document.body.dataset.screen));
  new MutationObserver(() => onScreen(document.body.dataset.screen)).observe(document.body, { attributes: true, attributeFilter: ["data-screen"] });
  onScreen(document.body.dataset.screen);
}

main();
