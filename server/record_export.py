"""A consultation record as a file: WebVTT and SRT (for video tools), plain text, JSON, and a bilingual
HTML document (the words as spoken beside their translation).

An export is in the language each line was spoken in, or translated into any of the eleven languages
at export time with the server's installed models, through the same engine, routes and glossary
protection as live captions (mt/). A line with no model for its pair keeps its original words and says
so, as captions do: "not translated: no model for ar→zh". Translation runs as best-effort work
(`Priority.BULK`), so exporting never delays a live call's captions.

Cue times count from the start of the record.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mt import Priority
from protocol import LANGUAGES, Glossary, TranslationPath
from server.records import RecordLine
from server.store import StoredRecord

if TYPE_CHECKING:  # mt (CTranslate2) is imported when an export is translated: `babelcall --help` stays quick
    from mt import TranslationEngine
    from mt.plan import Note

# Lines translated at once: enough for the engine to batch them, few enough to leave room for calls.
_TRANSLATIONS_IN_FLIGHT = 4


class ExportFormat(StrEnum):
    VTT = "vtt"
    SRT = "srt"
    TEXT = "txt"
    JSON = "json"
    HTML = "html"  # bilingual: needs a language

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]


_CONTENT_TYPES = {
    ExportFormat.VTT: "text/vtt",
    ExportFormat.SRT: "application/x-subrip",
    ExportFormat.TEXT: "text/plain",
    ExportFormat.JSON: "application/json",
    ExportFormat.HTML: "text/html",
}


@dataclass(frozen=True)
class ExportLine:
    line: RecordLine
    text: str  # in the export's language, or the original words (path ORIGINAL or UNTRANSLATED)
    language: str  # the language of `text`
    path: TranslationPath = TranslationPath.ORIGINAL
    model: str | None = None
    note: Note | None = None  # why `text` is not a translation, e.g. "not translated: no model for ar→zh"


async def translate_lines(
    lines: list[RecordLine], language: str | None, engine: TranslationEngine | None, glossary: Glossary
) -> list[ExportLine]:
    """Each line in `language` (None: as spoken, and no engine is needed)."""
    slots = asyncio.Semaphore(_TRANSLATIONS_IN_FLIGHT)

    async def one(line: RecordLine) -> ExportLine:
        if language is None or line.language == language:
            return ExportLine(line, line.text, line.language)
        assert engine is not None, "a translated export needs the translation engine"
        async with slots:
            translations = await engine.translate(
                line.text, line.language, [language], glossary=glossary, priority=Priority.BULK
            )
        done = translations[language]
        shown_in = line.language if done.path is TranslationPath.UNTRANSLATED else language
        return ExportLine(line, done.text, shown_in, done.path, done.model, done.note)

    return list(await asyncio.gather(*(one(line) for line in lines)))


def render(
    export_format: ExportFormat, record: StoredRecord, lines: list[ExportLine], language: str | None
) -> str:
    if export_format is ExportFormat.VTT:
        return _webvtt(record, lines, language)
    if export_format is ExportFormat.SRT:
        return _srt(record, lines)
    if export_format is ExportFormat.TEXT:
        return _text(record, lines, language)
    if export_format is ExportFormat.JSON:
        return _json(record, lines, language)
    if language is None:
        raise ValueError("the bilingual document needs a language")
    return _bilingual_html(record, lines, language)


def filename(record: StoredRecord, export_format: ExportFormat, language: str | None) -> str:
    return f"record-{record.id[:8]}-{language or 'original'}.{export_format.value}"


# ---------------------------------------------------------------- formats


def _offsets(record: StoredRecord, line: RecordLine) -> tuple[float, float]:
    start = max(0.0, line.start_at - record.started_at)
    return start, max(start, line.end_at - record.started_at)


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _one_line(text: str) -> str:
    """Cue text on one line: a blank line would end the cue."""
    return " ".join(text.split())


def _language_name(code: str | None) -> str:
    return "as spoken" if code is None else f"{LANGUAGES[code].name} ({code})"


def _utc(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _webvtt(record: StoredRecord, lines: Iterable[ExportLine], language: str | None) -> str:
    def escape(text: str) -> str:  # WebVTT cue text: & and < start markup, and "-->" may not appear
        return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    header = [
        "WEBVTT",
        "",
        "NOTE",
        f"BabelCall consultation record {record.id}, started {_utc(record.started_at)}",
        f"Language: {_language_name(language)}",
        "",
    ]
    cues = _cues(record, lines, ".", escape, lambda speaker, text: f"<v {speaker}>{text}")
    return "\n".join(header + cues)


def _srt(record: StoredRecord, lines: Iterable[ExportLine]) -> str:
    def plain(text: str) -> str:  # SRT has no escapes; an arrow in the text would read as a timing line
        return _one_line(text).replace("-->", "→")

    return "\n".join(_cues(record, lines, ",", plain, lambda speaker, text: f"{speaker}: {text}"))


def _cues(
    record: StoredRecord,
    lines: Iterable[ExportLine],
    decimal_mark: str,
    escape: Callable[[str], str],
    spoken_by: Callable[[str, str], str],
) -> list[str]:
    """Numbered subtitle cues (WebVTT and SRT share the shape, not the escaping): number, timing, who
    said what, the note on a line left untranslated, a blank line."""
    out: list[str] = []
    for number, exported in enumerate(lines, 1):
        start, end = _offsets(record, exported.line)
        out += [str(number), f"{_clock(start, decimal_mark)} --> {_clock(end, decimal_mark)}"]
        out.append(spoken_by(escape(exported.line.speaker_name), escape(exported.text)))
        if exported.note:
            out.append(f"[{escape(exported.note.text)}]")
        out.append("")
    return out


def _text(record: StoredRecord, lines: Iterable[ExportLine], language: str | None) -> str:
    out = [
        f"BabelCall consultation record {record.id}",
        f"Room: {record.room_title}",
        f"Started: {_utc(record.started_at)}; ended: {_utc(record.ended_at)}",
        f"Language: {_language_name(language)}",
        "",
    ]
    for exported in lines:
        start, _ = _offsets(record, exported.line)
        line = exported.line
        out.append(f"[{_clock(start, '.')[:8]}] {line.speaker_name} ({line.language}): {exported.text}")
        if exported.note:
            out.append(f"    ({exported.note.text})")
    return "\n".join(out) + "\n"


def _json(record: StoredRecord, lines: Iterable[ExportLine], language: str | None) -> str:
    def entry(exported: ExportLine) -> dict[str, Any]:
        line = exported.line
        start, end = _offsets(record, line)
        return {
            "utterance_id": line.utterance_id,
            "speaker_id": line.speaker_id,
            "speaker_name": line.speaker_name,
            "spoken_language": line.language,
            "kind": line.kind.value,
            "start_at": line.start_at,
            "end_at": line.end_at,
            "start_s": round(start, 3),
            "end_s": round(end, 3),
            "original": line.text,
            "text": exported.text,
            "language": exported.language,
            "path": exported.path.value,
            "model": exported.model,
            "note": exported.note.text if exported.note else None,
            "note_code": exported.note.code.value if exported.note else None,
        }

    document = {
        "record": record.public(),
        "language": language,
        "lines": [entry(exported) for exported in lines],
    }
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #1a1a1a; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ccc; padding: .4em .6em; vertical-align: top; text-align: start; }
td.time { font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { display: block; color: #8a4b00; font-size: .85em; }
"""


