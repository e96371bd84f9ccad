"""Random-weight translation models of production shapes (bench/synthetic.py): they load as the real
family, and benchmarks force them to decode a realistic length."""

from __future__ import annotations

import json
from pathlib import Path

from bench.synthetic import OPUS_MT_SHAPE, main, synthetic_lengths
from mt import TranslationEngine
from mt.families import ModelFamily


async def test_synthetic_opus_mt_pairs_load_as_marian_models_of_the_real_shape(tmp_path: Path) -> None:
    assert main([str(tmp_path), "--shape", "opus-mt", "--pairs", "en-fr,en-ar"]) == 0
    built = tmp_path / "opus-mt-en-fr-synthetic"
    vocabulary = json.loads((built / "shared_vocabulary.json").read_text())
    assert len(vocabulary) == OPUS_MT_SHAPE["vocab"]
    stamp = (built / "model.bin").stat().st_mtime_ns
    assert main([str(tmp_path), "--shape", "opus-mt", "--pairs", "en-fr"]) == 0
    assert (built / "model.bin").stat().st_mtime_ns == stamp  # an existing build is reused

    with synthetic_lengths():
        engine = TranslationEngine.from_directory(tmp_path)
    try:
        assert sorted(m.pair for m in engine.models if m.pair) == [("en", "ar"), ("en", "fr")]
        assert all(m.family is ModelFamily.MARIAN for m in engine.models)
        assert all(m.decoding_bounds(10) == (13, 13) for m in engine.models)  # type: ignore[attr-defined]
        translations = await engine.translate(
            "The patient has had a fever since yesterday.", "en", {"fr", "ar"}
        )
        assert {t: tr.path.value for t, tr in translations.items()} == {"fr": "machine", "ar": "machine"}
    finally:
        await engine.aclose()
