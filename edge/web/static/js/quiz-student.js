// The student's quiz: open questions pushed by the teacher, answering, results.
//
// An answer goes to the IndexedDB outbox (quiz-outbox.js) first and is then sent;
// it leaves the outbox only when the hub acknowledges it (201, or 200 for a retry)
// or refuses it for good (409/422 with a reason shown). While the hub cannot be
// reached the answer waits and is resent: on reconnect, when the live stream
// reopens, and every few seconds. `answered_at` is when the student answered and
// `sent_at` when this copy left, both on the tablet's clock, so the hub can judge
// an offline answer by its own clock.
//
// Results (right/wrong, the key, the explanation) are fetched only for questions
// the hub says are closed; the page never receives a key before that.

import { api, ApiError, uuid4 } from "./api.js";
import { subscribe } from "./live.js";
import * as outbox from "./quiz-outbox.js";
import { $, h, setMessage, tr } from "./ui.js";

const RETRY_MS = 3000;

let me = null;
let unsubscribe = null; // the live stream (live.js)
let retryTimer = null;
let flushing = false;
// Every request of the signed-in student; aborted at sign-out (and when the home
// screen goes) so none goes out, and comes back 401, after the session has ended.
let signedIn = new AbortController();
const results = new Map(); // session id -> results
const drafts = new Map(); // `${session}:${item}` -> response being built (multiple choice, blanks)

function card() {
  return $("#quiz");
}

// -- sending --------------------------------------------------------------------------

async function flush() {
  if (flushing || !me) return;
  flushing = true;
  try {
    for (const row of await outbox.all()) {
      // Another student's queued answer (the tablet changed hands): keep it for them.
      if (row.body.student_id !== me.student_id) continue;
      const body = { ...row.body, sent_at: Date.now() / 1000 };
      try {
        await api("POST", "/quiz/answers", { json: body, signal: signedIn.signal });
        await outbox.remove(row.client_id);
        markSent(body, "sent");
      } catch (err) {
        if (err instanceof ApiError && (err.status === 409 || err.status === 422 || err.status === 404)) {
          await outbox.remove(row.client_id); // refused for good: resending cannot help
          markSent(body, "refused", err.problem.detail || err.message);
        } else {
          break; // offline, hub restarting, signed out: keep everything, try again later
        }
      }
    }
  } finally {
    flushing = false;
    await showPending();
  }
}

async function showPending() {
  const el = $("#quiz-pending");
  if (!el || !me) return;
  const n = (await outbox.all()).filter((r) => r.body.student_id === me.student_id).length;
  el.hidden = n === 0;
  if (n) tr(el, "quiz.pending", { n });
}

async function answer(sessionId, item, response, final) {
  const body = {
    client_id: uuid4(),
    session_id: sessionId,
    item_id: item.id,
    student_id: me.student_id,
    response,
    final: Boolean(final),
    answered_at: Date.now() / 1000,
  };
  await outbox.put(body); // durable on the tablet before anything else
  markSent(body, "queued");
  flush();
}

function markSent(body, state, detail) {
  const el = document.querySelector(`[data-quiz-item="${body.session_id}:${body.item_id}"] .quiz-state`);
  if (!el) return;
  el.dataset.state = state;
  if (state === "refused") tr(el, "quiz.refused", { detail: detail || "" });
  else tr(el, `quiz.${state}`);
}

// -- rendering ----------------------------------------------------------------------------

function choiceButtons(sessionId, item, multiple) {
  const key = `${sessionId}:${item.id}`;
  const chosen = new Set(drafts.get(key) || (item.my_response && item.my_response.choices) || []);
  const wrap = h("div", { class: "quiz-options" });
  item.options.forEach((text, i) => {
    const btn = h("button", {
      class: `btn quiz-option${chosen.has(i) ? " chosen" : ""}`,
      text: `${String.fromCharCode(65 + i)}. ${text}`,
      attrs: { type: "button", "aria-pressed": chosen.has(i) ? "true" : "false" },
      dataset: { option: i },
      on: {
        click: () => {
          if (multiple) {
            if (chosen.has(i)) chosen.delete(i);
            else chosen.add(i);
            drafts.set(key, [...chosen]);
            btn.classList.toggle("chosen", chosen.has(i));
            btn.setAttribute("aria-pressed", chosen.has(i) ? "true" : "false");
          } else {
            for (const b of wrap.querySelectorAll(".quiz-option")) b.classList.remove("chosen");
            btn.classList.add("chosen");
            answer(sessionId, item, { choices: [i] });
          }
        },
      },
    });
    wrap.append(btn);
  });
  if (multiple) {
    wrap.append(h("button", { class: "btn primary quiz-send", i18n: "quiz.send", attrs: { type: "button" },
      on: { click: () => chosen.size && answer(sessionId, item, { choices: [...chosen].sort() }) } }));
  }
  return wrap;
}

