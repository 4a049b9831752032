// The charging cart at a glance, for the teacher and admin pages: the slots as a
// grid (charging, full, empty, fault), temperature and firmware, open alerts,
// tablets still out, and (admin) firmware rollouts. Mount with
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
  },
  en: {
    title: "Charging carts", none: "No cart enrolled yet.", fw: "Firmware", temp: "Temperature", mode: "Mode", seen: "Last contact",
    modes: { plan: "charging by plan", fallback: "offline rotation", startup: "start delay", cutoff: "thermal cut-off" },
    legend: { on: "charging", full: "full", empty: "empty", fault: "fault", idle: "waiting" },
    alerts: "Alerts", noAlerts: "No alerts", out: "Tablets not returned", noneOut: "All tablets are in the cart",
    endOfDay: "End-of-day check", endOfDayDone: "Checked: {n} not returned", rollouts: "Firmware rollouts",
    startRollout: "Update one cart at a time to", status: { running: "running", done: "done", stopped: "stopped" },
    error: "Cannot read the carts: {detail}",
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

function cartCard(cart) {
  const msg = m();
  const tele = cart.telemetry;
  const head = h("div", { class: "cart-head" },
    h("h2", {}, cart.name),
    h("dl", { class: "cart-facts" },
      h("dt", {}, msg.fw), h("dd", {}, cart.fw || "–"),
      h("dt", {}, msg.temp), h("dd", {}, tele && tele.temp != null ? `${tele.temp} °C` : "–"),
      h("dt", {}, msg.mode), h("dd", {}, tele ? msg.modes[tele.mode] || tele.mode : "–"),
      h("dt", {}, msg.seen), h("dd", {}, cart.last_seen ? new Date(cart.last_seen * 1000).toLocaleTimeString() : "–")));
  const grid = h("div", { class: "cart-grid", role: "list" });
  if (tele) {
    for (let i = 0; i < tele.present.length; i++) {
      const state = slotState(tele, i);
      grid.append(h("div", { class: `cart-slot slot-${state}`, role: "listitem", title: `${i + 1}: ${msg.legend[state]} ${tele.ma[i]} mA` }, String(i + 1)));
    }
  }
  const legend = h("ul", { class: "cart-legend" },
    ...Object.keys(msg.legend).map((k) => h("li", {}, h("span", { class: `cart-slot slot-${k}` }), msg.legend[k])));
  const alerts = h("ul", { class: "cart-alerts" },
    ...(cart.alerts.length ? cart.alerts.map((a) => h("li", { class: `alert-${a.kind}` }, a.detail)) : [h("li", { class: "muted" }, msg.noAlerts)]));
  return h("article", { class: "card cart-card" }, head, grid, legend, h("h3", {}, msg.alerts), alerts);
}

export function mountCarts(root, { admin = false, refreshMs = 5000 } = {}) {
  let timer = null;
  async function render() {
    const msg = m();
    try {
      const [{ carts }, { tablets }] = await Promise.all([api("GET", "/carts"), api("GET", "/tablets")]);
      const out = tablets.filter((t) => t.out);
      const parts = [h("h1", {}, msg.title)];
      parts.push(...(carts.length ? carts.map(cartCard) : [h("p", { class: "muted" }, msg.none)]));
      parts.push(h("h2", {}, msg.out), h("ul", { class: "cart-out" },
        ...(out.length ? out.map((t) => h("li", {}, `${t.serial}${t.student_name ? " · " + t.student_name : ""}`)) : [h("li", { class: "muted" }, msg.noneOut)])));
      const eod = h("button", { class: "btn", type: "button" }, msg.endOfDay);
      const eodMsg = h("p", { class: "msg", role: "status" });
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
  const select = h("select", {}, ...data.releases.map((v) => h("option", { value: v }, v)));
  const go = h("button", { class: "btn", type: "button" }, msg.startRollout);
  const note = h("p", { class: "msg", role: "status" });
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
