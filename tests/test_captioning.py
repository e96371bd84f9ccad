"""The caption pipeline (server/captioning.py) between a scripted recogniser and a real translation
engine: one translation per language however many read it, partials translated at a bounded rate,
finals to everyone, glossary terms kept, stage timings and metrics recorded.

The recogniser is scripted here (its own tests use real audio); the translation model is a real
CTranslate2 model the test builds (random weights: meaningless text, real code path)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conditions import wait_until
from mt_models import build_marian_pair, build_multilingual, hold_calls, real_calls, replace_calls

from asr import Confidence, SpeechEvent, SpeechEventKind
from mt import ScoredText, TranslationEngine
from mt.plan import MT_LOG_PROB_MIN
from protocol import CaptionEvent, Glossary, TranslationPath
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.signalling import ChineseScript, ServerMessage
from server.captioning import MissingModelReporter, SpeakerPipeline
from server.chat import ChatRelay
from server.metrics import Metrics
from server.rooms import LiveRoom, Seat
from server.store import Member, MemberStatus, RoomKind, RoomRecord


async def _no_audio() -> AsyncIterator[np.ndarray]:
    return
    yield  # an async generator that ends at once: the microphone is not what these tests exercise


class _ScriptedStream:
    """Yields the given transcripts, spaced in time, as a RecognitionStream would."""

    def __init__(self, script: list[tuple[float, SpeechEvent]]) -> None:
        self.script = script
        self.english_wanted = False
        self.glossary: tuple[str, ...] = ()
        self.allowed_languages: frozenset[str] | None = None
        self.opened_with: dict[str, Any] = {}
        self.yielded_at: list[float] = []

    async def push(self, samples: Any) -> None:
        return None

    async def finish(self) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        for delay, step in self.script:
            await asyncio.sleep(delay)
            if step.kind is not SpeechEventKind.PRELIMINARY_FINAL:
                self.yielded_at.append(time.time())
            yield step


class _ScriptedRecognizer:
    def __init__(self, stream: _ScriptedStream) -> None:
        self.stream = stream

    def open_stream(self, **options: Any) -> _ScriptedStream:
        self.stream.opened_with = options
        return self.stream


def _member(name: str) -> Member:
    return Member(name, f"{name}@example.org", name, "", MemberStatus.APPROVED, False, 0.0)


def _partial(text: str, stable: int) -> SpeechEvent:
    now = time.time()
    return SpeechEvent(
        SpeechEventKind.PARTIAL,
        0,
        text,
        stable,
        "en",
        0.0,
        1.0,
        timings={"speech_end": now, "queued": now, "recognized": now},
    )


class _Inbox(list[dict[str, Any]]):
    """A participant's page: what the server sent it, as the JSON objects that went over the wire."""

    async def send(self, message: ServerMessage) -> None:
        self.append(message.to_dict())

    async def close(self, code: CloseCode, reason: str = "") -> None:
        return None


def _join(room: LiveRoom, captions: dict[str, str]) -> dict[str, _Inbox]:
    """One participant per id, speaking English and reading the given language; their inboxes."""
    inboxes: dict[str, _Inbox] = {}
    for pid, language in captions.items():
        inbox = inboxes[pid] = _Inbox()
        room.seats[pid] = Seat(pid, room, _member(pid), "en", language, ChineseScript.SIMPLIFIED, inbox)
    return inboxes


def _pipeline(
    room: LiveRoom, stream: _ScriptedStream, engine: TranslationEngine, metrics: Metrics
) -> SpeakerPipeline:
    """The pipeline of the participant "speaker", fed by a scripted recogniser."""
    return SpeakerPipeline(
        room,
        room.seats["speaker"],
        _no_audio(),
        _ScriptedRecognizer(stream),  # type: ignore[arg-type]
        engine,
        MissingModelReporter(engine),
        metrics,
    )


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> TranslationEngine:
    root = tmp_path_factory.mktemp("models")
    build_multilingual(root / "nllb-tiny")
    return TranslationEngine.from_directory(root)


