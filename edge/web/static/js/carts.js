// The charging cart at a glance, for the teacher and admin pages: the slots as a
// grid (charging, full, empty, fault), temperature and firmware, the door and its
// lock (with lock/unlock for staff who may), open alerts, tablets still out, and
// (admin) firmware rollouts. Mount with
//   import { mountCarts } from "./carts.js"; mountCarts(element, { admin: true });
// or put <section id="carts-panel" data-admin="1"></section> on a page that loads this module.
// Messages live here in both languages so the shared catalogs need no edit.

import { api } from "./api.js";
import { currentLang, onLangChange } from "./i18n.js";
import { h } from "./ui.js";

const MSG = {
  "zh-CN": {
    title: "充电车", none: "还没有登记充电车。", fw: "固件", temp: "温度", mode: "模式", seen: "最近联系",
    modes: { plan: "按计划充电", fallback: "离线轮换", startup: "启动延时", cutoff: "过热断电" },
    legend: { on: "充电中", full: "已充满", empty: "空槽", fault: "故障", idle: "等待" },
    alerts: "提醒", noAlerts: "没有提醒", out: "未归还的平板", noneOut: "平板都在车里",
    endOfDay: "放学检查", endOfDayDone: "已检查：{n} 台未归还", rollouts: "固件升级",
    startRollout: "逐台升级到", status: { running: "进行中", done: "完成", stopped: "已停止" },
    error: "无法读取充电车：{detail}",
    door: "车门", doorState: { 0: "关着", 1: "开着" }, lock: "门锁", lockState: { 0: "未上锁", 1: "已上锁" },
    lockBtn: "上锁", unlockBtn: "开锁", lockOps: { lock: "上锁", unlock: "开锁" },
    cmd: {
      queued: "{op}：已排队，等充电车下次联系", sent: "{op}：已发送，等充电车确认", waiting: "{op}：车门开着，关上后自动上锁",
      done: "{op}：充电车已执行", refused: "{op}：充电车拒绝（{detail}）", superseded: "{op}：已被新指令取代",
      expired: "{op}：充电车 5 分钟内未确认，已作废",
    },
    details: { "over-temperature cut-off: the door stays locked": "过热断电中，车门保持上锁" },
    lockFailed: "无法发送：{detail}",
  },
  en: {
    title: "Charging carts", none: "No cart enrolled yet.", fw: "Firmware", temp: "Temperature", mode: "Mode", seen: "Last contact",
    modes: { plan: "charging by plan", fallback: "offline rotation", startup: "start delay", cutoff: "thermal cut-off" },
    legend: { on: "charging", full: "full", empty: "empty", fault: "fault", idle: "waiting" },
    alerts: "Alerts", noAlerts: "No alerts", out: "Tablets not returned", noneOut: "All tablets are in the cart",
    endOfDay: "End-of-day check", endOfDayDone: "Checked: {n} not returned", rollouts: "Firmware rollouts",
    startRollout: "Update one cart at a time to", status: { running: "running", done: "done", stopped: "stopped" },
    error: "Cannot read the carts: {detail}",
    door: "Door", doorState: { 0: "closed", 1: "open" }, lock: "Lock", lockState: { 0: "unlocked", 1: "locked" },
    lockBtn: "Lock", unlockBtn: "Unlock", lockOps: { lock: "Lock", unlock: "Unlock" },
    cmd: {
      queued: "{op}: queued until the cart's next report", sent: "{op}: sent, waiting for the cart", waiting: "{op}: the door is open; it locks once closed",
      done: "{op}: done by the cart", refused: "{op}: refused by the cart ({detail})", superseded: "{op}: replaced by a newer command",
      expired: "{op}: the cart did not confirm it within 5 minutes; dropped",
    },
    details: {},
    lockFailed: "Could not send: {detail}",
  },
};

function m() {
  return MSG[currentLang()] || MSG["zh-CN"];
}

function fill(text, params) {
  return text.replace(/\{(\w+)\}/g, (_, k) => String(params[k] ?? ""));
}

export function slotState(tele, i) {
  if (tele.fault[i]) return "fault";
  if (!tele.present[i]) return "empty";
  if (tele.full[i]) return "full";
  if (tele.on[i]) return "on";
  return "idle";
}

function lockControls(cart, msg, refresh) {
  const cmd = cart.lock_command;
  const status = h("p", { class: "msg cart-lock-status", attrs: { role: "status" } });
  if (cmd) {
    const detail = msg.details[cmd.detail] || cmd.detail || "";
    status.textContent = fill(msg.cmd[cmd.status] || cmd.status, { op: msg.lockOps[cmd.op], detail });
    status.dataset.status = cmd.status;
  }
  if (!cart.can_lock) return h("div", { class: "cart-lock" }, status);
  const send = (op) => async () => {
    try {
      await api("POST", `/carts/${encodeURIComponent(cart.id)}/lock-commands`, { json: { op } });
      await refresh();
    } catch (err) {
      status.textContent = fill(msg.lockFailed, { detail: err.message });
    }
  };
  return h("div", { class: "cart-lock" },
    h("button", { class: "btn primary cart-lock-btn", attrs: { type: "button" }, on: { click: send("lock") } }, msg.lockBtn),
    h("button", { class: "btn cart-unlock-btn", attrs: { type: "button" }, on: { click: send("unlock") } }, msg.unlockBtn),
    status);
}

