// The teacher's class page: roster with live attendance, pairing code, tablets,
// PIN reset and roster import.
//
// Live attendance: the page opens an EventSource on /api/v1/events first and
// (re)loads today's attendance every time the stream opens, so a sign-in between
// the load and the subscription is never missed; after that each
// student.signed_in event marks its tile. EventSource resumes with Last-Event-ID
// on its own after a network blip.

import { api, ApiError } from "./api.js";
import { liveClosed, subscribe } from "./live.js";
import { $, clock, confirmDialog, h, logout, setMessage, setupLogin, showError, showScreen, startPage, tr, whenSeen, whoAmI } from "./ui.js";

const MAX_CODE_USES = 60; // the hub's default security.pairing_code_max_uses

let me = null;
let classes = [];
let current = null; // the class shown
let attendance = new Map(); // student_id -> row
let events = null; // unsubscribes from the live stream (live.js)
let code = null; // {code, expires_at, max_uses, used}
let codeTimer = null;
let dialogStudent = null;

// -- login / session ----------------------------------------------------------------

async function start() {
  me = await whoAmI().catch(() => null);
  if (!me || (me.role !== "teacher" && me.role !== "admin")) {
    showLogin();
    return;
  }
  $("#who").textContent = me.name;
  $("#logout").hidden = false;
  const answer = await call("GET", "/classes"); // a 401 here (signed out meanwhile) returns to login
  classes = answer.classes;
  if (!classes.length) {
    showScreen("screen-noclass");
    return;
  }
  const select = $("#class-select");
  select.replaceChildren(...classes.map((c) => h("option", { attrs: { value: c.id }, text: c.name })));
  select.hidden = classes.length < 2;
  await openClass(classes[0]);
}

function showLogin() {
  stopEvents();
  $("#who").textContent = "";
  $("#logout").hidden = true;
  showScreen("screen-login");
  $("#login-form").elements.username.focus();
}

/** An API call on the teacher's session; a 401 (expired, disabled) returns to login. */
async function call(method, path, options) {
  try {
    return await api(method, path, options);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showLogin();
    throw err;
  }
}

// -- the class ----------------------------------------------------------------------

async function openClass(klass) {
  current = klass;
  $("#class-title").textContent = klass.name;
  showScreen("screen-class");
  startEvents();
  await Promise.all([loadAttendance(), loadDevices()]);
}

async function loadAttendance() {
  if (!current) return;
  const answer = await call("GET", `/classes/${current.id}/attendance`);
  attendance = new Map(answer.students.map((s) => [s.student_id, s]));
  renderRoster();
}

function renderRoster() {
  const grid = $("#roster");
  grid.replaceChildren();
  for (const s of attendance.values()) {
    grid.append(
      h(
        "button",
        {
          class: s.present ? "tile present" : "tile",
          attrs: { type: "button" },
          dataset: { studentId: s.student_id },
          on: { click: () => openStudent(s.student_id) },
        },
        h("span", { class: "num", text: s.number }),
        h("span", { class: "name", text: s.name }),
        h("span", { class: "when", text: s.present ? clock(s.first_seen) : "" }),
      ),
    );
  }
  renderCount();
}

function renderCount() {
  const rows = [...attendance.values()];
  tr($("#att-count"), "class.present", { present: rows.filter((r) => r.present).length, total: rows.length });
}

function markPresent(studentId) {
  const row = attendance.get(studentId);
  if (!row) return;
  const now = Date.now() / 1000;
  if (!row.present) {
    row.present = true;
    row.first_seen = now;
  }
  row.last_seen = now;
  const tile = $(`#roster .tile[data-student-id="${studentId}"]`);
  if (tile) {
    tile.classList.add("present", "just");
    tile.querySelector(".when").textContent = clock(row.first_seen);
    // Restart the highlight animation for a repeated sign-in.
    setTimeout(() => tile.classList.remove("just"), 4000);
  }
  renderCount();
}

// -- live events --------------------------------------------------------------------

function setLive(state) {
  const el = $("#live-state");
  el.className = `live ${state}`;
  tr(el, `live.${state}`);
}

