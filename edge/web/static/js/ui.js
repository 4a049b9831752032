// Small DOM helpers shared by the pages. Text from the hub (student names, device
// names) only ever goes in through textContent, never innerHTML: a roster CSV is
// untrusted input.

import { api, errorMessage } from "./api.js";
import { currentLang, initI18n, LANGS, setLang, t, tr, translate } from "./i18n.js";

/** Build an element. props: class, text, i18n, params, attrs, on, dataset. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.text !== undefined) el.textContent = String(props.text);
  if (props.i18n) tr(el, props.i18n, props.params);
  for (const [name, value] of Object.entries(props.attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const [name, value] of Object.entries(props.dataset || {})) el.dataset[name] = String(value);
  for (const [type, fn] of Object.entries(props.on || {})) el.addEventListener(type, fn);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Show exactly one of the page's <section class="screen"> elements. */
export function showScreen(id) {
  for (const screen of document.querySelectorAll(".screen")) screen.hidden = screen.id !== id;
  document.body.dataset.screen = id;
}

/** A status line: kind is "error", "ok" or "" (neutral); key null clears it. */
export function setMessage(el, key, params, kind = "error") {
  if (!key) {
    el.textContent = "";
    delete el.dataset.i18n;
    delete el.dataset.i18nParams;
    el.className = "msg";
    return;
  }
  tr(el, key, params);
  el.className = `msg ${kind}`;
}

export function showError(el, err, context) {
  const { key, params } = errorMessage(err, context);
  setMessage(el, key, params, "error");
}

/** Local clock time HH:MM of a Unix timestamp in seconds. */
export function clock(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

export function dateTime(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  const ymd = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  return `${ymd} ${clock(ts)}`;
}

/** Time only for today, date and time otherwise: short enough for a narrow list. */
export function whenSeen(ts) {
  if (!ts) return "";
  return new Date(ts * 1000).toDateString() === new Date().toDateString() ? clock(ts) : dateTime(ts);
}

let confirmEl = null;

/** A modal yes/no question; resolves to true when confirmed. */
export function confirmDialog(key, params, okKey = "common.ok") {
  if (!confirmEl) {
    confirmEl = h(
      "dialog",
      { class: "confirm", attrs: { "aria-labelledby": "confirm-text" } },
      h("p", { class: "confirm-text", attrs: { id: "confirm-text" } }),
      h(
        "div",
        { class: "row end" },
        h("button", { class: "btn", attrs: { type: "button", value: "cancel" }, i18n: "common.cancel" }),
        h("button", { class: "btn danger", attrs: { type: "button", value: "ok" } }),
      ),
    );
    document.body.append(confirmEl);
  }
  tr(confirmEl.querySelector(".confirm-text"), key, params);
  tr(confirmEl.querySelector(".danger"), okKey);
  translate(confirmEl);
  return new Promise((resolve) => {
    const done = (answer) => {
      confirmEl.removeEventListener("click", onClick);
      confirmEl.removeEventListener("cancel", onCancel);
      if (confirmEl.open) confirmEl.close();
      resolve(answer);
    };
    const onClick = (ev) => {
      const button = ev.target.closest("button");
      if (button) done(button.value === "ok");
    };
    const onCancel = () => done(false);
    confirmEl.addEventListener("click", onClick);
    confirmEl.addEventListener("cancel", onCancel);
    confirmEl.showModal();
  });
}

/** Wire every .lang-switch button: it names the other language and switches to it. */
export function setupLangSwitch() {
  for (const button of document.querySelectorAll(".lang-switch")) {
    button.addEventListener("click", async () => {
      const next = LANGS[(LANGS.indexOf(currentLang()) + 1) % LANGS.length];
      await setLang(next);
    });
  }
}

/**
 * The staff login form (teacher and admin pages). On success the hub has set the
 * HttpOnly session cookie; onSuccess gets the logged-in user.
 */
export function setupLogin(form, onSuccess) {
  const msg = form.querySelector(".msg");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const username = form.elements.username.value.trim();
    const password = form.elements.password.value;
    if (!username || !password) {
      setMessage(msg, "login.missing");
      return;
    }
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    setMessage(msg, null);
    try {
      const answer = await api("POST", "/auth/login", { json: { username, password } });
      form.elements.password.value = "";
      await onSuccess(answer.user);
    } catch (err) {
      showError(msg, err, "login");
    } finally {
      submit.disabled = false;
    }
  });
}

/** The hub's view of this browser: { user, device, limits }; never a 401. */
export async function sessionInfo() {
  return api("GET", "/session");
}

/** Who is signed in, or null. */
export async function whoAmI() {
  return (await sessionInfo()).user;
}

export async function logout() {
  try {
    await api("POST", "/auth/logout");
  } catch {
    // Already ended (expired, revoked): the page resets either way.
  }
}

/** Common start of every page: strings first, then the language switch. */
export async function startPage() {
  await initI18n();
  setupLangSwitch();
}

export { t, tr };