function textEntry(sessionId, item) {
  const n = item.type === "fill" ? item.blanks : 1;
  const inputs = [];
  for (let i = 0; i < n; i += 1) {
    const prev = item.my_response ? (item.my_response.blanks || [item.my_response.text || ""])[i] : "";
    inputs.push(h(item.type === "short" ? "textarea" : "input", {
      class: "quiz-input",
      attrs: { type: "text", maxlength: item.type === "short" ? 2000 : 200, inputmode: item.type === "numeric" ? "decimal" : null,
        "aria-label": `${i + 1}` },
    }));
    if (prev) inputs[i].value = prev;
  }
  const send = () => {
    const values = inputs.map((x) => x.value);
    if (item.type === "fill") answer(sessionId, item, { blanks: values });
    else if (item.type === "numeric") answer(sessionId, item, { text: values[0] });
    else answer(sessionId, item, { text: values[0] });
  };
  return h("div", { class: "quiz-text" }, ...inputs,
    h("button", { class: "btn primary quiz-send", i18n: "quiz.send", attrs: { type: "button" }, on: { click: send } }));
}

function trueFalse(sessionId, item) {
  const mk = (value, key) => h("button", { class: "btn quiz-option", i18n: key, attrs: { type: "button" }, dataset: { value },
    on: { click: (ev) => {
      for (const b of ev.target.parentElement.querySelectorAll(".quiz-option")) b.classList.remove("chosen");
      ev.target.classList.add("chosen");
      answer(sessionId, item, { value });
    } } });
  return h("div", { class: "quiz-options" }, mk(true, "quiz.true"), mk(false, "quiz.false"));
}

function renderItem(session, item) {
  const body = item.type === "single" ? choiceButtons(session.id, item, false)
    : item.type === "multiple" ? choiceButtons(session.id, item, true)
      : item.type === "truefalse" ? trueFalse(session.id, item) : textEntry(session.id, item);
  return h("li", { class: "quiz-item", dataset: { quizItem: `${session.id}:${item.id}`, type: item.type } },
    h("p", { class: "quiz-stem", text: `${item.position + 1}. ${item.stem}` }),
    item.closed ? h("p", { class: "hint", i18n: "quiz.closed" }) : body,
    h("span", { class: "quiz-state", dataset: { state: item.my_response ? "sent" : "" }, i18n: item.my_response ? "quiz.sent" : null }));
}

function renderResult(res) {
  const list = h("ul", { class: "quiz-results" });
  for (const it of res.items.filter((i) => i.closed)) {
    const mark = it.correct === true ? "quiz.right" : it.correct === false ? "quiz.wrong" : it.my_response ? "quiz.marking" : "quiz.unanswered";
    list.append(h("li", { class: `quiz-result ${it.correct === true ? "right" : it.correct === false ? "wrong" : ""}` },
      h("p", { class: "quiz-stem", text: `${it.position + 1}. ${it.stem}` }),
      h("p", { class: "quiz-mark", i18n: mark }),
      h("p", { class: "quiz-key", text: keyText(it) }),
      it.explanation ? h("p", { class: "quiz-explanation", text: it.explanation }) : null));
  }
  return h("div", { class: "quiz-session", dataset: { resultSession: res.id } }, h("h3", { text: res.title }), list);
}

function keyText(it) {
  const k = it.key || {};
  if (k.choices) return k.choices.map((c) => String.fromCharCode(65 + c)).join(" ");
  if (k.value !== undefined && typeof k.value === "boolean") return k.value ? "✓" : "✗";
  if (k.blanks) return k.blanks.map((b) => b[0]).join(" / ");
  if (k.value !== undefined) return String(k.value);
  return k.reference || "";
}

async function refresh() {
  if (!me || !card()) return;
  let current;
  try {
    current = await api("GET", "/quiz/current", { signal: signedIn.signal });
  } catch {
    return; // offline: the outbox keeps working; the stream's reopen calls again
  }
  const open = $("#quiz-open");
  open.replaceChildren(...current.sessions.map((s) =>
    h("div", { class: "quiz-session", dataset: { session: s.id } }, h("h3", { text: s.title }),
      h("ol", { class: "quiz-items" }, ...s.items.map((it) => renderItem(s, it))))));
  // The hub knows only what it has received: answers still in the outbox show as queued,
  // also when this render landed after the student answered (offline, or a refresh in flight).
  for (const row of await outbox.all()) {
    if (row.body.student_id === me.student_id) markSent(row.body, "queued");
  }
  $("#quiz-empty").hidden = current.sessions.length > 0 || results.size > 0;
  card().hidden = false;
}

