"""The cross-stream decode scheduler: batching, fairness, superseded partials, back-pressure.

The first tests drive the scheduler with a scripted decoder (fast, deterministic); the rest run the
real Whisper base model on real clips.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import audio_fixtures
import numpy as np
import pytest
from audio_fixtures import collect_transcripts
from faster_whisper import decode_audio
from faster_whisper.feature_extractor import FeatureExtractor

from asr import RecognitionStream, RecognizerConfig, SpeechEvent, SpeechEventKind, SpeechRecognizer
from asr.context import SpeakerContext
from asr.decoder import Decoded, DecodeTask, WindowTask
from asr.scheduler import DecodeResult, DecodeScheduler
from asr.vad import StreamingVad

SAMPLE_RATE = 16_000
CHUNK = SAMPLE_RATE // 50


class ScriptedDecoder:
    """Records each batch; the first batch blocks until released, so requests can pile up behind it."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()

    def __call__(self, tasks: Sequence[DecodeTask]) -> list[Decoded]:
        if not self.batches:
            self.release.wait(5)
        self.batches.append([t.glossary[0] for t in tasks])
        return [Decoded(text=t.glossary[0], language="en", english=None) for t in tasks]


def task(name: str, *, final: bool = True) -> DecodeTask:
    # The glossary slot carries a label, so the scripted decoder can tell requests apart.
    return DecodeTask(np.zeros(10, dtype=np.float32), final, "en", None, False, (name,))


@pytest.fixture
def scripted() -> Iterator[tuple[DecodeScheduler, ScriptedDecoder]]:
    decoder = ScriptedDecoder()
    scheduler = DecodeScheduler(decoder, max_batch=2, window_s=0.0)
    yield scheduler, decoder
    decoder.release.set()
    scheduler.close()


def test_batches_take_one_request_per_stream_oldest_first(
    scripted: tuple[DecodeScheduler, ScriptedDecoder],
) -> None:
    scheduler, decoder = scripted
    a, b, c = (scheduler.open_stream() for _ in range(3))
    blocker = scheduler.submit(a, task("a0"))
    while scheduler.stats().batches == 0:  # the blocker is being decoded
        threading.Event().wait(0.001)
    futures = [
        scheduler.submit(a, task("a1")),
        scheduler.submit(a, task("a2")),
        scheduler.submit(b, task("b1")),
        scheduler.submit(c, task("c1")),
    ]
    decoder.release.set()
    assert [f.result(5).decoded.text for f in [blocker, *futures]] == ["a0", "a1", "a2", "b1", "c1"]
    # b and c waited behind a0 too; a's second request does not jump ahead of them.
    assert decoder.batches == [["a0"], ["a1", "b1"], ["c1", "a2"]]
    stats = scheduler.stats()
    assert stats.max_batch_size == 2 and stats.batches == 3 and stats.requests == 5
    # With 3 streams and batches of 2, no stream's next request waits more than ceil(3 / 2) batches.
    assert stats.max_wait_batches <= math.ceil(3 / 2)


def stream_behind_a_blocker(scheduler: DecodeScheduler) -> tuple[int, Future[DecodeResult | None]]:
    """A stream whose first request is being decoded (and blocks), so the next ones queue up."""
    stream = scheduler.open_stream()
    blocker = scheduler.submit(stream, task("blocker"))
    while scheduler.stats().batches == 0:
        threading.Event().wait(0.001)
    return stream, blocker


def test_tentative_finals_are_superseded_unless_confirmed(
    scripted: tuple[DecodeScheduler, ScriptedDecoder],
) -> None:
    scheduler, decoder = scripted
    a, blocker = stream_behind_a_blocker(scheduler)
    spoken_on = scheduler.submit(a, task("t1"), tentative=True)
    partial = scheduler.submit(a, task("p1", final=False))  # speech resumed: t1 is stale
    confirmed = scheduler.submit(a, task("t2"), tentative=True)
    scheduler.confirm(a, confirmed)  # the silence lasted: t2 is the final
    later = scheduler.submit(a, task("p2", final=False))
    decoder.release.set()
    assert blocker.result(5) is not None
    assert spoken_on.result(5) is None and partial.result(5) is None
    assert confirmed.result(5).decoded.text == "t2" and later.result(5).decoded.text == "p2"


