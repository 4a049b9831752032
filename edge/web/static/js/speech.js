// The lesson-record page (课堂实录): search every transcript, open a hit and the
// recording plays from that moment; chapters and timed transcript; exports; live
// captions of a lesson being recorded; recording from this device's microphone
// (speech-record.js). Transcript text only ever reaches the page through textContent.

import { api, ApiError } from "./api.js";
import { setupRecorder } from "./speech-record.js";

const LANG_KEY = "hub.lang";
let lang = "zh-CN";
let msgs = {};
let current = null; // recording shown in the player

async function loadCatalog(which) {
  const resp = await fetch(new URL(`../i18n/speech/${which}.json`, import.meta.url));
  return resp.json();
}

function s(key, params = {}) {
  const text = msgs[key] || key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(params[k] ?? ""));
}

function translatePage() {
  document.documentElement.lang = lang;
  document.title = s("title");
  for (const el of document.querySelectorAll("[data-s]")) el.textContent = s(el.dataset.s, el.dataset.p ? JSON.parse(el.dataset.p) : {});
}

/** Show message `key` on el; it is translated again when the language changes. */
function say(el, key, params = {}) {
  el.dataset.s = key;
  el.dataset.p = JSON.stringify(params);
  el.textContent = s(key, params);
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
  await refreshStatus();
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** 754.2 -> "12:34" (or "1:02:03"). */
export function stamp(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

async function refreshStatus() {
  const line = document.getElementById("status");
  try {
    const st = await api("GET", "/speech/status");
    line.textContent = s(`state.${st.model_state}`, { model: st.model, queued: st.queued_jobs });
    line.dataset.state = st.model_state;
  } catch (err) {
    line.textContent = "";
  }
}

async function loadRecordings() {
  const list = document.getElementById("recordings");
  const { recordings } = await api("GET", "/recordings");
  list.replaceChildren();
  if (!recordings.length) list.append(el("li", "muted", s("none")));
  for (const rec of recordings) {
    const item = el("li", "speech-recording");
    const btn = el("button", "btn ghost", rec.title);
    btn.type = "button";
    btn.addEventListener("click", () => openRecording(rec.id, 0));
    item.append(btn, el("span", `speech-state state-${rec.state}`, s(`rec.${rec.state}`)));
    if (rec.duration_s) item.append(el("span", "muted", stamp(rec.duration_s)));
    list.append(item);
  }
}

function seek(seconds, play = true) {
  const audio = document.getElementById("player");
  const go = () => {
    audio.currentTime = seconds;
    if (play) audio.play().catch(() => {});
  };
  if (audio.readyState >= 1) go();
  else audio.addEventListener("loadedmetadata", go, { once: true });
}

async function openRecording(id, start) {
  const rec = await api("GET", `/recordings/${id}`);
  current = rec;
  document.getElementById("player-card").hidden = false;
  document.getElementById("player-title").textContent = rec.title;
  const audio = document.getElementById("player");
  const src = `/api/v1/recordings/${id}/media`;
  if (audio.getAttribute("src") !== src) audio.setAttribute("src", src);
  for (const fmt of ["vtt", "srt", "html"]) {
    const link = document.getElementById(`export-${fmt}`);
    link.href = `/api/v1/recordings/${id}/transcript.${fmt}`;
    link.setAttribute("download", `recording-${id}.${fmt}`);
  }
  const chapters = document.getElementById("chapters");
  chapters.replaceChildren();
  for (const ch of rec.chapters) {
    const b = el("button", "btn ghost", `${stamp(ch.start)} ${ch.title}`);
    b.type = "button";
    b.addEventListener("click", () => seek(ch.start));
    const li = el("li");
    li.append(b);
    chapters.append(li);
  }
  const segments = document.getElementById("segments");
  segments.replaceChildren();
  for (const seg of rec.segments) {
    const li = el("li", "speech-segment");
    li.dataset.start = String(seg.start);
    const t = el("button", "speech-time", stamp(seg.start));
    t.type = "button";
    t.addEventListener("click", () => seek(seg.start));
    li.append(t, el("span", "", seg.text));
    segments.append(li);
  }
  seek(start, start > 0);
  document.getElementById("player-card").scrollIntoView({ block: "nearest" });
}

async function search(ev) {
  ev.preventDefault();
  const q = document.getElementById("q").value.trim();
  const msg = document.getElementById("search-msg");
  const hits = document.getElementById("hits");
  msg.textContent = "";
  hits.replaceChildren();
  if (!q) return;
  try {
    const res = await api("GET", `/speech/search?q=${encodeURIComponent(q)}`);
    if (!res.hits.length) msg.textContent = s("noHits");
    for (const hit of res.hits) {
      const li = el("li", "speech-hit");
      const open = el("button", "speech-hit-open");
      open.type = "button";
      open.dataset.recording = String(hit.recording_id);
      open.dataset.start = String(hit.start_s);
      const head = el("span", "speech-hit-head", `${hit.recording_title} · ${stamp(hit.start_s)}${hit.chapter ? ` · ${hit.chapter}` : ""}`);
      const snip = el("span", "speech-snippet");
      for (const part of hit.snippet) snip.append(part.hit ? el("mark", "", part.text) : document.createTextNode(part.text));
      open.append(head, snip);
      open.addEventListener("click", () => openRecording(hit.recording_id, hit.start_s));
      li.append(open);
      hits.append(li);
    }
  } catch (err) {
    msg.textContent = err instanceof ApiError && err.problem.detail ? err.problem.detail : s("error");
  }
}

function startCaptions() {
  const card = document.getElementById("captions-card");
  const finalLine = document.getElementById("caption-final");
  const partial = document.getElementById("caption-partial");
  const events = new EventSource("/api/v1/events");
  events.addEventListener("speech.caption", (ev) => {
    const data = JSON.parse(ev.data);
    card.hidden = false;
    if (data.final) {
      finalLine.textContent = data.text;
      partial.textContent = "";
    } else {
      partial.textContent = data.text;
    }
  });
  events.addEventListener("speech.done", () => loadRecordings().catch(() => {}));
}

async function main() {
  let stored = "zh-CN";
  try {
    stored = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh-CN";
  } catch {
    // default language
  }
  lang = stored;
  msgs = await loadCatalog(lang);
  translatePage();
  document.getElementById("lang").addEventListener("click", () => setLang(lang === "en" ? "zh-CN" : "en"));
  try {
    await api("GET", "/me");
  } catch {
    document.getElementById("login-needed").hidden = false;
    return;
  }
  document.getElementById("search-form").addEventListener("submit", search);
  await Promise.all([refreshStatus(), loadRecordings()]);
  startCaptions();
  // Search and playback work even if the recorder cannot be set up.
  await setupRecorder({ s, say, stamp, onSaved: () => loadRecordings().catch(() => {}) }).catch(() => {});
  document.body.dataset.ready = "1";
}

main();