// 错题本: the student's wrong answers of closed questions (the hub sends nothing else).
async function showNotebook() {
  let mine;
  try {
    mine = await api("GET", "/me/quiz-results", { signal: signedIn.signal });
  } catch {
    return;
  }
  let box = $("#quiz-notebook");
  if (!box) {
    box = h("details", { class: "quiz-notebook", attrs: { id: "quiz-notebook" } });
    card().append(box);
  }
  box.hidden = mine.notebook.length === 0;
  box.replaceChildren(h("summary", { i18n: "quiz.notebook", params: { n: mine.notebook.length } }),
    h("ul", { class: "quiz-results" }, ...mine.notebook.map((e) => h("li", { class: `quiz-result${e.mastered ? " right" : " wrong"}` },
      h("p", { class: "quiz-stem", text: e.stem }),
      h("p", { class: "quiz-key", text: keyText(e) }),
      e.explanation ? h("p", { class: "quiz-explanation", text: e.explanation }) : null,
      e.mastered ? h("p", { class: "quiz-mark", i18n: "quiz.mastered" }) : null))));
}

async function showResults(sessionId) {
  try {
    results.set(sessionId, await api("GET", `/quiz/sessions/${sessionId}/mine`, { signal: signedIn.signal }));
  } catch {
    return;
  }
  $("#quiz-results").replaceChildren(...[...results.values()].reverse().map(renderResult));
  $("#quiz-empty").hidden = true;
  showNotebook();
}

// -- 抢答 -------------------------------------------------------------------------------------

function showBuzz(roundId) {
  const btn = $("#quiz-buzz");
  btn.hidden = false;
  btn.disabled = false;
  tr(btn, "quiz.buzz");
  btn.onclick = async () => {
    btn.disabled = true;
    try {
      const r = await api("POST", `/quiz/buzz-rounds/${roundId}/buzz`, { signal: signedIn.signal });
      tr(btn, "quiz.buzzPlace", { n: r.place });
    } catch (err) {
      setMessage($("#quiz-msg"), "error.detail", { detail: err.message });
    }
  };
}

// -- live -------------------------------------------------------------------------------------

function startLive() {
  stopLive();
  unsubscribe = subscribe({
    open: () => {
      $("#quiz-live").dataset.state = "on";
      refresh();
      flush();
    },
    error: () => { $("#quiz-live").dataset.state = "off"; },
    "quiz.started": () => refresh(),
    "quiz.closed": (ev) => {
      const data = JSON.parse(ev.data);
      refresh();
      showResults(data.session_id);
    },
    "quiz.buzz_open": (ev) => showBuzz(JSON.parse(ev.data).round_id),
    "quiz.buzz_closed": () => { $("#quiz-buzz").hidden = true; },
  });
  retryTimer = setInterval(flush, RETRY_MS);
}

function stopLive() {
  if (unsubscribe) unsubscribe();
  unsubscribe = null;
  clearInterval(retryTimer);
}

async function onScreen(screen) {
  if (screen !== "screen-home") {
    signedIn.abort();
    me = null;
    stopLive();
    if (card()) card().hidden = true;
    return;
  }
  if (me) return;
  // A new sign-in: requests of the previous one stay aborted, these get a fresh signal.
  if (signedIn.signal.aborted) signedIn = new AbortController();
  const { signal } = signedIn;
  try {
    const who = await api("GET", "/me", { signal });
    if (who.role !== "student" || signal.aborted) return;
    me = { ...who, student_id: who.student_id ?? who.id };
  } catch {
    return;
  }
  results.clear();
  $("#quiz-results").replaceChildren();
  await refresh();
  if (signal.aborted) return; // signed out meanwhile: nothing more for an ended session
  await showPending();
  if (signal.aborted) return;
  showNotebook();
  startLive();
}

function main() {
  if (!card()) return;
  // Before student.js ends the session (capture phase runs first).
  // The signal stays aborted until the next sign-in, so nothing started for this
  // student (a late refresh, the notebook) can reach the hub after sign-out.
  $("#signout")?.addEventListener("click", () => {
    signedIn.abort();
    me = null;
    stopLive();
  }, { capture: true });
  window.addEventListener("online", flush);
  new MutationObserver(() => onScreen(document.body.dataset.screen)).observe(document.body, { attributes: true, attributeFilter: ["data-screen"] });
  onScreen(document.body.dataset.screen);
}

main();