def test_newer_requests_supersede_queued_partials_never_finals(
    scripted: tuple[DecodeScheduler, ScriptedDecoder],
) -> None:
    scheduler, decoder = scripted
    a, blocker = stream_behind_a_blocker(scheduler)
    p1 = scheduler.submit(a, task("p1", final=False))
    f1 = scheduler.submit(a, task("f1"))
    p2 = scheduler.submit(a, task("p2", final=False))
    p3 = scheduler.submit(a, task("p3", final=False))
    f2 = scheduler.submit(a, task("f2"))
    decoder.release.set()
    assert blocker.result(5) is not None
    assert p1.result(5) is None and p2.result(5) is None and p3.result(5) is None
    assert [f.result(5).decoded.text for f in (f1, f2)] == ["f1", "f2"]
    assert scheduler.stats().skipped_partials == 3


def window(name: str) -> WindowTask:
    return WindowTask(np.zeros(10, dtype=np.float32), "en", False, glossary=(name,))


@pytest.fixture
def one_at_a_time() -> Iterator[tuple[DecodeScheduler, ScriptedDecoder]]:
    """A CPU's scheduler: one request per batch."""
    decoder = ScriptedDecoder()
    scheduler = DecodeScheduler(decoder, max_batch=1, window_s=0.0)
    yield scheduler, decoder
    decoder.release.set()
    scheduler.close()


def test_the_second_pass_never_runs_while_first_pass_work_waits(
    one_at_a_time: tuple[DecodeScheduler, ScriptedDecoder],
) -> None:
    scheduler, decoder = one_at_a_time
    a, _blocker = stream_behind_a_blocker(scheduler)
    b = scheduler.open_stream()
    settle = scheduler.submit_second_pass(a, window("w1"))  # queued first, served last
    first_pass = [
        scheduler.submit(b, task("b-final")),
        scheduler.submit(a, task("a-partial", final=False)),
        scheduler.submit(b, task("b-partial", final=False)),
    ]
    decoder.release.set()
    assert settle.result(5) is not None and all(f.result(5) is not None for f in first_pass)
    assert decoder.batches == [["blocker"], ["b-final"], ["a-partial"], ["b-partial"], ["w1"]]
    assert scheduler.stats().second_pass_requests == 1


def test_a_second_pass_lane_decodes_windows_at_idle_priority_and_never_holds_up_the_first_pass() -> None:
    # A CPU: one request per batch, and windows in a lane of their own.
    first_pass = ScriptedDecoder()
    first_pass.release.set()
    window_decoder = ScriptedDecoder()  # blocks its first window until released
    lane_policy: list[int] = []

    def build_lane() -> ScriptedDecoder:
        if sys.platform == "linux":
            lane_policy.append(os.sched_getscheduler(threading.get_native_id()))
        return window_decoder

    scheduler = DecodeScheduler(first_pass, max_batch=1, window_s=0.0, second_pass_lane=build_lane)
    try:
        a = scheduler.open_stream()
        settle = scheduler.submit_second_pass(a, window("w1"))
        while scheduler.stats().second_pass_requests == 0:
            threading.Event().wait(0.001)
        # The window is being decoded (and blocks): a final that ends now is decoded at once.
        final = scheduler.submit(a, task("f1"))
        assert final.result(5) is not None
        assert not settle.done()
        window_decoder.release.set()
        assert settle.result(5) is not None
        assert first_pass.batches == [["f1"]] and window_decoder.batches == [["w1"]]
        stats = scheduler.stats()
        assert (stats.second_pass_requests, stats.held_by_second_pass) == (1, 0)
        if sys.platform == "linux":
            assert lane_policy == [os.SCHED_IDLE]
            assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER  # this thread's own
    finally:
        window_decoder.release.set()
        scheduler.close()