function startEvents() {
  stopEvents();
  setLive("connecting");
  events = subscribe({
    open: () => {
      setLive("on");
      loadAttendance().catch(() => {});
    },
    error: async () => {
      setLive("off");
      if (events && liveClosed()) {
        // The hub refused the stream (session over) or is gone: find out which.
        const who = await whoAmI().catch(() => undefined);
        if (who === null) showLogin();
        else setTimeout(() => current && startEvents(), 3000);
      }
    },
    "student.signed_in": (ev) => {
      const data = JSON.parse(ev.data);
      markPresent(data.student_id);
    },
    "device.enrolled": () => {
      if (code) {
        code.used += 1;
        renderCode();
      }
      loadDevices().catch(() => {});
    },
  });
}

function stopEvents() {
  if (events) events();
  events = null;
}

// -- pairing code -------------------------------------------------------------------

async function newCode() {
  const msg = $("#code-msg");
  setMessage(msg, null);
  const uses = Math.min(Math.max(current.students || attendance.size || 1, 1), MAX_CODE_USES);
  try {
    const answer = await call("POST", "/pairing-codes", { json: { class_id: current.id, kind: "student", max_uses: uses } });
    code = { ...answer, used: 0 };
  } catch (err) {
    code = null;
    showError(msg, err);
  }
  renderCode();
}

function renderCode() {
  const digits = $("#code-digits");
  const timer = $("#code-timer");
  const usesEl = $("#code-uses");
  if (!code) {
    digits.replaceChildren(h("span", { text: "---" }), h("span", { text: "---" }));
    delete digits.dataset.code;
    timer.textContent = "";
    usesEl.textContent = "";
    return;
  }
  const left = Math.max(0, Math.round(code.expires_at - Date.now() / 1000));
  const expired = left === 0;
  const usedUp = code.used >= code.max_uses;
  if (digits.dataset.code !== code.code) {
    // Two groups of three, spaced by CSS: easier to read out and to copy from afar.
    digits.replaceChildren(h("span", { text: code.code.slice(0, 3) }), h("span", { text: code.code.slice(3) }));
    digits.dataset.code = code.code;
    digits.setAttribute("aria-label", code.code.split("").join(" "));
  }
  digits.classList.toggle("stale", expired || usedUp);
  if (expired) tr(timer, "code.expired");
  else tr(timer, "code.left", { time: `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` });
  tr(usesEl, usedUp ? "code.usedUp" : "code.uses", { used: code.used, max: code.max_uses });
}

async function openCode() {
  const dialog = $("#code-dialog");
  dialog.showModal();
  // A code still running is shown again rather than replaced (tablets may be mid-way).
  if (!code || code.expires_at <= Date.now() / 1000 || code.used >= code.max_uses) await newCode();
  else renderCode();
  clearInterval(codeTimer);
  codeTimer = setInterval(renderCode, 1000);
}

function closeCode() {
  clearInterval(codeTimer);
  codeTimer = null;
  const dialog = $("#code-dialog");
  if (dialog.open) dialog.close();
}

// -- tablets ------------------------------------------------------------------------

async function loadDevices() {
  const answer = await call("GET", "/devices");
  const list = $("#devices");
  const active = answer.devices.filter((d) => !d.revoked && d.kind === "student" && (!current || d.class_id === current.id));
  list.replaceChildren(
    ...active.map((d) =>
      h(
        "li",
        { dataset: { deviceId: d.id } },
        h(
          "div",
          { class: "device-info" },
          h("span", { class: "device-name", text: d.name }),
          h("span", { class: "device-seen", i18n: "devices.lastSeen", params: { time: whenSeen(d.last_seen) } }),
        ),
        h("button", { class: "btn danger small", attrs: { type: "button" }, i18n: "devices.revoke", on: { click: () => revokeDevice(d) } }),
      ),
    ),
  );
  tr($("#device-count"), "devices.count", { n: active.length });
  $("#devices-empty").hidden = active.length > 0;
}

async function revokeDevice(device) {
  if (!(await confirmDialog("devices.confirm", { name: device.name }, "devices.revoke"))) return;
  try {
    await call("DELETE", `/devices/${encodeURIComponent(device.id)}`);
    setMessage($("#devices-msg"), "devices.revoked", { name: device.name }, "ok");
  } catch (err) {
    showError($("#devices-msg"), err);
  }
  await loadDevices().catch(() => {});
}

// -- one student: PIN reset ---------------------------------------------------------

