// The student tablet: pair with the hub, pick a name, type the PIN, signed-in home.
//
// State lives in the hub's HttpOnly cookies; this page asks the hub where it stands:
// a student session -> home; an enrolled tablet (device cookie accepted) -> the
// name picker; otherwise -> pairing. Any 401 later re-runs that decision, which is
// how a tablet the teacher revoked falls back to the pairing screen.

import { api, ApiError, uuid4 } from "./api.js";
import { translate } from "./i18n.js";
import { startBatteryReports } from "./battery.js";
import { $, clock, h, sessionInfo, setMessage, showError, showScreen, startPage, tr } from "./ui.js";

const CLASS_KEY = "hub.tablet.class";
const PIN_MAX = 6;
const PIN_MIN = 4;

let students = [];
let chosen = null;
let pin = "";
let pendingEnrol = null; // {code, request_id}: a retry of the same code reuses the id

function rememberClass(name) {
  try {
    if (name) localStorage.setItem(CLASS_KEY, name);
    else localStorage.removeItem(CLASS_KEY);
  } catch {
    // Cosmetic only.
  }
  const label = $("#class-name");
  label.textContent = name || "";
}

function storedClass() {
  try {
    return localStorage.getItem(CLASS_KEY) || "";
  } catch {
    return "";
  }
}

// -- deciding the screen ------------------------------------------------------------

let batteryStarted = false;

async function route(reason) {
  let me = null;
  let info = null;
  try {
    info = await sessionInfo();
    me = info.user;
  } catch (err) {
    showScreen("screen-pair");
    showError($("#pair-msg"), err);
    return;
  }
  if (me && me.role === "student") return showHome(me);
  if (me && me.role !== "student") {
    // A staff login on this browser: this is not a student tablet session.
    location.assign(me.role === "admin" ? "/admin" : "/teacher");
    return;
  }
  if (!info.device) {
    // Not enrolled (or revoked): no request that would only answer 401.
    showPair(reason === "revoked" || reason === "session-lost" ? "pair.revoked" : null);
    return;
  }
  if (!batteryStarted) {
    // The cart's charge planner prefers the tablet's own battery level to a guess from slot currents.
    batteryStarted = true;
    startBatteryReports().catch(() => {});
  }
  try {
    const answer = await api("GET", "/signin/students");
    students = answer.students;
    showPicker(reason);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showPair(reason === "revoked" || reason === "session-lost" ? "pair.revoked" : null);
    } else {
      showScreen("screen-pick");
      showError($("#pick-msg"), err);
    }
  }
}

/** Run an action needing the student session; on 401, find out what happened. */
async function withSession(fn) {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      await route("session-lost");
      return undefined;
    }
    throw err;
  }
}

// -- pairing ------------------------------------------------------------------------

function showPair(messageKey) {
  rememberClass("");
  showScreen("screen-pair");
  const msg = $("#pair-msg");
  setMessage(msg, messageKey, {}, "error");
  const input = $("#pair-code");
  input.value = "";
  input.focus();
}

function setupPair() {
  const form = $("#pair-form");
  const input = $("#pair-code");
  // Digits only, whatever the keyboard offers (some tablets ignore inputmode).
  input.addEventListener("input", () => {
    const digits = input.value.replace(/\D/g, "").slice(0, 6);
    if (digits !== input.value) input.value = digits;
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = $("#pair-msg");
    const code = input.value.replace(/\D/g, "");
    if (code.length !== 6) {
      setMessage(msg, "pair.need6");
      input.focus();
      return;
    }
    const nameInput = $("#pair-name");
    const name = nameInput.value.trim() || nameInput.placeholder || "tablet";
    if (!pendingEnrol || pendingEnrol.code !== code) pendingEnrol = { code, request_id: uuid4() };
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    setMessage(msg, "pair.working", {}, "");
    try {
      const answer = await api("POST", "/devices/enrol", { json: { code, name, request_id: pendingEnrol.request_id } });
      pendingEnrol = null;
      rememberClass(answer.class ? answer.class.name : "");
      setMessage(msg, null);
      await route("enrolled");
    } catch (err) {
      // A definite refusal means this attempt is over; a network error may be retried as is.
      if (err.status) pendingEnrol = null;
      showError(msg, err, "pair");
    } finally {
      submit.disabled = false;
    }
  });
  // A name the teacher can recognise in the device list; editable.
  const nameInput = $("#pair-name");
  nameInput.dataset.i18nAttr = "placeholder:pair.defaultName";
  nameInput.dataset.i18nParams = JSON.stringify({ id: uuid4().slice(0, 4).toUpperCase() });
  translate(nameInput);
}

// -- picking a name -----------------------------------------------------------------