def test_a_failed_decode_is_logged_by_its_type_and_place_never_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    said = "haemoptysis since Tuesday"  # a decoder's error may quote what it was decoding

    def failing(tasks: Sequence[DecodeTask]) -> list[Decoded]:
        raise RuntimeError(f"cannot decode {said!r}")

    scheduler = DecodeScheduler(failing, max_batch=1, window_s=0.0)
    try:
        with caplog.at_level(logging.INFO):
            future = scheduler.submit(scheduler.open_stream(), task("f1"))
            with pytest.raises(RuntimeError):
                future.result(5)
    finally:
        scheduler.close()
    [record] = [r for r in caplog.records if r.name == "asr.scheduler"]
    assert "RuntimeError in" in record.getMessage()
    assert said not in record.getMessage() and record.exc_info is None and record.exc_text is None


def test_closing_decodes_the_windows_still_queued_in_the_lane() -> None:
    decoder = ScriptedDecoder()
    decoder.release.set()
    scheduler = DecodeScheduler(decoder, max_batch=1, window_s=0.0, second_pass_lane=lambda: decoder)
    stream = scheduler.open_stream()
    settles = [scheduler.submit_second_pass(stream, window(f"w{i}")) for i in range(3)]
    scheduler.close_stream(stream)
    scheduler.close()
    assert [f.result(0) is not None for f in settles] == [True, True, True]
    assert decoder.batches == [["w0"], ["w1"], ["w2"]]


def test_first_pass_work_that_arrives_during_a_window_is_counted_as_held_by_it(
    one_at_a_time: tuple[DecodeScheduler, ScriptedDecoder],
) -> None:
    scheduler, decoder = one_at_a_time
    a = scheduler.open_stream()
    settle = scheduler.submit_second_pass(a, window("w1"))  # decoded at once, and blocks
    while scheduler.stats().batches == 0:
        threading.Event().wait(0.001)
    final = scheduler.submit(a, task("f1"))  # a call cannot be interrupted: this waits for w1
    decoder.release.set()
    assert settle.result(5) is not None and final.result(5) is not None
    stats = scheduler.stats()
    assert (stats.second_pass_requests, stats.held_by_second_pass, stats.finals_held_by_second_pass) == (
        1,
        1,
        1,
    )


def test_with_room_in_a_batch_the_second_pass_joins_first_pass_work(
    scripted: tuple[DecodeScheduler, ScriptedDecoder],
) -> None:
    scheduler, decoder = scripted  # batches of 2, as on a GPU
    a, _blocker = stream_behind_a_blocker(scheduler)
    b = scheduler.open_stream()
    settle = scheduler.submit_second_pass(a, window("w1"))
    final = scheduler.submit(b, task("b-final"))
    decoder.release.set()
    assert settle.result(5) is not None and final.result(5) is not None
    assert decoder.batches == [["blocker"], ["b-final", "w1"]]


# ---- the real model ----


@pytest.fixture(scope="module")
def clips(speech_dir: Path) -> dict[str, np.ndarray]:
    jfk = decode_audio(str(speech_dir / "en_jfk.flac"), sampling_rate=SAMPLE_RATE)
    return {
        "jfk": jfk,
        "jfk_start": jfk[: 4 * SAMPLE_RATE],
        "jfk_7s": jfk[: 7 * SAMPLE_RATE],
        "english": decode_audio(str(speech_dir / "en_uberi_english.wav"), sampling_rate=SAMPLE_RATE),
        "french": decode_audio(str(speech_dir / "fr_uberi_french.aiff"), sampling_rate=SAMPLE_RATE),
    }


@pytest.fixture(scope="module")
def recognizer(whisper_model_path: Path) -> Iterator[SpeechRecognizer]:
    # Full windows for finals: then a row batched with others says exactly what it says alone (a short
    # window is padded to the batch's longest row, which can change a trailing full stop).
    config = RecognizerConfig(max_batch=4, batch_window_ms=30.0, short_final_windows=False)
    recognizer = SpeechRecognizer(whisper_model_path, config)
    recognizer.warm_up()
    yield recognizer
    asyncio.run(recognizer.aclose())


@pytest.mark.slow
def test_batched_decoding_gives_the_same_text(
    recognizer: SpeechRecognizer, clips: dict[str, np.ndarray]
) -> None:
    decoder = recognizer._decoder
    names = ["jfk_start", "english", "french"]
    tasks = [DecodeTask(clips[n], True, None, None, n == "french") for n in names]
    batched = decoder.decode_batch(tasks)
    alone = [decoder.decode_batch([t])[0] for t in tasks]
    assert [d.text for d in batched] == [d.text for d in alone]
    assert [d.language for d in batched] == ["en", "en", "fr"]
    assert batched[2].english == alone[2].english and batched[2].english


