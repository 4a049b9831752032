// Message catalogs and the language switch.
//
// Every visible string lives in ../i18n/<lang>.json. Elements carry their key in
// data-i18n (text) or data-i18n-attr ("placeholder:key;aria-label:key2") and their
// parameters in data-i18n-params, so switching language re-renders the whole page
// from the DOM alone, including messages shown earlier.

const STORAGE_KEY = "hub.lang";
export const LANGS = ["zh-CN", "en"];
const DEFAULT_LANG = "zh-CN";

let catalog = {};
let current = DEFAULT_LANG;
const cache = new Map();
const listeners = new Set();

function storedLang() {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return LANGS.includes(value) ? value : DEFAULT_LANG;
  } catch {
    // Storage can be disabled (private mode, kiosk policy): fall back to the default.
    return DEFAULT_LANG;
  }
}

async function loadCatalog(lang) {
  if (!cache.has(lang)) {
    // Relative to this module, so the catalog shares the versioned /static/<build>/ path.
    const resp = await fetch(new URL(`../i18n/${lang}.json`, import.meta.url));
    if (!resp.ok) throw new Error(`catalog ${lang}: HTTP ${resp.status}`);
    cache.set(lang, await resp.json());
  }
  return cache.get(lang);
}

export function currentLang() {
  return current;
}

export function hasKey(key) {
  return Object.prototype.hasOwnProperty.call(catalog, key);
}

export function t(key, params = {}) {
  const text = hasKey(key) ? catalog[key] : key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

function paramsOf(el) {
  if (!el.dataset.i18nParams) return {};
  try {
    return JSON.parse(el.dataset.i18nParams);
  } catch {
    return {};
  }
}

/** Translate every keyed element under root (default: the whole document). */
export function translate(root = document) {
  const scope = root.querySelectorAll ? root : document;
  const nodes = [...scope.querySelectorAll("[data-i18n], [data-i18n-attr]")];
  if (root.dataset && (root.dataset.i18n || root.dataset.i18nAttr)) nodes.push(root);
  for (const el of nodes) {
    const params = paramsOf(el);
    if (el.dataset.i18n) el.textContent = t(el.dataset.i18n, params);
    if (el.dataset.i18nAttr) {
      for (const pair of el.dataset.i18nAttr.split(";")) {
        const [attr, key] = pair.split(":").map((s) => s.trim());
        if (attr && key) el.setAttribute(attr, t(key, params));
      }
    }
  }
}

/** Put a translated message on el and remember key and params for later language switches. */
export function tr(el, key, params) {
  el.dataset.i18n = key;
  if (params && Object.keys(params).length) el.dataset.i18nParams = JSON.stringify(params);
  else delete el.dataset.i18nParams;
  el.textContent = t(key, params || {});
  return el;
}

export function onLangChange(fn) {
  listeners.add(fn);
}

export async function setLang(lang, { persist = true } = {}) {
  if (!LANGS.includes(lang)) lang = DEFAULT_LANG;
  catalog = await loadCatalog(lang);
  current = lang;
  if (persist) {
    try {
      localStorage.setItem(STORAGE_KEY, lang);
    } catch {
      // Not persisted; the switch still applies to this page.
    }
  }
  document.documentElement.lang = lang;
  document.title = t(document.body.dataset.titleKey || "app.name");
  translate(document);
  for (const fn of listeners) fn(lang);
}

export async function initI18n() {
  try {
    await setLang(storedLang(), { persist: false });
  } finally {
    // The page is hidden by CSS until its strings are in place (no flash of keys);
    // if a catalog cannot load, showing the keys beats a blank tablet.
    document.documentElement.classList.remove("i18n-pending");
  }
}
