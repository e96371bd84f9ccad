"""Exports of a consultation record, parsed back by other people's parsers: WebVTT (webvtt-py), SRT
(srt), JSON, plain text and the bilingual HTML document (html.parser), as spoken and translated into
Arabic, Chinese and English at export time, with glossary terms protected as in live captions; a
language without a model is marked on every line, as captions are.

Translation uses a model of the real shape with random weights (tests/mt_models.py): its output is
meaningless, but the path through the engine is the real one."""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt
from aiohttp.test_utils import TestClient, TestServer
from mt_models import build_multilingual
from rest_app import admin_client, api_only_app, member_client
from test_records import _Page
from test_records_api import _recording, _said, _start

from mt import TranslationEngine
from server.config import Config

SAID = {
    "en": "Continue metformin if glucose < 7 & no nausea.",
    "ar": "أشعر بدوخة في الصباح منذ أسبوع.",
    "zh": "我的血糖早上比较高。",
}
NAMES = {"en": "host", "ar": "ar", "zh": "zh"}  # members are named after their emails (test_api._member)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_multilingual(root / "nllb-tiny")
    return root


@contextlib.asynccontextmanager
async def _recorded_call(data_dir: Path, engine: TranslationEngine) -> AsyncIterator[tuple[TestClient, str]]:
    """A record of a three-language case review, a line each in English, Arabic and Chinese, in that
    order, with "metformin" in the room's glossary; the reader (the host) and the record's id."""
    config = Config(data_dir=data_dir, max_message_bytes=65_536, media_workers=1)
    server = TestServer(api_only_app(config, engine=engine))
    await server.start_server()
    clients = {"en": await admin_client(server, "host@example.org")}
    for code in ("ar", "zh"):
        clients[code] = await member_client(server, f"{code}@example.org", admin=clients["en"])
    host = clients["en"]
    room = (
        await (await host.post("/api/rooms", json={"kind": "review", "title": "Diabetes review"})).json()
    )["room"]
    assert (await host.put(f"/api/rooms/{room['id']}/glossary", json={"terms": ["metformin"]})).status == 200
    pages = {code: await _Page.join(client, room["id"], code) for code, client in clients.items()}
    marks = [page.mark() for page in pages.values()]
    record_id = await _start(host, room["id"])
    for code in ("ar", "zh"):
        await pages[code].consent(True)
    await _recording(list(pages.values()), marks)
    first = _said(server, pages["en"], room["id"], SAID["en"], "en", utterance="en-1")[0]
    for n, code in enumerate(("ar", "zh"), 1):
        span = (first + 2 * n, first + 2 * n + 1.5)
        _said(server, pages[code], room["id"], SAID[code], code, utterance=f"{code}-1", span=span)
    assert (await host.post(f"/api/rooms/{room['id']}/record/stop")).status == 200
    try:
        yield host, record_id
    finally:
        for page in pages.values():
            await page.leave()
        for client in clients.values():
            await client.close()
        await server.close()


async def _export(client: TestClient, record_id: str, export_format: str, language: str | None) -> str:
    query = f"format={export_format}" + (f"&language={language}" if language else "")
    response = await client.get(f"/api/records/{record_id}/export?{query}")
    assert response.status == 200, await response.text()
    assert response.charset == "utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    return await response.text()


class _Table(HTMLParser):
    """The rows of the bilingual document's table: each cell's text, language and direction."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[dict[str, str]]] = []
        self._cell: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = {"text": "", **{name: value or "" for name, value in attrs}}
            self.rows[-1].append(self._cell)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


async def _check_exports(reader: TestClient, record_id: str, language: str | None) -> list[dict[str, Any]]:
    """Every format of one export, parsed back and checked against the JSON one; its lines."""
    document = json.loads(await _export(reader, record_id, "json", language))
    lines = document["lines"]
    assert document["language"] == language and document["record"]["room_title"] == "Diabetes review"
    assert [(line["spoken_language"], line["original"], line["speaker_name"]) for line in lines] == [
        (code, SAID[code], NAMES[code]) for code in ("en", "ar", "zh")
    ]

    cues = list(webvtt.from_string(await _export(reader, record_id, "vtt", language)))
    assert len(cues) == len(lines)
    for cue, line in zip(cues, lines, strict=True):
        text, *note = [html.unescape(part) for part in cue.text.split("\n")]
        assert (html.unescape(cue.voice), text) == (line["speaker_name"], line["text"])
        assert note == ([f"[{line['note']}]"] if line["note"] else [])
        assert abs(cue.start_time.in_milliseconds() - 1000 * line["start_s"]) <= 1
        assert cue.end_time.in_milliseconds() > cue.start_time.in_milliseconds()

    subtitles = list(srt.parse(await _export(reader, record_id, "srt", language)))
    assert len(subtitles) == len(lines)
    for subtitle, line in zip(subtitles, lines, strict=True):
        first, *note = subtitle.content.split("\n")
        assert first == f"{line['speaker_name']}: {line['text']}"
        assert note == ([f"[{line['note']}]"] if line["note"] else [])
        assert abs(subtitle.start.total_seconds() - line["start_s"]) < 0.002

    text = await _export(reader, record_id, "txt", language)
    assert all(line["text"] in text for line in lines)

    if language is not None:
        table = _Table()
        table.feed(await _export(reader, record_id, "html", language))
        rows = [row for row in table.rows if row]
        assert len(rows) == len(lines)
        for (_, speaker, original, translated), line in zip(rows, lines, strict=True):
            assert speaker["text"] == line["speaker_name"]
            assert (original["text"], original["lang"]) == (line["original"], line["spoken_language"])
            assert original["dir"] == ("rtl" if line["spoken_language"] == "ar" else "ltr")
            assert translated["text"] == line["text"] + (line["note"] or "")
            assert translated["lang"] == line["language"]
    return list(lines)


async def test_exports_as_spoken_and_translated_into_arabic_chinese_and_english_parse_back(
    tmp_path: Path, models: Path
) -> None:
    engine = TranslationEngine.from_directory(models)
    async with _recorded_call(tmp_path, engine) as (reader, record_id):
        as_spoken = await _check_exports(reader, record_id, None)
        assert [line["text"] for line in as_spoken] == list(SAID.values())
        assert {line["path"] for line in as_spoken} == {"original"}
        for language in ("ar", "zh", "en"):
            lines = await _check_exports(reader, record_id, language)
            for line in lines:
                if line["spoken_language"] == language:
                    assert (line["path"], line["text"], line["note"]) == ("original", line["original"], None)
                else:  # through the installed model: meaningless words, but a real translation
                    assert (line["path"], line["model"], line["note"]) == ("machine", "nllb-tiny", None)
                    assert line["text"] != line["original"] and line["language"] == language
            english = lines[0]
            if language != "en":  # the glossary term comes through translation, as in captions
                assert "metformin" in english["text"]
    await engine.aclose()


async def test_a_language_without_a_model_is_marked_on_every_line(tmp_path: Path) -> None:
    engine = TranslationEngine([])
    async with _recorded_call(tmp_path, engine) as (reader, record_id):
        lines = await _check_exports(reader, record_id, "zh")
        assert [(line["path"], line["text"], line["language"], line["note"]) for line in lines] == [
            ("untranslated", SAID["en"], "en", "not translated: no model for en→zh"),
            ("untranslated", SAID["ar"], "ar", "not translated: no model for ar→zh"),
            ("original", SAID["zh"], "zh", None),
        ]
        assert [line["note_code"] for line in lines] == ["no_model", "no_model", None]
    await engine.aclose()