@pytest.mark.slow
def test_rows_with_different_contexts_share_a_batch(
    recognizer: SpeechRecognizer, clips: dict[str, np.ndarray]
) -> None:
    # Each stream's left context gives its row a different decoder prefix; they still batch, and
    # each row says what it says alone.
    decoder = recognizer._decoder
    jfk, split = clips["jfk"], 4 * SAMPLE_RATE

    def tasks() -> list[DecodeTask]:
        context = SpeakerContext(20 * SAMPLE_RATE)
        context.remember(0, jfk[:split], "And so my fellow Americans,", "en", None)
        return [
            DecodeTask(jfk[split:], True, "en", None, False, context=context, utterance_seq=1),
            DecodeTask(clips["english"], True, "en", None, False, context=SpeakerContext(20 * SAMPLE_RATE)),
        ]

    batched = decoder.decode_batch(tasks())
    alone = [decoder.decode_batch([t])[0] for t in tasks()]
    assert [d.text for d in batched] == [d.text for d in alone]
    assert "ask not what your country" in batched[0].text.lower()
    assert "americans" not in batched[0].text.lower()


@pytest.mark.slow
def test_a_context_whose_text_was_misheard_does_not_spoil_the_final(
    recognizer: SpeechRecognizer, clips: dict[str, np.ndarray]
) -> None:
    jfk, split = clips["jfk"], 4 * SAMPLE_RATE
    context = SpeakerContext(20 * SAMPLE_RATE)
    context.remember(0, jfk[:split], "Some earlier words that were never said. " * 4, "en", None)
    task = DecodeTask(jfk[split:], True, "en", None, False, context=context, utterance_seq=1)
    [decoded] = recognizer._decoder.decode_batch([task])
    # The guards cannot always tell a wrong context (here it passed them and cost the word "ask"), but
    # its text is never repeated, and the decode neither loops nor comes back empty.
    assert "what your country can do for you" in decoded.text.lower()
    assert "earlier words" not in decoded.text.lower()


