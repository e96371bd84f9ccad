"""Random-weight models of production shapes (speed benchmarks): they load and run through the real
recognition path, and the speed-only mode decodes the number of tokens it was asked for."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from faster_whisper import decode_audio

from asr import SpeechEventKind, SpeechRecognizer
from asr.decoder import DecodeTask
from bench.synthetic_whisper import ForcedLengthDecoder, build, forced_length_decoder, is_synthetic

pytestmark = pytest.mark.slow


async def test_synthetic_whisper_runs_with_forced_token_counts(
    tmp_path: Path, whisper_model_path: Path, speech_dir: Path
) -> None:
    model_dir = build(tmp_path / "whisper-synthetic", "base", whisper_model_path)
    assert is_synthetic(model_dir) and not is_synthetic(whisper_model_path)
    tokens_per_s = 4.0
    recognizer = SpeechRecognizer(model_dir, decoder_factory=forced_length_decoder(tokens_per_s))
    try:
        stream = recognizer.open_stream(language="en")
        audio = decode_audio(str(speech_dir / "en_jfk.flac"), sampling_rate=16_000)

        async def feed() -> None:
            for start in range(0, len(audio), 320):
                await stream.push(audio[start : start + 320])
            await stream.finish()

        feeding = asyncio.create_task(feed())
        finals = [t async for t in stream if t.kind is SpeechEventKind.FINAL]
        await feeding
    finally:
        await recognizer.aclose()
    # Speech detection runs on the real audio, so finals come at the real pauses; their text is noise
    # (and the repetition guard collapses most of it), which is fine for timing.
    assert finals, "the synthetic model produced no finals"

    # The decode itself runs as many tokens as the audio's length asks for, behind a glossary too.
    model = recognizer._model
    generated: list[int] = []
    whisper = model.model

    class CountingWhisper:
        def __getattr__(self, name: str) -> Any:
            return getattr(whisper, name)

        def generate(self, *args: Any, **kwargs: Any) -> Any:
            results = whisper.generate(*args, **kwargs)
            generated.extend(len(r.sequences_ids[0]) for r in results)
            return results

    model.model = CountingWhisper()
    decoder = ForcedLengthDecoder(model, 1, tokens_per_s=tokens_per_s)
    seconds = 5.0
    clip = audio[: int(seconds * 16_000)]
    decoder.decode_batch([DecodeTask(clip, True, "en", None, False)])
    decoder.decode_batch([DecodeTask(clip, True, "en", None, False, glossary=("dapagliflozin",) * 20)])
    assert generated == [tokens_per_s * seconds] * 2