function showPicker(reason) {
  rememberClass(storedClass());
  showScreen("screen-pick");
  setMessage($("#pick-msg"), reason === "signed-out" ? "pick.signedOut" : null, {}, "ok");
  $("#pick-search").value = "";
  renderNames();
}

function renderNames() {
  const query = $("#pick-search").value.trim().toLowerCase();
  const grid = $("#pick-grid");
  grid.replaceChildren();
  const shown = students.filter((s) => !query || s.name.toLowerCase().includes(query) || String(s.number).includes(query));
  for (const student of shown) {
    grid.append(
      h(
        "button",
        { class: "name-btn", attrs: { type: "button" }, dataset: { studentId: student.id }, on: { click: () => showPin(student) } },
        h("span", { class: "num", text: student.number }),
        h("span", { class: "name", text: student.name }),
      ),
    );
  }
  $("#pick-empty").hidden = shown.length > 0;
}

// -- PIN ----------------------------------------------------------------------------

function showPin(student) {
  chosen = student;
  pin = "";
  tr($("#pin-title"), "pin.title", { name: student.name });
  setMessage($("#pin-msg"), null);
  renderPin();
  showScreen("screen-pin");
}

function renderPin() {
  const dots = $("#pin-dots");
  dots.replaceChildren();
  for (let i = 0; i < Math.max(PIN_MIN, pin.length); i++) {
    dots.append(h("span", { class: i < pin.length ? "dot filled" : "dot" }));
  }
  $("#keypad [data-key=ok]").disabled = pin.length < PIN_MIN;
}

function press(key) {
  if (key === "back") pin = pin.slice(0, -1);
  else if (key === "ok") return submitPin();
  else if (/^\d$/.test(key) && pin.length < PIN_MAX) pin += key;
  setMessage($("#pin-msg"), null);
  renderPin();
  return undefined;
}

async function submitPin() {
  if (!chosen || pin.length < PIN_MIN) return;
  const keypad = $("#keypad");
  keypad.classList.add("busy");
  try {
    await api("POST", "/signin", { json: { student_id: chosen.id, pin } });
    pin = "";
    await route("signed-in");
  } catch (err) {
    pin = "";
    renderPin();
    if (err instanceof ApiError && err.status === 401 && err.slug !== "bad-credentials") {
      // The tablet itself was refused (revoked or expired), not the PIN.
      await route("revoked");
      return;
    }
    showError($("#pin-msg"), err, "pin");
  } finally {
    keypad.classList.remove("busy");
  }
}

function setupPin() {
  $("#keypad").addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-key]");
    if (button && !button.disabled && !$("#keypad").classList.contains("busy")) press(button.dataset.key);
  });
  // A hardware keyboard (or a docked tablet) works too.
  document.addEventListener("keydown", (ev) => {
    if (document.body.dataset.screen !== "screen-pin") return;
    if (/^\d$/.test(ev.key)) press(ev.key);
    else if (ev.key === "Backspace") press("back");
    else if (ev.key === "Enter") press("ok");
    else return;
    ev.preventDefault();
  });
  $("#pin-back").addEventListener("click", () => {
    chosen = null;
    pin = "";
    showPicker();
  });
}

// -- signed-in home -----------------------------------------------------------------

async function showHome(me) {
  tr($("#home-hello"), "home.hello", { name: me.name });
  showScreen("screen-home");
  await loadAttendance();
}

async function loadAttendance() {
  const list = $("#home-days");
  const answer = await withSession(() => api("GET", "/me/attendance"));
  if (!answer) return;
  list.replaceChildren();
  for (const day of answer.days.slice(0, 10)) {
    list.append(
      h(
        "li",
        {},
        h("span", { class: "day", text: day.day }),
        h("span", { class: "when", i18n: "home.signedInAt", params: { time: clock(day.first_seen) } }),
        h("span", { class: "times", i18n: "home.signIns", params: { n: day.sign_ins } }),
      ),
    );
  }
  $("#home-empty").hidden = answer.days.length > 0;
}

function setupHome() {
  $("#signout").addEventListener("click", async () => {
    try {
      await api("POST", "/auth/logout");
      await route("signed-out");
    } catch (err) {
      // 401: the session (or the whole tablet) is gone already; route says which.
      await route(err.status === 401 ? "session-lost" : undefined);
    }
  });
  $("#home-refresh").addEventListener("click", () => loadAttendance().catch((err) => showError($("#home-msg"), err)));
}

async function main() {
  await startPage();
  setupPair();
  setupPin();
  setupHome();
  $("#pick-search").addEventListener("input", renderNames);
  // Coming back to the tablet after a while: re-check (the teacher may have revoked it).
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && document.body.dataset.screen !== "screen-pair") route();
  });
  await route();
}

main();