async def test_fan_out_rate_control_glossary_and_timings(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    model = engine.models[0]
    original = real_calls(model)

    def counted(texts: list[str], source: str, target: str) -> list[str]:
        calls.append((source, target))
        return original(texts, source, target)

    replace_calls(monkeypatch, model, counted)

    room = LiveRoom(
        RoomRecord("room1", "Review", RoomKind.REVIEW, "host", 0.0, Glossary.from_list(["metformin"])), 12
    )
    inboxes = _join(room, {"speaker": "en", "a": "fr", "b": "fr", "c": "ja"})

    final_text = "The patient takes metformin twice a day."
    script = [
        (0.0, _partial("The patient", 0)),
        (0.05, _partial("The patient takes", 11)),  # stable part grew: due for translation
        (0.05, _partial("The patient takes met", 17)),  # grew again, but too soon after the last
        (0.05, _partial("The patient takes metformin", 17)),  # no growth
        (0.9, _partial("The patient takes metformin twice", 27)),  # grew, interval passed
        (
            0.6,  # after that partial's translation was delivered (a final drops one still running)
            SpeechEvent(
                SpeechEventKind.FINAL,
                0,
                final_text,
                len(final_text),
                "en",
                0.0,
                3.0,
                timings={"speech_end": time.time()},
            ),
        ),
    ]
    stream = _ScriptedStream(script)
    metrics = Metrics()
    pipeline = _pipeline(room, stream, engine, metrics)
    assert stream.opened_with["language"] == "en" and stream.opened_with["glossary"] == ["metformin"]
    await pipeline.finish()

    events = {pid: [CaptionEvent.from_dict(m) for m in inbox] for pid, inbox in inboxes.items()}
    # The speaker reads their own language: every partial, as spoken, and the final.
    assert [e.text for e in events["speaker"] if not e.final] == [t.text for _, t in script[:-1]]
    assert all(e.path is TranslationPath.ORIGINAL for e in events["speaker"])
    # French and Japanese readers get machine-translated partials only when the stable part grew and
    # at most every 0.8 s: two of the five.
    for pid in ("a", "b", "c"):
        partials = [e for e in events[pid] if not e.final]
        assert len(partials) == 2, pid
        assert all(e.path is TranslationPath.MACHINE and e.stable_chars == 0 for e in partials)
        (final,) = [e for e in events[pid] if e.final]
        assert final.path is TranslationPath.MACHINE and final.caption_language in {"fr", "ja"}
        # The glossary term survives translation (restored even when a model drops it).
        assert "metformin" in final.text
        assert {"speech_end", "translated"} <= final.timings.keys() and final.sent_at >= final.timings[
            "translated"
        ]
    # One model call per distinct target language per translated transcript, never per listener.
    assert sorted(calls) == sorted([("en", "fr"), ("en", "ja")] * 3)
    # Every delivered caption was counted, with its stage latencies.
    exposition = metrics.render().decode()
    assert 'babelcall_captions_total{kind="final",path="machine"} 3.0' in exposition
    assert 'babelcall_stage_latency_seconds_count{kind="final",stage="total"} 4.0' in exposition


async def test_a_final_drops_the_partial_translation_still_running(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    # A partial batch that is still running when the final arrives.
    hold_calls(monkeypatch, engine.models[0], lambda texts: texts == ["The doctor says"], release)
    room = LiveRoom(RoomRecord("room2", "Consult", RoomKind.CONSULTATION, "host", 0.0, Glossary()), 2)
    inboxes = _join(room, {"speaker": "en", "reader": "fr"})
    final_text = "The doctor says it daily."
    final = SpeechEvent(
        SpeechEventKind.FINAL,
        0,
        final_text,
        len(final_text),
        "en",
        0.0,
        2.0,
        timings={"speech_end": time.time()},
    )
    # (Texts unlike the other test's: the engine's cache would answer those at once.)
    stream = _ScriptedStream([(0.0, _partial("The doctor says", 10)), (0.2, final)])
    timer = threading.Timer(0.6, release.set)
    timer.start()
    pipeline = _pipeline(room, stream, engine, Metrics())
    await pipeline.finish()
    timer.join()
    spoken = [CaptionEvent.from_dict(m) for m in inboxes["speaker"]]
    read = [CaptionEvent.from_dict(m) for m in inboxes["reader"]]
    # The speaker saw the partial at once; the French reader gets the final and never the stale
    # translated partial, which would otherwise have arrived after the final.
    assert [(e.final, e.path) for e in spoken] == [
        (False, TranslationPath.ORIGINAL),
        (True, TranslationPath.ORIGINAL),
    ]
    assert [(e.final, e.path) for e in read] == [(True, TranslationPath.MACHINE)]


async def test_readers_of_the_spoken_language_get_the_final_before_it_is_translated(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    final_text = "Her fever came back this morning."
    hold_calls(monkeypatch, engine.models[0], lambda texts: texts == [final_text], release)  # still running
    room = LiveRoom(RoomRecord("room3", "Consult", RoomKind.CONSULTATION, "host", 0.0, Glossary()), 2)
    inboxes = _join(room, {"speaker": "en", "reader": "fr"})
    final = SpeechEvent(
        SpeechEventKind.FINAL,
        0,
        final_text,
        len(final_text),
        "en",
        0.0,
        2.0,
        timings={"speech_end": time.time()},
    )
    pipeline = _pipeline(room, _ScriptedStream([(0.0, final)]), engine, Metrics())
    await wait_until(lambda: inboxes["speaker"], what="the speaker's own final")
    assert [CaptionEvent.from_dict(m).path for m in inboxes["speaker"]] == [TranslationPath.ORIGINAL]
    assert inboxes["reader"] == []  # its translation is still held
    release.set()
    await pipeline.finish()
    (read,) = [CaptionEvent.from_dict(m) for m in inboxes["reader"]]
    assert read.final and read.path is TranslationPath.MACHINE


async def test_each_languages_readers_get_the_final_when_theirs_is_translated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_marian_pair(tmp_path / "opus-mt-en-fr", "en", "fr")
    build_marian_pair(tmp_path / "opus-mt-en-es", "en", "es", seed=2)
    pairs = TranslationEngine.from_directory(tmp_path)  # on CPU: one call per core, side by side
    french = next(m for m in pairs.models if m.name == "opus-mt-en-fr")
    release = threading.Event()
    hold_calls(monkeypatch, french, lambda texts: True, release)
    room = _review()
    inboxes = _join(room, {"speaker": "en", "french": "fr", "spanish": "es"})
    pipeline = _pipeline(room, _ScriptedStream([(0.0, _final("Take it with food."))]), pairs, Metrics())
    try:
        await wait_until(lambda: inboxes["spanish"], what="the Spanish reader's final")
        (spanish,) = [CaptionEvent.from_dict(m) for m in inboxes["spanish"]]
        assert spanish.final and spanish.path is TranslationPath.MACHINE
        assert inboxes["french"] == []  # the French model is still at work
    finally:
        release.set()
    await pipeline.finish()
    (french_final,) = [CaptionEvent.from_dict(m) for m in inboxes["french"]]
    assert french_final.final and french_final.path is TranslationPath.MACHINE
    assert french_final.timings["translated"] > spanish.timings["translated"]
    await pairs.aclose()


def _review() -> LiveRoom:
    return LiveRoom(RoomRecord("room1", "Review", RoomKind.REVIEW, "host", 0.0, Glossary()), 12)


def _final(text: str, kind: SpeechEventKind = SpeechEventKind.FINAL) -> SpeechEvent:
    return SpeechEvent(kind, 0, text, len(text), "en", 0.0, 3.0, timings={"speech_end": time.time()})


def _preliminary(text: str) -> SpeechEvent:
    return _final(text, SpeechEventKind.PRELIMINARY_FINAL)


async def test_a_finals_translation_starts_during_its_closing_silence(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recogniser knows the likely final while it still waits out silence_ms: translating it then
    takes translation off the path from the end of speech to the caption."""
    model = engine.models[0]
    original = real_calls(model)
    calls: list[tuple[list[str], float]] = []

    def timed(texts: list[str], source: str, target: str) -> list[str]:
        calls.append((texts, time.time()))
        return original(texts, source, target)

    replace_calls(monkeypatch, model, timed)
    room = _review()
    inboxes = _join(room, {"speaker": "en", "reader": "fr"})
    text = "The patient is stable."
    stream = _ScriptedStream([(0.0, _preliminary(text)), (0.3, _final(text))])
    metrics = Metrics()
    await _pipeline(room, stream, engine, metrics).finish()

    (final,) = [CaptionEvent.from_dict(m) for m in inboxes["reader"]]
    assert final.final and final.path is TranslationPath.MACHINE
    assert [texts for texts, _ in calls] == [[text]]  # translated once, for the tentative final
    assert calls[0][1] < stream.yielded_at[0]  # ... before the final itself was known
    assert 'babelcall_early_translations_total{outcome="used"} 1.0' in metrics.render().decode()


async def test_an_early_translation_is_not_used_when_speech_went_on(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = engine.models[0]
    release = threading.Event()
    calls = hold_calls(monkeypatch, model, lambda texts: texts == ["The patient is"], release)
    room = _review()
    inboxes = _join(room, {"speaker": "en", "reader": "fr"})
    # The speaker paused after "The patient is", then went on: the final has other words.
    stream = _ScriptedStream(
        [(0.0, _preliminary("The patient is")), (0.3, _final("The patient is stable today."))]
    )
    metrics = Metrics()
    pipeline = _pipeline(room, stream, engine, metrics)
    await wait_until(lambda: stream.yielded_at, what="the final, while the early translation is held")
    release.set()
    await pipeline.finish()

    (final,) = [CaptionEvent.from_dict(m) for m in inboxes["reader"]]
    assert final.final and final.path is TranslationPath.MACHINE
    assert ["The patient is stable today."] in calls  # the final's own words were translated
    exposition = metrics.render().decode()
    assert 'babelcall_early_translations_total{outcome="wasted"} 1.0' in exposition
    assert 'outcome="used"' not in exposition


async def test_no_early_translation_while_the_engine_is_busy(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Early translation uses idle capacity only: work queued for others comes first."""
    model = engine.models[0]
    release = threading.Event()
    calls = hold_calls(monkeypatch, model, lambda texts: texts == ["Someone else's sentence."], release)
    busy = asyncio.create_task(engine.translate("Someone else's sentence.", "en", {"fr"}))
    await wait_until(lambda: engine.pending, what="the other speaker's translation queued")
    room = _review()
    inboxes = _join(room, {"speaker": "en", "reader": "fr"})
    text = "The patient is resting now."  # not in the shared engine's cache from other tests
    stream = _ScriptedStream([(0.0, _preliminary(text)), (0.3, _final(text))])
    metrics = Metrics()
    pipeline = _pipeline(room, stream, engine, metrics)
    await wait_until(lambda: stream.yielded_at, what="the final, while the engine is busy")
    release.set()
    await pipeline.finish()
    await busy

    (final,) = [CaptionEvent.from_dict(m) for m in inboxes["reader"]]
    assert final.final and final.path is TranslationPath.MACHINE
    assert calls.count([text]) == 1  # translated once, for the final itself
    assert "babelcall_early_translations_total{" not in metrics.render().decode()


async def test_no_early_translation_where_no_model_would_run() -> None:
    """Without a model for the pair the final's caption is the original text, marked: nothing to start."""
    no_models = TranslationEngine([])
    room = _review()
    inboxes = _join(room, {"speaker": "en", "reader": "fr"})
    text = "The wound is healing well."
    metrics = Metrics()
    stream = _ScriptedStream([(0.0, _preliminary(text)), (0.1, _final(text))])
    await _pipeline(room, stream, no_models, metrics).finish()

    (final,) = [CaptionEvent.from_dict(m) for m in inboxes["reader"]]
    assert final.final and final.path is TranslationPath.UNTRANSLATED and final.text == text
    assert "babelcall_early_translations_total{" not in metrics.render().decode()
    await no_models.aclose()


def _final_in(language: str, text: str, seq: int = 0) -> SpeechEvent:
    return SpeechEvent(
        SpeechEventKind.FINAL, seq, text, len(text), language, 0.0, 2.0, timings={"speech_end": time.time()}
    )


async def test_a_glossary_term_with_a_turkish_i_costs_no_reader_their_final(
    engine: TranslationEngine,
) -> None:
    """The glossary says "KIRIK"; recognition writes "kırık". Matching once disagreed with the term
    lookup about Turkish I, and every reader of another language lost the final."""
    room = LiveRoom(
        RoomRecord("room-tr", "Review", RoomKind.REVIEW, "host", 0.0, Glossary.from_list(["KIRIK", "İlaç"])),
        12,
    )
    inboxes = _join(room, {"speaker": "tr", "french": "fr", "japanese": "ja"})
    room.seats["speaker"].speaks = "tr"
    said = "Kolunda kırık var, ilaç verdik."
    pipeline = _pipeline(room, _ScriptedStream([(0.0, _final_in("tr", said))]), engine, Metrics())
    await pipeline.finish()
    (spoken,) = [CaptionEvent.from_dict(m) for m in inboxes["speaker"]]
    assert spoken.text == said and spoken.path is TranslationPath.ORIGINAL
    for reader in ("french", "japanese"):
        (final,) = [CaptionEvent.from_dict(m) for m in inboxes[reader]]
        assert final.final and final.path is TranslationPath.MACHINE, reader
        # Protected through translation, and written as the glossary writes them.
        assert "KIRIK" in final.text and "İlaç" in final.text, final.text


async def test_one_languages_failed_translation_costs_the_others_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    build_marian_pair(tmp_path / "opus-mt-en-fr", "en", "fr")
    build_marian_pair(tmp_path / "opus-mt-en-ja", "en", "ja", seed=2)
    engine = TranslationEngine.from_directory(tmp_path)
    japanese = next(m for m in engine.models if m.pair == ("en", "ja"))

    def broken(texts: list[str], source: str, target: str) -> list[str]:
        raise RuntimeError(f"cannot translate {texts!r}")  # as a library error quoting its input would

    replace_calls(monkeypatch, japanese, broken)
    room = _review()
    inboxes = _join(room, {"speaker": "en", "french": "fr", "japanese": "ja"})
    said = "Her haemoglobin is seven point two."
    caplog.set_level(logging.DEBUG)
    pipeline = _pipeline(room, _ScriptedStream([(0.0, _final_in("en", said))]), engine, Metrics())
    await pipeline.finish()
    await engine.aclose()

    (french,) = [CaptionEvent.from_dict(m) for m in inboxes["french"]]
    assert french.path is TranslationPath.MACHINE and french.caption_language == "fr"
    (japanese_final,) = [CaptionEvent.from_dict(m) for m in inboxes["japanese"]]
    assert japanese_final.final and japanese_final.path is TranslationPath.UNTRANSLATED
    assert japanese_final.text == said and japanese_final.note is not None
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "failed" in logged  # the operator hears of it...
    assert "haemoglobin" not in logged  # ...without the words


def _settled(text: str, replaces: tuple[int, ...], english: str | None = None) -> SpeechEvent:
    return SpeechEvent(
        SpeechEventKind.SETTLED,
        replaces[0],
        text,
        len(text),
        "en",
        0.0,
        4.0,
        english=english,
        confidence=Confidence(-0.2, 0.01, 1.3),
        replaces=replaces,
        timings={"speech_end": time.time()},
    )


def _kinds(inbox: list[dict[str, Any]]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    events = [CaptionEvent.from_dict(m) for m in inbox]
    return [(e.kind.value, e.utterance_id, e.text, e.replaces) for e in events]


async def test_a_settled_caption_replaces_the_finals_it_names_after_them(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two finals heard as one sentence: the settled caption replaces both, for every reader whose
    text changes, and never reaches a reader before the finals it replaces."""
    room = _review()
    inboxes = _join(room, {"speaker": "en", "french": "fr"})
    script = [
        (0.0, _final_in("en", "She has a fiel", seq=0)),
        (0.05, _final_in("en", "and volor in the chest.", seq=1)),
        (0.05, _settled("She has a fever and pain in the chest.", (0, 1))),
    ]
    await _pipeline(room, _ScriptedStream(script), engine, Metrics()).finish()
    assert _kinds(inboxes["speaker"]) == [
        ("final", "speaker-0", "She has a fiel", ()),
        ("final", "speaker-1", "and volor in the chest.", ()),
        ("settled", "speaker-0", "She has a fever and pain in the chest.", ("speaker-0", "speaker-1")),
    ]
    french = [CaptionEvent.from_dict(m) for m in inboxes["french"]]
    assert [(e.kind.value, e.utterance_id) for e in french] == [
        ("final", "speaker-0"),
        ("final", "speaker-1"),
        ("settled", "speaker-0"),
    ]
    settled = french[-1]
    assert settled.replaces == ("speaker-0", "speaker-1") and settled.path is TranslationPath.MACHINE
    assert settled.confidence is not None and not settled.uncertain


async def test_settling_translates_and_sends_again_only_where_the_text_changes(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[list[str], str]] = []

    def constant(texts: list[str], source: str, target: str) -> list[str]:
        # A model that says the same whatever it reads: the settled French equals the final's.
        calls.append((list(texts), target))
        return ["Le patient va bien." for _ in texts]

    replace_calls(monkeypatch, engine.models[0], constant)
    room = _review()
    inboxes = _join(room, {"speaker": "en", "french": "fr"})
    script = [
        (0.0, _final_in("en", "Her pulse is steady at rest.", seq=0)),
        (0.05, _settled("Her pulse is steady at rest.", (0,))),  # the second pass agrees: nothing to send
        (0.05, _final_in("en", "Pressure one twenty.", seq=1)),
        (0.05, _settled("Pressure is one twenty.", (1,))),  # new words; the same French
    ]
    await _pipeline(room, _ScriptedStream(script), engine, Metrics()).finish()
    assert [kind for kind, *_ in _kinds(inboxes["speaker"])] == ["final", "final", "settled"]
    assert _kinds(inboxes["speaker"])[-1] == (
        "settled",
        "speaker-1",
        "Pressure is one twenty.",
        ("speaker-1",),
    )
    assert [kind for kind, *_ in _kinds(inboxes["french"])] == ["final", "final"]
    # Translated again only for the settled caption whose words changed.
    assert [texts for texts, _ in calls] == [
        ["Her pulse is steady at rest."],
        ["Pressure one twenty."],
        ["Pressure is one twenty."],
    ]


async def test_a_settled_translation_still_running_holds_no_final_back(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second pass's translation is work for later: while one is held, the next final still reaches
    its readers at once (on CPU its translation waits at most for that one model call to end: a
    running CTranslate2 call cannot be interrupted), and queued finals go before queued settled work."""
    release = threading.Event()
    hold_calls(monkeypatch, engine.models[0], lambda texts: "Her fever settled." in texts, release)
    room = _review()
    inboxes = _join(room, {"speaker": "en", "french": "fr"})
    script = [
        (0.0, _final_in("en", "Her fever setled.", seq=0)),
        (0.05, _settled("Her fever settled.", (0,))),
        (0.2, _final_in("en", "She went home.", seq=1)),
    ]
    arrived = asyncio.Event()
    speaker_inbox = inboxes["speaker"]
    original_send = speaker_inbox.send

    async def noticing(message: ServerMessage) -> None:
        await original_send(message)
        if isinstance(message, CaptionEvent) and message.utterance_id == "speaker-1":
            arrived.set()

    speaker_inbox.send = noticing  # type: ignore[method-assign]
    pipeline = _pipeline(room, _ScriptedStream(script), engine, Metrics())
    await asyncio.wait_for(arrived.wait(), 10)
    assert not release.is_set()  # the settled translation is still held
    assert not any(kind == "settled" for kind, *_ in _kinds(inboxes["french"]))
    release.set()
    await pipeline.finish()
    french = _kinds(inboxes["french"])
    assert sorted(kind for kind, *_ in french) == ["final", "final", "settled"]
    assert [kind for kind, utterance, *_ in french if utterance == "speaker-0"] == ["final", "settled"]


async def test_a_reader_of_traditional_chinese_gets_traditional_characters(engine: TranslationEngine) -> None:
    room = _review()
    inboxes = _join(room, {"speaker": "zh", "simplified": "zh", "traditional": "zh"})
    for seat in room.seats.values():
        seat.speaks = "zh"
    room.seats["traditional"].chinese_script = ChineseScript.TRADITIONAL
    said = "头发和血压都正常"
    await _pipeline(room, _ScriptedStream([(0.0, _final_in("zh", said))]), engine, Metrics()).finish()
    (simplified,) = [CaptionEvent.from_dict(m) for m in inboxes["simplified"]]
    (traditional,) = [CaptionEvent.from_dict(m) for m in inboxes["traditional"]]
    assert simplified.text == said
    assert traditional.text == "頭髮和血壓都正常"


async def test_captions_carry_the_decoders_confidence_and_mark_the_uncertain(
    engine: TranslationEngine,
) -> None:
    """Unintelligible speech read as fluent text scores low: the caption says so, in every language
    (Whisper's English carries its own score)."""
    room = _review()
    inboxes = _join(room, {"speaker": "en", "french": "fr"})
    unsure = SpeechEvent(
        SpeechEventKind.FINAL,
        0,
        "I am the king of the world.",
        27,
        "en",
        0.0,
        2.0,
        confidence=Confidence(-1.45, 0.2, 1.1),
        timings={"speech_end": time.time()},
    )
    sure = replace(unsure, utterance_seq=1, text="Take two tablets.", confidence=Confidence(-0.15, 0.01, 1.2))
    await _pipeline(room, _ScriptedStream([(0.0, unsure), (0.0, sure)]), engine, Metrics()).finish()
    first, second = (CaptionEvent.from_dict(m) for m in inboxes["speaker"])
    assert first.uncertain and first.confidence == pytest.approx(0.235, abs=0.001)
    assert not second.uncertain and second.confidence == pytest.approx(0.861, abs=0.001)
    # The French is as sure as recognition and translation both.
    translated = await engine.translate(sure.text, "en", ["fr"])
    logprob = translated["fr"].logprob
    assert logprob is not None and logprob < 0
    _, french = (CaptionEvent.from_dict(m) for m in inboxes["french"])
    assert french.confidence == pytest.approx(math.exp(-0.15 + logprob), abs=0.001)
    assert french.uncertain is (logprob < MT_LOG_PROB_MIN)


async def test_a_translation_its_model_doubts_is_marked_uncertain(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clear speech, and one translation the model scores low: only that caption is marked."""

    def scored(rows: list[tuple[str, str]], source: str) -> list[ScoredText]:
        return [
            ScoredText("Prenez deux comprimés.", -0.2) if "tablets" in text else ScoredText("Le roi.", -1.6)
            for text, _ in rows
        ]

    monkeypatch.setattr(engine.models[0], "translate_rows", scored)
    room = _review()
    inboxes = _join(room, {"speaker": "en", "french": "fr"})
    clear = Confidence(-0.15, 0.01, 1.2)
    # Texts no other test translates: the engine caches translations.
    tablets = replace(_final_in("en", "Two tablets after meals.", seq=0), confidence=clear)
    garbled = replace(_final_in("en", "Rest at night, please.", seq=1), confidence=clear)
    await _pipeline(room, _ScriptedStream([(0.0, tablets), (0.0, garbled)]), engine, Metrics()).finish()
    assert not any(CaptionEvent.from_dict(m).uncertain for m in inboxes["speaker"])
    sure, doubted = (CaptionEvent.from_dict(m) for m in inboxes["french"])
    assert not sure.uncertain and sure.confidence == pytest.approx(math.exp(-0.35), abs=0.001)
    assert doubted.uncertain and doubted.confidence == pytest.approx(math.exp(-1.75), abs=0.001)


async def test_a_pivot_from_whisper_english_is_as_sure_as_whisper_english(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vietnamese read in French through Whisper's English (no vi→en model): the French was made from
    the English, so Whisper's doubt about its English marks the French, however sure the transcription
    was."""
    build_marian_pair(tmp_path / "opus-mt-en-fr", "en", "fr")
    engine = TranslationEngine.from_directory(tmp_path)
    model = engine.models[0]
    monkeypatch.setattr(
        model,
        "translate_rows",
        lambda rows, source: [ScoredText("Prenez deux comprimés.", -0.2) for _ in rows],
    )
    room = _review()
    inboxes = _join(room, {"speaker": "vi", "french": "fr"})
    said = replace(
        _final_in("vi", "Uống hai viên.", seq=0),
        confidence=Confidence(-0.1, 0.01, 1.2),
        english="Take two tablets.",
        english_confidence=Confidence(-1.5, 0.01, 1.2),
    )
    await _pipeline(room, _ScriptedStream([(0.0, said)]), engine, Metrics()).finish()
    await engine.aclose()
    (spoken,) = (CaptionEvent.from_dict(m) for m in inboxes["speaker"])
    assert not spoken.uncertain and spoken.confidence == pytest.approx(math.exp(-0.1), abs=0.001)
    (french,) = (CaptionEvent.from_dict(m) for m in inboxes["french"])
    assert french.path is TranslationPath.PIVOT and french.model == "whisper+opus-mt-en-fr", french
    assert french.uncertain and french.confidence == pytest.approx(math.exp(-1.7), abs=0.001)


async def test_a_fourth_chat_message_while_three_are_translated_is_refused_as_busy(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    hold_calls(monkeypatch, engine.models[0], lambda texts: True, release)
    room = _review()
    inboxes = _join(room, {"writer": "en", "french": "fr"})
    relay = ChatRelay(engine)
    writer = room.seats["writer"]
    for number in ("one", "two", "three"):
        await relay.send(writer, f"Chat message {number}.")
    with pytest.raises(ProtocolError) as refused:
        await relay.send(writer, "Chat message four.")
    # Its own code, so a page can tell it from a malformed message and offer to send it again.
    assert refused.value.code is ErrorCode.CHAT_BUSY
    release.set()

    async def sent_again() -> None:
        while True:
            try:
                return await relay.send(writer, "Chat message four.")
            except ProtocolError:
                await asyncio.sleep(0.01)

    # Taken once the earlier ones are out; nothing was lost meanwhile.
    await asyncio.wait_for(sent_again(), 10)
    await relay.aclose()
    assert len(inboxes["french"]) >= 3