function openStudent(studentId) {
  const s = attendance.get(studentId);
  if (!s) return;
  dialogStudent = s;
  $("#sd-name").textContent = `${s.number} ${s.name}`;
  if (s.present) tr($("#sd-info"), "student.presentAt", { time: clock(s.first_seen) });
  else tr($("#sd-info"), "student.absent");
  setMessage($("#sd-msg"), null);
  $("#sd-pin").textContent = "";
  $("#sd-pin").hidden = true;
  $("#student-dialog").showModal();
}

async function resetPin() {
  const s = dialogStudent;
  if (!s) return;
  const dialog = $("#student-dialog");
  dialog.close();
  const ok = await confirmDialog("student.confirmReset", { name: s.name }, "student.resetPin");
  dialog.showModal();
  if (!ok) return;
  try {
    const answer = await call("POST", `/students/${s.student_id}/pin`);
    $("#sd-pin").textContent = answer.pin;
    $("#sd-pin").hidden = false;
    setMessage($("#sd-msg"), "student.newPin", {}, "ok");
  } catch (err) {
    showError($("#sd-msg"), err);
  }
}

// -- roster import ------------------------------------------------------------------

async function importRoster(ev) {
  ev.preventDefault();
  const msg = $("#import-msg");
  const report = $("#import-report");
  const file = $("#import-file").files[0];
  report.replaceChildren();
  if (!file) {
    setMessage(msg, "import.chooseFirst");
    return;
  }
  setMessage(msg, "import.working", {}, "");
  try {
    // The file goes as it is; the hub detects UTF-8 or GBK itself.
    const answer = await call("POST", `/classes/${current.id}/roster`, { body: file, contentType: "text/csv" });
    setMessage(msg, "import.done", { created: answer.created, updated: answer.updated, refused: answer.refused.length }, "ok");
    renderImportReport(answer);
    await loadAttendance();
  } catch (err) {
    showError(msg, err);
  }
}

function renderImportReport(answer) {
  const report = $("#import-report");
  if (answer.refused.length) {
    report.append(
      h("h3", { i18n: "import.refused" }),
      h(
        "table",
        { class: "report" },
        h("thead", {}, h("tr", {}, h("th", { i18n: "import.line" }), h("th", { i18n: "import.reason" }))),
        h("tbody", {}, ...answer.refused.map((r) => h("tr", {}, h("td", { text: r.line }), h("td", { text: r.reason })))),
      ),
    );
  }
  if (answer.generated_pins.length) {
    report.append(
      h("h3", { i18n: "import.pins" }),
      h("p", { class: "hint", i18n: "import.pinsOnce" }),
      h(
        "table",
        { class: "report" },
        h("thead", {}, h("tr", {}, h("th", { i18n: "import.number" }), h("th", { i18n: "import.name" }), h("th", { i18n: "import.pin" }))),
        h(
          "tbody",
          {},
          ...answer.generated_pins.map((p) => h("tr", {}, h("td", { text: p.number }), h("td", { text: p.name }), h("td", { class: "pin", text: p.pin }))),
        ),
      ),
    );
  }
}

// -- wiring -------------------------------------------------------------------------

async function main() {
  await startPage();
  setupLogin($("#login-form"), () => start());
  $("#logout").addEventListener("click", async () => {
    stopEvents();
    closeCode();
    code = null;
    await logout();
    showLogin();
  });
  $("#class-select").addEventListener("change", (ev) => {
    const klass = classes.find((c) => String(c.id) === ev.target.value);
    if (klass) {
      code = null;
      openClass(klass);
    }
  });
  $("#show-code").addEventListener("click", openCode);
  $("#code-new").addEventListener("click", newCode);
  $("#code-close").addEventListener("click", closeCode);
  $("#code-dialog").addEventListener("close", () => clearInterval(codeTimer));
  $("#sd-reset").addEventListener("click", resetPin);
  $("#sd-close").addEventListener("click", () => $("#student-dialog").close());
  $("#import-form").addEventListener("submit", importRoster);
  $("#import-file").addEventListener("change", () => {
    const file = $("#import-file").files[0];
    $("#import-filename").textContent = file ? file.name : "";
    setMessage($("#import-msg"), null);
  });
  await start();
}

main().catch((err) => {
  showScreen("screen-login");
  showError($("#login-msg"), err);
});