@pytest.mark.slow
async def test_prep_threads_take_vad_and_features_off_the_scheduler_thread(
    whisper_model_path: Path,
    recognizer: SpeechRecognizer,
    clips: dict[str, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alone = [
        t.text for t in await stream_clip(recognizer, clips["jfk_7s"]) if t.kind is SpeechEventKind.FINAL
    ]
    threads: dict[str, set[str]] = {"vad": set(), "features": set()}
    vad_process, extract = StreamingVad.process, FeatureExtractor.__call__

    def recorded(kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            threads[kind].add(threading.current_thread().name)
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(StreamingVad, "process", recorded("vad", vad_process))
    monkeypatch.setattr(FeatureExtractor, "__call__", recorded("features", extract))
    pooled = SpeechRecognizer(whisper_model_path, replace(recognizer.config, prep_threads=2))
    try:
        results = await asyncio.gather(*(stream_clip(pooled, clips["jfk_7s"]) for _ in range(3)))
    finally:
        await pooled.aclose()
    for transcripts in results:
        assert [t.text for t in transcripts if t.kind is SpeechEventKind.FINAL] == alone
    assert threads["vad"] and all(name.startswith("asr-prep") for name in threads["vad"])
    # Batches of several rows extract their features in the pool; a lone row stays on the scheduler.
    assert any(name.startswith("asr-prep") for name in threads["features"])


async def stream_clip(
    recognizer: SpeechRecognizer, audio: np.ndarray, blocked: list[int] | None = None
) -> list[SpeechEvent]:
    stream = recognizer.open_stream(language="en")
    transcripts, collector = collect_transcripts(stream)
    for i in range(0, len(audio), CHUNK):
        push = asyncio.ensure_future(stream.push(audio[i : i + CHUNK]))
        done, _ = await asyncio.wait({push}, timeout=0.02)
        if not done and blocked is not None:
            blocked.append(i)
        await push
        await asyncio.sleep(0)
    await stream.finish()
    await asyncio.wait_for(collector, 120)
    return transcripts


@pytest.mark.slow
async def test_concurrent_streams_are_batched_and_all_get_their_finals(
    recognizer: SpeechRecognizer, clips: dict[str, np.ndarray]
) -> None:
    alone = [
        t.text for t in await stream_clip(recognizer, clips["jfk_7s"]) if t.kind is SpeechEventKind.FINAL
    ]
    before = recognizer.stats()
    n = 4
    results = await asyncio.gather(*(stream_clip(recognizer, clips["jfk_7s"]) for _ in range(n)))
    after = recognizer.stats()
    # Finals are never dropped under load, and batching does not change what they say.
    for transcripts in results:
        assert [t.text for t in transcripts if t.kind is SpeechEventKind.FINAL] == alone
    assert after.max_batch_size >= 2, "no two streams' requests ever shared a batch"
    batches = after.batches - before.batches
    assert (after.requests - before.requests) / batches > 1.2
    assert after.max_wait_batches <= math.ceil(n / recognizer.config.max_batch)
    assert after.queue_depth == 0 and after.active_streams == 0


@pytest.mark.slow
async def test_push_blocks_while_the_scheduler_is_saturated(
    whisper_model_path: Path, clips: dict[str, np.ndarray]
) -> None:
    recognizer = SpeechRecognizer(whisper_model_path, replace(RecognizerConfig(), max_queued_s=1.0))
    try:
        blocked: list[list[int]] = [[] for _ in range(3)]
        results = await asyncio.gather(
            *(stream_clip(recognizer, clips["jfk_start"], blocked[k]) for k in range(3))
        )
        assert all(blocked), "some stream's push() never waited although decoding was saturated"
        assert all(any(t.kind is SpeechEventKind.FINAL for t in transcripts) for transcripts in results)
    finally:
        await recognizer.aclose()


async def test_speech_end_is_when_the_closing_silence_arrived_however_late_it_was_segmented() -> None:
    # On CPU, VAD runs on the scheduler thread between decodes, so the segmenter can reach the silence
    # that ends an utterance a second after it arrived. That second is part of the caption's delay: it
    # must show in the stage times (as queueing), not vanish by stamping the end when segmenting ran.
    lag_s = 1.0
    scheduler = DecodeScheduler(
        lambda tasks: [Decoded("words", "en", None) for _ in tasks], max_batch=1, window_s=0.0
    )
    pool = ThreadPoolExecutor(1)

    def late_prepare(fn: Callable[..., Any], *args: Any) -> Future[Any]:
        def run() -> Any:
            time.sleep(lag_s)
            return fn(*args)

        return pool.submit(run)

    config = RecognizerConfig(speculative_finals=False, second_pass=False)
    stream = RecognitionStream(
        scheduler,
        config,
        language="en",
        allowed_languages=None,
        english_wanted=False,
        glossary=(),
        live=True,
        on_closed=lambda _: None,
        prepare=late_prepare,
    )
    speech = audio_fixtures.espeak("Please take one tablet every morning.")
    audio = np.concatenate(
        [np.zeros(SAMPLE_RATE // 2, np.float32), speech, np.zeros(2 * SAMPLE_RATE, np.float32)]
    )
    transcripts, collector = collect_transcripts(stream)
    pushed_at: list[float] = []
    try:
        for i in range(0, len(audio), CHUNK):
            await stream.push(audio[i : i + CHUNK])
            pushed_at.append(time.time())
            await asyncio.sleep(CHUNK / SAMPLE_RATE)
        await stream.finish()
        await asyncio.wait_for(collector, 30)
    finally:
        scheduler.close()
        pool.shutdown()
    (final,) = [t for t in transcripts if t.kind is SpeechEventKind.FINAL]
    # The silence_ms of silence after the speech arrived with this chunk:
    closing_chunk = math.ceil((final.end_s + config.silence_ms / 1000) * SAMPLE_RATE / CHUNK) - 1
    expected = pushed_at[closing_chunk]
    assert expected - 0.1 <= final.timings["speech_end"] <= expected + 0.1
    assert final.timings["queued"] - final.timings["speech_end"] >= 0.8 * lag_s
