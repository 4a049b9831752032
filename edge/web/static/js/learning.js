// Personalised learning page: for staff the class mastery map (knowledge point x
// student), the students who need help, the hardest items, the class's band and
// "push exercises"; for a signed-in student their own progress and exercises.
// Names and knowledge-point names come from the hub and only ever go in through
// textContent.

import { api, ApiError } from "./api.js";

const LANG_KEY = "hub.lang";
let lang = "zh-CN";
let msgs = {};
let role = null;
let rerender = () => {};

async function loadCatalog(which) {
  const resp = await fetch(new URL(`../i18n/learning/${which}.json`, import.meta.url));
  return resp.json();
}

function s(key, params = {}) {
  const text = msgs[key] || key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(params[k] ?? ""));
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function translatePage() {
  document.documentElement.lang = lang;
  document.title = s("title");
  for (const node of document.querySelectorAll("[data-s]")) node.textContent = s(node.dataset.s);
}

async function setLang(which) {
  lang = which;
  msgs = await loadCatalog(which);
  try {
    localStorage.setItem(LANG_KEY, which);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
  translatePage();
  rerender();
}

function showError(err) {
  const box = document.getElementById("msg");
  box.className = "msg error";
  box.textContent = s("error", { detail: err instanceof ApiError ? err.problem.detail || err.message : String(err) });
}

function showOk(text) {
  const box = document.getElementById("msg");
  box.className = "msg ok";
  box.textContent = text;
}

/** Mastery 0..1 -> one of ten colour classes (no inline styles: the CSP forbids them). */
function level(p) {
  return p === null || p === undefined ? "lv-none" : `lv${Math.min(9, Math.max(0, Math.floor(p * 10)))}`;
}

// -- teacher ----------------------------------------------------------------------------

function classId() {
  return Number(document.getElementById("class-select").value);
}

function renderLegend() {
  const legend = document.getElementById("legend");
  const cells = [];
  for (let i = 0; i < 10; i += 1) cells.push(el("span", `lv${i}`, `${i * 10}%`));
  cells.push(el("span", "lv-none", s("legendNone")));
  legend.replaceChildren(...cells);
}

function renderHeatmap(map) {
  const table = document.getElementById("heatmap");
  const head = el("thead");
  const hr = el("tr");
  hr.append(el("th"));
  for (const kp of map.knowledge_points) {
    const th = el("th");
    th.title = kp.id;
    th.append(el("span", "", kp.name));
    hr.append(th);
  }
  head.append(hr);
  const risky = new Set(map.at_risk.map((r) => r.student_id));
  const body = el("tbody");
  map.students.forEach((st, i) => {
    const tr = el("tr");
    const name = el("th", risky.has(st.id) ? "risk-row" : "", `${st.number} ${st.name}`);
    name.scope = "row";
    tr.append(name);
    map.mastery[i].forEach((p, j) => {
      const td = el("td", level(p), p === null ? "" : Math.round(p * 100));
      td.title = `${st.name} · ${map.knowledge_points[j].name}: ${p === null ? s("legendNone") : `${Math.round(p * 100)}%`}`;
      tr.append(td);
    });
    body.append(tr);
  });
  table.replaceChildren(head, body);

  const names = new Map(map.knowledge_points.map((k) => [k.id, k.name]));
  const risk = document.getElementById("at-risk");
  risk.replaceChildren(...map.at_risk.map((r) => {
    const li = el("li");
    li.append(el("strong", "", `${r.number} ${r.name}`), " ", el("span", "muted", s("weakPoints", { points: r.weak.map((k) => names.get(k) || k).join("、") })));
    return li;
  }));
  document.getElementById("at-risk-none").hidden = map.at_risk.length > 0;
  const hard = document.getElementById("hardest");
  hard.replaceChildren(...map.hardest_items.map((it) => {
    const li = el("li");
    li.append(el("code", "", it.item_id), " ", el("span", "muted", s("wrongRate", { rate: Math.round(it.wrong_rate * 100), answers: it.answers })));
    return li;
  }));
  document.getElementById("hardest-none").hidden = map.hardest_items.length > 0;
  document.getElementById("band-low").value = map.band.low;
  document.getElementById("band-high").value = map.band.high;
}

async function loadClass() {
  try {
    renderHeatmap(await api("GET", `/classes/${classId()}/learning/heatmap`));
  } catch (err) {
    showError(err);
  }
}

async function startTeacher() {
  document.getElementById("teacher-view").hidden = false;
  const { classes } = await api("GET", "/classes");
  const select = document.getElementById("class-select");
  select.replaceChildren(...classes.map((c) => {
    const opt = el("option", "", c.name);
    opt.value = c.id;
    return opt;
  }));
  select.addEventListener("change", loadClass);
  document.getElementById("band-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("PUT", `/classes/${classId()}/learning/settings`, {
        json: { band_low: Number(document.getElementById("band-low").value), band_high: Number(document.getElementById("band-high").value) },
      });
      showOk(s("saved"));
      await loadClass();
    } catch (err) {
      showError(err);
    }
  });
  document.getElementById("assign-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", `/classes/${classId()}/learning/assign`, { json: { n: Number(document.getElementById("assign-n").value) } });
      showOk(s("assigned", r));
    } catch (err) {
      showError(err);
    }
  });
  rerender = () => {
    renderLegend();
    loadClass();
  };
  rerender();
}

// -- student ----------------------------------------------------------------------------

function renderMine(me) {
  document.getElementById("my-summary").textContent = s("summary", me);
  document.getElementById("my-points").replaceChildren(...me.knowledge_points.map((k) => {
    const li = el("li");
    const meter = el("meter");
    meter.min = 0;
    meter.max = 1;
    meter.low = 0.6;
    meter.high = 0.85;
    meter.optimum = 1;
    meter.value = k.answers ? k.p : 0;
    const state = k.mastered ? el("span", "done", s("mastered")) : el("span", "muted", k.answers ? s("answers", { n: k.answers }) : s("notYet"));
    li.append(el("span", "", k.name), meter, state);
    return li;
  }));
  document.getElementById("my-exercises").replaceChildren(...me.exercises.map((x) => {
    const li = el("li");
    li.append(el("span", `tier ${x.tier}`, s(`tier.${x.tier}`)), el("code", "", x.item_id), " ", el("span", "muted", s(`reason.${x.reason}`)));
    return li;
  }));
  document.getElementById("my-exercises-none").hidden = me.exercises.length > 0;
}

async function startStudent() {
  document.getElementById("student-view").hidden = false;
  document.getElementById("back").href = "/student";
  let mine = null;
  rerender = () => mine && renderMine(mine);
  mine = await api("GET", "/me/learning");
  renderMine(mine);
}

async function main() {
  let stored = "zh-CN";
  try {
    stored = localStorage.getItem(LANG_KEY) || "zh-CN";
  } catch {
    // no storage: Chinese
  }
  await setLang(stored === "en" ? "en" : "zh-CN");
  document.getElementById("lang").addEventListener("click", () => setLang(lang === "en" ? "zh-CN" : "en"));
  try {
    const { user } = await api("GET", "/session");
    role = user ? user.role : null;
    if (role === "teacher" || role === "admin") await startTeacher();
    else if (role === "student") await startStudent();
    else document.getElementById("login-needed").hidden = false;
  } catch (err) {
    showError(err);
  }
}

main();
