// Consultation records (docs/protocol.md section 1, "records"): the list in the lobby, and one record
// read on its own page (/?record=ID) with its export in any of the eleven languages and, for the
// room's host or an administrator, its deletion.

import { $, el, userText } from "../dom.js";
import { errorText, formatDate, formatDateTime, formatNumber, formatTime, isolate, languageName, onLanguageChange, t } from "../i18n.js";
import { ApiError, api } from "../rest.js";

let listed = null; // {app, records}
let shown = null; // {app, record, lines}

function recordLink(id) {
  return `/?record=${encodeURIComponent(id)}`;
}

// ------------------------------------------------------------ the list, in the lobby

export async function showRecordList(app) {
  const { records } = await api("/api/records").catch(() => ({ records: [] }));
  listed = { app, records };
  renderList();
}

function renderList() {
  if (!listed) return;
  const { app, records } = listed;
  $("#records-card").hidden = records.length === 0;
  const list = $("#records-list");
  list.replaceChildren();
  for (const record of records) {
    const view = el("a", { href: recordLink(record.id), textContent: t("records.view") });
    view.setAttribute("aria-label", t("records.viewNamed", { title: isolate(record.room_title) }));
    view.addEventListener("click", (event) => {
      event.preventDefault();
      app.notice(null);
      app.navigate(recordLink(record.id));
    });
    const actions = el("span", { className: "actions" }, view);
    if (record.may_delete) actions.append(deleteButton(app, record, () => showRecordList(app)));
    list.append(
      el(
        "li",
        { dataset: { recordId: record.id } },
        el("span", { className: "item-main" }, userText(record.room_title), " ",
          el("span", { className: "hint", textContent: recordSummary(record) })),
        record.ended_at === null ? el("span", { className: "live-badge", textContent: t("records.running") }) : null,
        actions,
      ),
    );
  }
}

function recordSummary(record) {
  return t("records.summary", {
    started: formatDateTime(record.started_at),
    lines: formatNumber(record.lines),
    expires: formatDate(record.expires_at),
  });
}

function deleteButton(app, record, then) {
  const button = el("button", { type: "button", className: "secondary small", textContent: t("records.delete") });
  button.setAttribute("aria-label", t("records.deleteNamed", { title: isolate(record.room_title) }));
  button.addEventListener("click", () => deleteRecord(app, record, then));
  return button;
}

// Deleting removes the words at once, for everyone who could read them: asked first.
async function deleteRecord(app, record, then) {
  if (!confirm(t("records.deleteConfirm", { title: isolate(record.room_title) }))) return;
  try {
    await api(`/api/records/${encodeURIComponent(record.id)}`, { method: "DELETE" });
    // The lobby shows its last list until it has fetched again: the deleted record leaves it now.
    if (listed) {
      listed = { ...listed, records: listed.records.filter((kept) => kept.id !== record.id) };
      renderList();
    }
    app.notice("records.deleted");
  } catch (error) {
    app.noticeText(errorText(error));
  }
  then();
}

// ------------------------------------------------------------ one record

export async function enterRecord(app, recordId) {
  let body;
  try {
    body = await api(`/api/records/${encodeURIComponent(recordId)}`);
  } catch (error) {
    if (error.status === 401) return app.signedOut(null);
    if (error.status === 404) app.notice("records.gone");
    else app.noticeText(errorText(error));
    return app.navigate("/");
  }
  shown = { app, record: body.record, lines: body.lines };
  app.show("record");
  fillExportLanguages();
  renderRecord();
  $("#record-title").focus();
}

export function leaveRecord() {
  shown = null;
}

function renderRecord() {
  if (!shown) return;
  const { record, lines } = shown;
  $("#record-title").textContent = record.room_title;
  $("#record-meta").textContent = recordSummary(record);
  $("#record-empty").hidden = lines.length > 0;
  const list = $("#record-lines");
  list.replaceChildren();
  for (const line of lines) {
    list.append(
      el(
        "li",
        { dataset: { utterance: line.utterance_id } },
        el("span", { className: "hint time", textContent: formatTime(line.start_at) }),
        " ",
        el("span", { className: "speaker" }, userText(line.speaker_name)),
        " ",
        el("span", { className: "lang", textContent: line.language }),
        " ",
        el("span", { className: "text", lang: line.language, dir: "auto", textContent: line.text }),
      ),
    );
  }
  $("#record-delete").hidden = !record.may_delete;
  showExportHint();
}

function fillExportLanguages() {
  const select = $("#export-language");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", textContent: t("records.asSpoken") }));
  for (const { code } of shown.app.info.languages) select.append(el("option", { value: code, textContent: languageName(code) }));
  select.value = chosen;
}

// The bilingual document sets the original beside a translation: it needs a language.
function showExportHint() {
  const needsLanguage = $("#export-format").value === "html" && !$("#export-language").value;
  $("#export-hint").hidden = !needsLanguage;
  $("#export-record").disabled = needsLanguage;
}

// The export is fetched, then saved under the name the server gives it; a refusal is explained here
// instead of being saved as a file.
async function exportRecord() {
  if (!shown) return;
  const query = new URLSearchParams({ format: $("#export-format").value });
  if ($("#export-language").value) query.set("language", $("#export-language").value);
  let response;
  try {
    response = await fetch(`/api/records/${encodeURIComponent(shown.record.id)}/export?${query}`, { credentials: "same-origin" });
  } catch {
    return shown.app.noticeText(errorText(new ApiError(0, "unreachable", "")));
  }
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    const error = data.error || {};
    return shown.app.noticeText(errorText(new ApiError(response.status, error.code, error.message || `HTTP ${response.status}`)));
  }
  const disposition = response.headers.get("Content-Disposition") || "";
  const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || `babelcall-record.${query.get("format")}`;
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

export function wireRecords(app) {
  $("#record-export").addEventListener("submit", (event) => {
    event.preventDefault();
    exportRecord();
  });
  $("#export-format").addEventListener("change", showExportHint);
  $("#export-language").addEventListener("change", showExportHint);
  $("#record-delete").addEventListener("click", () => shown && deleteRecord(shown.app, shown.record, () => app.navigate("/")));
  $("#record-back").addEventListener("click", (event) => {
    event.preventDefault();
    app.navigate("/");
  });
  onLanguageChange(() => {
    renderList();
    if (shown) {
      fillExportLanguages();
      renderRecord();
    }
  });
}
