"""The translation queue: finals before partials, each language handed out when its model returns,
calls side by side on CPU; and fixed-length decoding for random-weight models."""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path

import pytest
from mt_models import build_marian_pair, build_multilingual, hold_calls

from bench.synthetic import LENGTH_RATIO, STAMP, force_length, synthetic_lengths
from mt import Priority, TranslationBusyError, TranslationEngine, TranslationModel, load_model
from protocol import TranslationPath


@pytest.fixture(scope="module")
def nllb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_multilingual(tmp_path_factory.mktemp("priority") / "nllb-tiny")


@pytest.fixture(scope="module")
def pair_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pairs")
    return (
        build_marian_pair(root / "opus-mt-en-fr", "en", "fr"),
        build_marian_pair(root / "opus-mt-en-es", "en", "es", seed=2),
    )


def _french_held(
    pair_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> tuple[TranslationEngine, TranslationModel, threading.Event]:
    """An engine with two threads and the en→fr and en→es pairs, whose French calls block until the
    event returned is set; and the Spanish model."""
    french, spanish = (load_model(d) for d in pair_dirs)
    release = threading.Event()
    hold_calls(monkeypatch, french, lambda texts: True, release)
    return TranslationEngine([french, spanish], workers=2), spanish, release


async def test_each_language_is_handed_out_when_its_model_returns(
    pair_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, spanish, release = _french_held(pair_dirs, monkeypatch)
    utterance = engine.start("Where does it hurt?", "en", ["fr", "es"])
    ready = utterance.as_ready()
    try:
        # French is held in one worker; Spanish runs in the other and reaches its listeners meanwhile.
        target, translation = await asyncio.wait_for(anext(ready), 5)
        assert (target, translation.path) == ("es", TranslationPath.MACHINE)
        assert translation.text == spanish.translate_batch(["Where does it hurt?"], "en", "es")[0]
    finally:
        release.set()
    assert [target async for target, _ in ready] == ["fr"]
    await engine.aclose()


async def test_a_final_starts_on_a_free_thread_while_a_partial_is_translated(
    pair_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _, release = _french_held(pair_dirs, monkeypatch)
    partial = asyncio.create_task(engine.translate("partial words", "en", ["fr"], priority=Priority.PARTIAL))
    await asyncio.sleep(0.2)
    try:
        # The French partial holds one thread; the Spanish final does not wait for it.
        final = await asyncio.wait_for(engine.translate("the final", "en", ["es"]), 5)
        assert final["es"].path is TranslationPath.MACHINE and not partial.done()
    finally:
        release.set()
    assert (await partial)["fr"].path is TranslationPath.MACHINE
    await engine.aclose()


async def test_jobs_for_a_busy_model_wait_and_share_one_call(
    pair_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    french = load_model(pair_dirs[0])
    engine = TranslationEngine([french], workers=2)
    release = threading.Event()
    calls = hold_calls(monkeypatch, french, lambda texts: texts == ["first"], release)
    first = asyncio.create_task(engine.translate("first", "en", ["fr"]))
    await asyncio.sleep(0.2)
    rest = [asyncio.create_task(engine.translate(text, "en", ["fr"])) for text in ("second", "third")]
    await asyncio.sleep(0.2)
    # A second thread is free, but the model is at work: the others queue rather than block on it.
    assert calls == [["first"]]
    release.set()
    await asyncio.gather(first, *rest)
    assert calls == [["first"], ["second", "third"]]
    await engine.aclose()


async def test_cancelling_an_utterance_drops_its_queued_calls(
    pair_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    french = load_model(pair_dirs[0])
    engine = TranslationEngine([french])
    release = threading.Event()
    calls = hold_calls(monkeypatch, french, lambda texts: texts == ["first"], release)
    first = engine.start("first", "en", ["fr"])
    await asyncio.sleep(0.2)
    second = engine.start("second", "en", ["fr"])
    await asyncio.sleep(0.1)
    second.cancel()  # what the caption pipeline does with an early translation the final did not confirm
    release.set()
    assert (await first.result())["fr"].path is TranslationPath.MACHINE
    assert engine.pending == 0 and calls == [["first"]]
    await engine.aclose()


async def test_queued_finals_run_before_queued_partials(
    nllb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = TranslationEngine([load_model(nllb_dir)])
    release = threading.Event()
    # Hold the worker on the first partial while the others queue up.
    order = hold_calls(monkeypatch, engine.models[0], lambda texts: texts == ["partial one"], release, 5)
    first = asyncio.create_task(engine.translate("partial one", "en", ["fr"], priority=Priority.PARTIAL))
    await asyncio.sleep(0.2)
    later = [
        asyncio.create_task(engine.translate("partial two", "en", ["fr"], priority=Priority.PARTIAL)),
        asyncio.create_task(engine.translate("the final", "en", ["fr"])),
        asyncio.create_task(engine.translate("partial three", "en", ["fr"], priority=Priority.PARTIAL)),
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

    stamped = Path(shutil.copytree(nllb_dir, tmp_path / "models" / "nllb-synthetic"))
    (stamped / STAMP).write_text("{}")
    shutil.copytree(nllb_dir, tmp_path / "models" / "nllb-real")
    with synthetic_lengths():
        engine = TranslationEngine.from_directory(tmp_path / "models")
    bounds = {m.name: m.decoding_bounds(10) for m in engine.models}  # type: ignore[attr-defined]
    assert bounds == {"nllb-synthetic": (13, 13), "nllb-real": (1, 40)}
    assert load_model(stamped).decoding_bounds(10) == (1, 40)  # production loading never forces
    model = force_length(load_model(stamped))
    calls: list[dict[str, object]] = []
    translator = model._translator

    class Recording:
        def translate_batch(self, source: list[list[str]], **options: object) -> object:
            calls.append(options)
            return translator.translate_batch(source, **options)

    model._translator = Recording()  # type: ignore[assignment]
    text = "Please take this medicine twice a day after meals."
    source_tokens = len(model._codec.encode([text], "en", "fr").source[0])
    (translated,) = model.translate_batch([text], "en", "fr")
    assert translated
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


def _held_partials(
    monkeypatch: pytest.MonkeyPatch, model: TranslationModel, release: threading.Event
) -> list[list[str]]:
    """Model calls for texts starting with "partial" block until `release`; returns the calls made."""
    return hold_calls(monkeypatch, model, lambda texts: texts[0].startswith("partial"), release)


async def test_on_a_gpu_finals_overtake_a_running_batch_of_partials(
    nllb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = TranslationEngine([load_model(nllb_dir)], finals_lane=True)
    release = threading.Event()
    _held_partials(monkeypatch, engine.models[0], release)
    partial = asyncio.create_task(engine.translate("partial words", "en", ["fr"], priority=Priority.PARTIAL))
    await asyncio.sleep(0.2)
    try:
        # The partial's batch is still running; the final has a worker of its own.
        final = await asyncio.wait_for(engine.translate("the final", "en", ["fr"]), 5)
        assert final["fr"].text and not partial.done()
    finally:
        release.set()
    assert (await partial)["fr"].text
    await engine.aclose()


async def test_partials_are_refused_when_half_the_engine_is_busy(
    nllb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = TranslationEngine([load_model(nllb_dir)], max_pending=4)
    release = threading.Event()
    _held_partials(monkeypatch, engine.models[0], release)
    held = asyncio.create_task(
        engine.translate("partial held", "en", ["fr", "ja"], priority=Priority.PARTIAL)
    )
    await asyncio.sleep(0.2)
    assert engine.pending == 2
    try:
        with pytest.raises(TranslationBusyError):
            await engine.translate("partial refused", "en", ["fr"], priority=Priority.PARTIAL)
        # Finals are never refused: they queue (and wait for a free slot when all are taken).
        final = asyncio.create_task(engine.translate("the final", "en", ["fr"]))
        await asyncio.sleep(0.2)
        assert not final.done()
    finally:
        release.set()
    await asyncio.gather(held, final)
    assert final.result()["fr"].text
    await engine.aclose()


async def test_a_partial_whose_caller_gave_up_is_never_translated(
    nllb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = TranslationEngine([load_model(nllb_dir)])
    release = threading.Event()
    order = _held_partials(monkeypatch, engine.models[0], release)
    running = asyncio.create_task(
        engine.translate("partial running", "en", ["fr"], priority=Priority.PARTIAL)
    )
    await asyncio.sleep(0.2)
    superseded = asyncio.create_task(
        engine.translate("partial superseded", "en", ["fr"], priority=Priority.PARTIAL)
    )
    await asyncio.sleep(0.1)
    superseded.cancel()  # what the caption pipeline does when the utterance's final arrives
    release.set()
    await running
    await engine.translate("the final", "en", ["fr"])
    await engine.aclose()
    assert order == [["partial running"], ["the final"]]
