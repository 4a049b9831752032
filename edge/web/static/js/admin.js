// Staff accounts (hub admin): list, create, disable / re-enable.

import { api, ApiError } from "./api.js";
import { $, dateTime, h, logout, setMessage, setupLogin, showError, showScreen, startPage, tr, whoAmI } from "./ui.js";

let me = null;
let classes = [];

async function call(method, path, options) {
  try {
    return await api(method, path, options);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showLogin();
    throw err;
  }
}

function showLogin(messageKey) {
  $("#who").textContent = "";
  $("#logout").hidden = true;
  showScreen("screen-login");
  setMessage($("#login-msg"), messageKey || null);
  $("#login-form").elements.username.focus();
}

async function start() {
  me = await whoAmI().catch(() => null);
  if (!me) return showLogin();
  if (me.role !== "admin") {
    // A teacher session: this page is not theirs; offer to log in as admin.
    await logout();
    return showLogin("admin.needAdmin");
  }
  $("#who").textContent = me.name;
  $("#logout").hidden = false;
  showScreen("screen-users");
  classes = (await call("GET", "/classes")).classes;
  renderClassChoices();
  await loadUsers();
}

function renderClassChoices() {
  const box = $("#new-classes");
  box.replaceChildren(
    ...classes.map((c) =>
      h("label", { class: "check" }, h("input", { attrs: { type: "checkbox", name: "class_ids", value: c.id } }), h("span", { text: c.name })),
    ),
  );
}

async function loadUsers() {
  const answer = await call("GET", "/users");
  const names = new Map(classes.map((c) => [c.id, c.name]));
  const body = $("#users-body");
  body.replaceChildren(
    ...answer.users.map((u) =>
      h(
        "tr",
        { class: u.disabled ? "disabled" : "", dataset: { userId: u.id } },
        h("td", { text: u.username }),
        h("td", { text: u.display_name }),
        h("td", { i18n: `role.${u.role}` }),
        h("td", { text: u.class_ids.map((id) => names.get(id) || id).join("、") }),
        h("td", { i18n: u.disabled ? "admin.state.disabled" : "admin.state.active" }),
        h("td", { class: "muted when" }, ...dateTime(u.created_at).split(" ").flatMap((part) => [h("span", { class: "nowrap", text: part }), " "])),
        h(
          "td",
          {},
          u.id === me.id
            ? h("span", { class: "muted", i18n: "admin.you" })
            : h("button", {
                class: u.disabled ? "btn small" : "btn small danger",
                attrs: { type: "button" },
                i18n: u.disabled ? "admin.enable" : "admin.disable",
                on: { click: () => toggleUser(u) },
              }),
        ),
      ),
    ),
  );
}

async function toggleUser(user) {
  const msg = $("#users-msg");
  try {
    await call("PATCH", `/users/${user.id}`, { json: { disabled: !user.disabled } });
    setMessage(msg, user.disabled ? "admin.enabled" : "admin.disabledDone", { name: user.username }, "ok");
  } catch (err) {
    showError(msg, err);
  }
  await loadUsers().catch(() => {});
}

async function createUser(ev) {
  ev.preventDefault();
  const form = ev.target;
  const msg = $("#new-msg");
  const body = {
    username: form.elements.username.value.trim(),
    display_name: form.elements.display_name.value.trim(),
    role: form.elements.role.value,
    password: form.elements.password.value,
    class_ids: [...form.querySelectorAll("input[name=class_ids]:checked")].map((box) => Number(box.value)),
  };
  if (!body.username || !body.display_name) return setMessage(msg, "admin.missing");
  if (!/^[A-Za-z0-9_.-]+$/.test(body.username)) return setMessage(msg, "admin.badUsername");
  if (body.password.length < 8) return setMessage(msg, "error.weak-password");
  try {
    await call("POST", "/users", { json: body });
    form.reset();
    setMessage(msg, "admin.createdUser", { name: body.username }, "ok");
    await loadUsers();
  } catch (err) {
    showError(msg, err);
  }
  return undefined;
}

async function main() {
  await startPage();
  setupLogin($("#login-form"), () => start());
  $("#logout").addEventListener("click", async () => {
    await logout();
    showLogin();
  });
  $("#new-user").addEventListener("submit", createUser);
  await start();
}

main().catch((err) => {
  showScreen("screen-login");
  showError($("#login-msg"), err);
});
