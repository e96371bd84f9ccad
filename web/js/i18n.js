// The interface's language: catalogues (web/i18n/<code>.json), text direction, and every date, time
// and number on the page formatted with Intl for that one locale, so that digits never mix.

export const INTERFACE_LANGUAGES = ["ar", "zh", "en", "fr", "id", "ja", "ru", "es", "th", "tr", "vi"];
const RIGHT_TO_LEFT = new Set(["ar"]);
const FALLBACK = "en";
const STORAGE_KEY = "babelcall.interfaceLanguage";

let locale = FALLBACK;
let catalogue = {};
let fallback = {};
const listeners = [];

async function loadCatalogue(code) {
  const response = await fetch(`/static/i18n/${code}.json`, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`no catalogue for ${code}`);
  return response.json();
}

// The saved choice, else the first of the browser's languages the interface has, else English.
export function preferredLanguage() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (INTERFACE_LANGUAGES.includes(saved)) return saved;
  for (const tag of navigator.languages || [navigator.language || FALLBACK]) {
    const primary = tag.toLowerCase().split("-")[0];
    if (INTERFACE_LANGUAGES.includes(primary)) return primary;
  }
  return FALLBACK;
}

export function currentLanguage() {
  return locale;
}

function isRightToLeft(code = locale) {
  return RIGHT_TO_LEFT.has(code);
}

export async function setLanguage(code, { remember = false } = {}) {
  if (!INTERFACE_LANGUAGES.includes(code)) code = FALLBACK;
  if (!Object.keys(fallback).length) fallback = await loadCatalogue(FALLBACK);
  catalogue = code === FALLBACK ? fallback : await loadCatalogue(code);
  locale = code;
  if (remember) localStorage.setItem(STORAGE_KEY, code);
  document.documentElement.lang = code;
  document.documentElement.dir = isRightToLeft(code) ? "rtl" : "ltr";
  translatePage(document);
  for (const listener of listeners) listener(code);
}

// Views re-render their dynamic text when the language changes.
export function onLanguageChange(listener) {
  listeners.push(listener);
}

function lookup(key) {
  if (key in catalogue) return catalogue[key];
  if (key in fallback) return fallback[key];
  return null;
}

export function has(key) {
  return lookup(key) !== null;
}

function formatParam(value) {
  return typeof value === "number" ? formatNumber(value) : String(value);
}

// The message `key` with {placeholders} filled in; numbers are formatted for the interface's locale.
export function t(key, params = {}) {
  const template = lookup(key);
  if (template === null) return key;
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? formatParam(params[name]) : whole));
}

// The same as nodes: parameters that are DOM nodes (user text in <bdi>) are inserted as they are.
export function tNodes(key, params = {}) {
  const template = lookup(key) ?? key;
  const fragment = document.createDocumentFragment();
  for (const part of template.split(/(\{\w+\})/)) {
    const name = part.startsWith("{") && part.endsWith("}") ? part.slice(1, -1) : null;
    if (name !== null && name in params) {
      const value = params[name];
      fragment.append(value instanceof Node ? value : formatParam(value));
    } else if (part) {
      fragment.append(part);
    }
  }
  return fragment;
}

// User text inside a plain-text message (a confirm() dialog, a title attribute): Unicode isolates do
// there what <bdi> does in the page.
export function isolate(text) {
  return `\u2068${text}\u2069`;
}

const ATTRIBUTES = { i18nTitle: "title", i18nAriaLabel: "aria-label", i18nPlaceholder: "placeholder" };

export function translatePage(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const [datasetKey, attribute] of Object.entries(ATTRIBUTES)) {
    const selector = `[data-${datasetKey.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`;
    for (const node of root.querySelectorAll(selector)) node.setAttribute(attribute, t(node.dataset[datasetKey]));
  }
  document.title = t("app.title");
}

export function formatNumber(value, options = {}) {
  return new Intl.NumberFormat(locale, options).format(value);
}

export function formatDateTime(unixSeconds) {
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(unixSeconds * 1000);
}

export function formatTime(unixSeconds) {
  return new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" })
    .format(unixSeconds * 1000);
}

export function formatDate(unixSeconds) {
  return new Intl.DateTimeFormat(locale, { dateStyle: "long" }).format(unixSeconds * 1000);
}

// A call's length as m:ss or h:mm:ss, in the locale's digits.
export function formatDuration(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  const two = (n) => formatNumber(n, { minimumIntegerDigits: 2, useGrouping: false });
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = two(whole % 60);
  return hours ? `${formatNumber(hours)}:${two(minutes)}:${rest}` : `${formatNumber(minutes)}:${rest}`;
}

// A language's name in the interface's language ("Arabic" in English, "العربية" in Arabic).
export function languageName(code) {
  try {
    return new Intl.DisplayNames([locale], { type: "language" }).of(code) || code;
  } catch {
    return code;
  }
}

// A language's own name ("العربية"), for pickers read by people who may not read the interface language.
export function nativeLanguageName(code) {
  try {
    return new Intl.DisplayNames([code], { type: "language" }).of(code) || code;
  } catch {
    return code;
  }
}

// The message for an error code from the server (docs/protocol.md), in the interface's language; the
// server's English message where the catalogue has none.
export function errorText(error) {
  const key = `errors.${error.code}`;
  return error.code && has(key) ? t(key) : error.message;
}