function cartCard(cart, refresh) {
  const msg = m();
  const tele = cart.telemetry;
  const head = h("div", { class: "cart-head" },
    h("h2", {}, cart.name),
    h("dl", { class: "cart-facts" },
      h("dt", {}, msg.fw), h("dd", {}, cart.fw || "–"),
      h("dt", {}, msg.temp), h("dd", {}, tele && tele.temp != null ? `${tele.temp} °C` : "–"),
      h("dt", {}, msg.mode), h("dd", {}, tele ? msg.modes[tele.mode] || tele.mode : "–"),
      h("dt", {}, msg.seen), h("dd", {}, cart.last_seen ? new Date(cart.last_seen * 1000).toLocaleTimeString() : "–"),
      h("dt", {}, msg.door), h("dd", { dataset: { fact: "door" } }, tele ? msg.doorState[tele.door] : "–"),
      h("dt", {}, msg.lock), h("dd", { dataset: { fact: "lock", value: tele ? tele.lock : "" } }, tele ? msg.lockState[tele.lock] : "–")));
  const grid = h("div", { class: "cart-grid", attrs: { role: "list" } });
  if (tele) {
    for (let i = 0; i < tele.present.length; i++) {
      const state = slotState(tele, i);
      grid.append(h("div", { class: `cart-slot slot-${state}`, attrs: { role: "listitem", title: `${i + 1}: ${msg.legend[state]} ${tele.ma[i]} mA` } }, String(i + 1)));
    }
  }
  const legend = h("ul", { class: "cart-legend" },
    ...Object.keys(msg.legend).map((k) => h("li", {}, h("span", { class: `cart-slot slot-${k}` }), msg.legend[k])));
  const alerts = h("ul", { class: "cart-alerts" },
    ...(cart.alerts.length ? cart.alerts.map((a) => h("li", { class: `alert-${a.kind}` }, a.detail)) : [h("li", { class: "muted" }, msg.noAlerts)]));
  return h("article", { class: "card cart-card", dataset: { cart: cart.id } }, head, lockControls(cart, msg, refresh), grid, legend,
    h("h3", {}, msg.alerts), alerts);
}

export function mountCarts(root, { admin = false, refreshMs = 5000 } = {}) {
  let timer = null;
  async function render() {
    const msg = m();
    try {
      const [{ carts }, { tablets }] = await Promise.all([api("GET", "/carts"), api("GET", "/tablets")]);
      const out = tablets.filter((t) => t.out);
      const parts = [h("h1", {}, msg.title)];
      parts.push(...(carts.length ? carts.map((c) => cartCard(c, render)) : [h("p", { class: "muted" }, msg.none)]));
      parts.push(h("h2", {}, msg.out), h("ul", { class: "cart-out" },
        ...(out.length ? out.map((t) => h("li", {}, `${t.serial}${t.student_name ? " · " + t.student_name : ""}`)) : [h("li", { class: "muted" }, msg.noneOut)])));
      const eod = h("button", { class: "btn", attrs: { type: "button" } }, msg.endOfDay);
      const eodMsg = h("p", { class: "msg", attrs: { role: "status" } });
      eod.addEventListener("click", async () => {
        const res = await api("POST", "/carts/end-of-day");
        eodMsg.textContent = fill(msg.endOfDayDone, { n: res.carts.length });
      });
      parts.push(eod, eodMsg);
      if (admin) parts.push(await rollouts(msg));
      root.replaceChildren(...parts);
    } catch (err) {
      root.replaceChildren(h("p", { class: "msg error" }, fill(msg.error, { detail: err.message })));
    }
  }
  async function loop() {
    await render();
    timer = setTimeout(loop, refreshMs);
  }
  onLangChange(render);
  loop();
  return () => clearTimeout(timer);
}

async function rollouts(msg) {
  const data = await api("GET", "/firmware/rollouts");
  const select = h("select", {}, ...data.releases.map((v) => h("option", { attrs: { value: v } }, v)));
  const go = h("button", { class: "btn", attrs: { type: "button" } }, msg.startRollout);
  const note = h("p", { class: "msg", attrs: { role: "status" } });
  go.addEventListener("click", async () => {
    try {
      await api("POST", "/firmware/rollouts", { json: { version: select.value } });
    } catch (err) {
      note.textContent = err.message;
    }
  });
  return h("section", { class: "cart-rollouts" }, h("h2", {}, msg.rollouts),
    h("div", { class: "row" }, go, select), note,
    h("ul", {}, ...data.rollouts.map((r) => h("li", {}, `${r.version}: ${msg.status[r.status] || r.status} ${r.position}/${r.carts.length}${r.detail ? " · " + r.detail : ""}`))));
}

const panel = typeof document !== "undefined" && document.getElementById("carts-panel");
if (panel) mountCarts(panel, { admin: panel.dataset.admin === "1" });
