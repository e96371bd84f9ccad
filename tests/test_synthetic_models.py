"""Random-weight models of production shapes (speed benchmarks): they load and run through the real
recognition path, and the speed-only mode decodes the number of tokens it was asked for."""

from __future__ import annotations

import asyncio
import json
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


async def test_synthetic_opus_mt_pairs_load_as_marian_models_of_the_real_shape(tmp_path: Path) -> None:
    from models.synthetic_translation import LENGTH_RATIO, OPUS_MT_SHAPE, main
    from mt import TranslationEngine
    from mt.families import ModelFamily

    assert main([str(tmp_path), "--shape", "opus-mt", "--pairs", "en-fr,en-ar"]) == 0
    built = tmp_path / "opus-mt-en-fr-synthetic"
    vocabulary = json.loads((built / "shared_vocabulary.json").read_text())
    assert len(vocabulary) == OPUS_MT_SHAPE["vocab"]
    stamp = (built / "model.bin").stat().st_mtime_ns
    assert main([str(tmp_path), "--shape", "opus-mt", "--pairs", "en-fr"]) == 0
    assert (built / "model.bin").stat().st_mtime_ns == stamp  # an existing build is reused

    engine = TranslationEngine.from_directory(tmp_path)
    try:
        assert sorted(m.pair for m in engine.models if m.pair) == [("en", "ar"), ("en", "fr")]
        assert all(m.family is ModelFamily.MARIAN for m in engine.models)
        assert all(getattr(m, "forced_length_ratio", None) == LENGTH_RATIO for m in engine.models)
        translations = await engine.translate(
            "The patient has had a fever since yesterday.", "en", {"fr", "ar"}
        )
        assert {t: tr.path.value for t, tr in translations.items()} == {"fr": "machine", "ar": "machine"}
    finally:
        await engine.aclose()
