"""Finals before partials in the translation queue, and fixed-length decoding for random-weight models."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path

import pytest
from mt_models import build_multilingual, real_calls, replace_calls

from models.synthetic_translation import LENGTH_RATIO, STAMP
from mt import TranslationEngine, load_model


@pytest.fixture(scope="module")
def nllb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_multilingual(tmp_path_factory.mktemp("priority") / "nllb-tiny")


async def test_queued_finals_run_before_queued_partials(
    nllb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = TranslationEngine([load_model(nllb_dir)])
    model = engine.models[0]
    original = real_calls(model)
    order: list[list[str]] = []
    release = threading.Event()

    def slow(texts: list[str], source: str, target: str) -> list[str]:
        order.append(list(texts))
        if texts == ["partial one"]:
            release.wait(5)  # hold the worker while the others queue up
        return original(texts, source, target)

    replace_calls(monkeypatch, model, slow)
    first = asyncio.create_task(engine.translate("partial one", "en", ["fr"], urgent=False))
    await asyncio.sleep(0.2)
    later = [
        asyncio.create_task(engine.translate("partial two", "en", ["fr"], urgent=False)),
        asyncio.create_task(engine.translate("the final", "en", ["fr"])),
        asyncio.create_task(engine.translate("partial three", "en", ["fr"], urgent=False)),
    ]
    await asyncio.sleep(0.2)
    release.set()
    await asyncio.gather(first, *later)
    await engine.aclose()
    assert order[0] == ["partial one"]
    assert order[1] == ["the final"], order
    assert sorted(order[2]) == ["partial three", "partial two"]


def test_random_weight_models_decode_a_fixed_length(nllb_dir: Path, tmp_path: Path) -> None:
    import shutil

    stamped = Path(shutil.copytree(nllb_dir, tmp_path / "nllb-synthetic"))
    (stamped / STAMP).write_text("{}")
    model = load_model(stamped)
    assert model.forced_length_ratio == LENGTH_RATIO and load_model(nllb_dir).forced_length_ratio is None
    calls: list[dict[str, object]] = []
    translator = model._translator

    class Recording:
        def translate_batch(self, source: list[list[str]], **options: object) -> object:
            calls.append(options)
            return translator.translate_batch(source, **options)

    model._translator = Recording()  # type: ignore[assignment]
    text = "Please take this medicine twice a day after meals."
    source_tokens = len(model._codec.encode([text], "en", "fr").source[0])
    started = time.perf_counter()
    (translated,) = model.translate_batch([text], "en", "fr")
    assert translated and time.perf_counter() - started < 10
    forced = math.ceil(LENGTH_RATIO * source_tokens)
    assert calls[0]["min_decoding_length"] == calls[0]["max_decoding_length"] == forced


async def test_one_model_call_serves_every_target_language(nllb_dir: Path) -> None:
    model = load_model(nllb_dir)
    texts = ["Where does it hurt?", "Since yesterday."]
    separately = {t: model.translate_batch(texts, "en", t) for t in ("fr", "ja", "ar")}
    calls: list[int] = []
    translator = model._translator

    class Counting:
        def translate_batch(self, source: list[list[str]], **options: object) -> object:
            calls.append(len(source))
            return translator.translate_batch(source, **options)

    model._translator = Counting()  # type: ignore[assignment]
    engine = TranslationEngine([model])
    first, second = await asyncio.gather(
        engine.translate(texts[0], "en", ["fr", "ja", "ar"]),
        engine.translate(texts[1], "en", ["fr", "ja", "ar"]),
    )
    await engine.aclose()
    # Two utterances x three languages: six rows, one CTranslate2 call (or two when the second
    # utterance arrived after the first call had started), never one per language.
    assert sum(calls) == 6 and len(calls) <= 2
    for target in ("fr", "ja", "ar"):
        assert [first[target].text, second[target].text] == separately[target]
