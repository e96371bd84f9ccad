"""Fast tests of asr/ pieces that need no Whisper model and no dev data."""

from __future__ import annotations

import numpy as np
import pytest
from faster_whisper.vad import get_vad_model

from asr.agreement import LocalAgreement
from asr.config import SAMPLE_RATE, RecognizerConfig
from asr.hallucinations import is_hallucination
from asr.segmenter import UtteranceSegmenter
from asr.vad import WINDOW, StreamingVad


class ScriptedVad(StreamingVad):
    """Speech probability from a function of stream time, instead of the model."""

    def __init__(self, speech_at: list[tuple[float, float]]) -> None:
        self._speech_at = speech_at
        self._position = 0
        self._remainder = 0

    def process(self, samples: np.ndarray) -> np.ndarray:
        total = self._remainder + len(samples)
        n = total // WINDOW
        self._remainder = total % WINDOW
        probs = []
        for _ in range(n):
            t = self._position / SAMPLE_RATE
            probs.append(0.9 if any(a <= t < b for a, b in self._speech_at) else 0.05)
            self._position += WINDOW
        return np.asarray(probs, dtype=np.float32)


def feed_all(segmenter: UtteranceSegmenter, seconds: float, chunk: int = 320) -> list:
    audio = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    segments = []
    for i in range(0, len(audio), chunk):
        segments.extend(segmenter.feed(audio[i : i + chunk]))
    return segments


def test_streaming_vad_matches_offline_pass() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(SAMPLE_RATE * 3) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 1) + 0.01 * rng.standard_normal(len(t))).astype(
        np.float32
    )
    audio = audio[: len(audio) // WINDOW * WINDOW]
    offline = get_vad_model()(audio).reshape(-1)
    vad = StreamingVad()
    # Odd chunk sizes on purpose: windows straddle push boundaries.
    streamed = np.concatenate([vad.process(audio[i : i + 333]) for i in range(0, len(audio), 333)])
    np.testing.assert_allclose(streamed, offline, atol=1e-5)


def test_utterance_ends_after_silence_ms() -> None:
    config = RecognizerConfig(silence_ms=600, partial_interval_s=100.0)
    segmenter = UtteranceSegmenter(config, vad=ScriptedVad([(1.0, 3.0)]))
    finals = [s for s in feed_all(segmenter, 5.0) if s.final]
    assert len(finals) == 1
    assert finals[0].start_sample / SAMPLE_RATE == pytest.approx(1.0, abs=0.05)
    assert finals[0].end_sample / SAMPLE_RATE == pytest.approx(3.0, abs=0.05)
    # Leading and trailing pads keep soft onsets and final consonants.
    assert len(finals[0].audio) / SAMPLE_RATE == pytest.approx(2.6, abs=0.1)


def test_short_blips_are_not_utterances() -> None:
    segmenter = UtteranceSegmenter(RecognizerConfig(), vad=ScriptedVad([(1.0, 1.1)]))
    assert feed_all(segmenter, 3.0) == []


def test_monologue_is_cut_at_max_utterance_s() -> None:
    config = RecognizerConfig(max_utterance_s=15.0, partial_interval_s=100.0)
    segmenter = UtteranceSegmenter(config, vad=ScriptedVad([(0.0, 9.0), (9.2, 40.0)]))
    finals = [s for s in feed_all(segmenter, 32.0) if s.final]
    assert len(finals) >= 2
    assert all(len(s.audio) <= 15.0 * SAMPLE_RATE for s in finals)
    # The cut lands in the brief pause, not at an arbitrary point.
    assert finals[0].end_sample / SAMPLE_RATE == pytest.approx(9.1, abs=0.1)
    assert [s.seq for s in finals] == list(range(len(finals)))


def test_partials_are_rate_limited_and_flush_finalises() -> None:
    config = RecognizerConfig(partial_interval_s=1.0)
    segmenter = UtteranceSegmenter(config, vad=ScriptedVad([(0.5, 10.0)]))
    segments = feed_all(segmenter, 4.0)
    partials = [s for s in segments if not s.final]
    assert 2 <= len(partials) <= 4
    flushed = segmenter.flush()
    assert len(flushed) == 1 and flushed[0].final and flushed[0].seq == partials[-1].seq


def test_a_lagging_feed_yields_one_partial() -> None:
    segmenter = UtteranceSegmenter(RecognizerConfig(), vad=ScriptedVad([(0.0, 30.0)]))
    segments = segmenter.feed(np.zeros(8 * SAMPLE_RATE, dtype=np.float32))
    assert [s.final for s in segments] == [False]


def test_local_agreement_keeps_its_promises() -> None:
    agreement = LocalAgreement()
    assert agreement.update("And so my") == ("And so my", 0)
    text, stable = agreement.update("And so my fellow America")
    assert text == "And so my fellow America" and text[:stable] == "And so my "
    # A later hypothesis rewriting promised words does not change them.
    text, stable = agreement.update("And sew my fellow Americans ask")
    assert text.startswith("And so my ")
    assert stable >= len("And so my ")


@pytest.mark.parametrize(
    ("text", "seconds", "dropped"),
    [
        ("Thank you.", 1.0, True),
        ("Thanks for watching!", 2.0, True),
        ("Thank you.", 8.0, False),
        ("Yes.", 1.0, False),
    ],
)
def test_boilerplate_is_dropped_only_on_short_utterances(text: str, seconds: float, dropped: bool) -> None:
    assert is_hallucination(text, seconds) is dropped