def _bilingual_html(record: StoredRecord, lines: Iterable[ExportLine], language: str) -> str:
    def cell(text: str, code: str, note: str | None = None) -> str:
        direction = "rtl" if LANGUAGES[code].rtl else "ltr"
        marked = f'<span class="note">{html.escape(note)}</span>' if note else ""
        return f'<td lang="{code}" dir="{direction}">{html.escape(text)}{marked}</td>'

    target = LANGUAGES[language]
    rows = []
    for exported in lines:
        line = exported.line
        start, _ = _offsets(record, line)
        rows.append(
            "<tr>"
            f'<td class="time">{_clock(start, ".")[:8]}</td>'
            f"<td>{html.escape(line.speaker_name)}</td>"
            f"{cell(line.text, line.language)}"
            f"{cell(exported.text, exported.language, exported.note.text if exported.note else None)}"
            "</tr>"
        )
    title = f"Consultation record: {record.room_title}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_STYLE}</style></head>",
            "<body>",
            f"<h1>{html.escape(title)}</h1>",
            f"<p>Record {html.escape(record.id)}; started {_utc(record.started_at)}, ended "
            f"{_utc(record.ended_at)}. Original and {html.escape(target.name)}.</p>",
            "<table>",
            "<thead><tr><th>Time</th><th>Speaker</th><th>Original</th>"
            f'<th lang="{target.code}">{html.escape(target.native_name)}</th></tr></thead>',
            "<tbody>",
            *rows,
            "</tbody></table>",
            "</body></html>",
            "",
        ]
    )
