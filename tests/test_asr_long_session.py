"""A long consultation streamed through one stream: buffers and the Python heap stay bounded."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path

import pytest
from audio_fixtures import collect_transcripts
from faster_whisper import decode_audio

from asr import RecognizerConfig, SpeechEventKind, SpeechRecognizer

pytestmark = pytest.mark.slow

SAMPLE_RATE = 16_000
CHUNK = SAMPLE_RATE // 50
# The whole 9.7-minute file takes several minutes to decode on a 2-core machine; this span still covers
# dozens of utterances, several max_utterance_s cuts and many superseded partials.
SPAN_S = 200
WARM_S = 60  # heap measured from here: model caches, tokenizers and the VAD session exist by then
# Per-stream buffers may hold at most one utterance (max_utterance_s) plus the back-pressure window.
UTTERANCE_WINDOWS = int((15.0 + 1.0) * SAMPLE_RATE / 512)


async def test_long_session_stays_bounded(whisper_model_path: Path, speech_dir: Path) -> None:
    audio = decode_audio(
        str(speech_dir / "en_synthetic_consultation_day1_01.flac"), sampling_rate=SAMPLE_RATE
    )
    audio = audio[: SPAN_S * SAMPLE_RATE]
    config = RecognizerConfig(max_queued_s=2.0, context_s=20.0)  # context: the most it can hold
    recognizer = await asyncio.to_thread(SpeechRecognizer, whisper_model_path, config)
    stream = recognizer.open_stream(language="en")
    transcripts, collector = collect_transcripts(stream)
    worst: dict[str, int] = {}
    heap: list[int] = []  # traced Python heap every 5 s of audio after WARM_S
    tracemalloc.start()
    try:
        for i in range(0, len(audio), CHUNK):
            await stream.push(audio[i : i + CHUNK])
            await asyncio.sleep(0)
            sizes = {**stream.debug_sizes(), "queued_samples": int(stream.queued_s * SAMPLE_RATE)}
            for key, size in sizes.items():
                worst[key] = max(worst.get(key, 0), size)
            if i >= WARM_S * SAMPLE_RATE and i % (5 * SAMPLE_RATE) == 0:
                gc.collect()
                # Less the finals' audio waiting for the second pass, the copy a window being decoded
                # holds and the settled lines kept as left context (float32), bounded on their own
                # below: on a saturated machine the second pass gets little CPU and the first two sit
                # at their bounds, up to 2.7 + 1.9 MB, by design.
                settling = (
                    sizes["unsettled_samples"] + sizes["settling_samples"] + sizes["settled_context_samples"]
                )
                heap.append(tracemalloc.get_traced_memory()[0] - settling * 4)
    finally:
        tracemalloc.stop()
    await stream.finish()
    await collector
    await recognizer.aclose()

    assert sum(t.kind is SpeechEventKind.FINAL for t in transcripts) >= 20
    assert worst["queued_samples"] <= (config.max_queued_s + 0.1) * SAMPLE_RATE
    assert worst["segmenter_utterance_windows"] <= UTTERANCE_WINDOWS
    assert worst["segmenter_utterance_probs"] <= UTTERANCE_WINDOWS
    assert worst["segmenter_preroll_windows"] <= 10
    assert worst["segmenter_unscored_samples"] < 512
    assert worst["agreement_units"] <= 2 * 15 * 10  # two hypotheses of one utterance, ~10 words/s at most
    assert worst["context_samples"] <= config.context_s * SAMPLE_RATE
    # Finals wait for the second pass at most a window's worth, plus those emitted while it decodes.
    assert worst["unsettled_samples"] <= (config.settle_window_s + 30.0) * SAMPLE_RATE
    assert worst["settling_samples"] <= 30.0 * SAMPLE_RATE  # one window
    # Whole lines reaching back at least the left context: at most one line (one window's) more.
    assert worst["settled_context_samples"] <= (config.settle_left_context_s + 30.0) * SAMPLE_RATE
    assert worst["handovers"] <= config.max_queued_s * 50 + 1  # one per pushed chunk, at most
    assert worst["arrivals"] <= config.max_queued_s * 50 + 2  # one per unsegmented chunk, and the newest
    # At any instant up to ~4 MB is legitimately live (an utterance of up to 15 s as VAD windows, as the
    # segment's copy and as log-mel features), so single samples are noisy: compare the least heap seen
    # in the first and in the last 50 s, moments when the least was in flight. The transcripts this
    # test keeps are the only thing that should accumulate.
    kept = sum(len(t.text) * 4 + 1000 for t in transcripts)
    growth = min(heap[-10:]) - min(heap[:10])
    assert growth < kept + 1_000_000, f"heap grew by {growth / 1e6:.2f} MB over {SPAN_S - WARM_S} s"
