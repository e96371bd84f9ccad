"""mt/ on the real CTranslate2 + SentencePiece path, with tiny random-weight models (tests/mt_models.py)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conditions import wait_until
from mt_models import build_marian_pair, build_multilingual, real_calls, replace_calls, write_metadata

from mt import ModelFamily, ModelLoadError, Translation, TranslationEngine, TranslationModel, load_model
from mt import engine as engine_module
from mt.plan import Note, no_model_note, whisper_missing_note
from mt.tokenization import SentencePieceCodec
from protocol.captions import NoteCode, TranslationPath
from protocol.languages import UnknownLanguageError

TEXT = "Bonjour, où avez-vous mal ?"


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mt-models")
    build_multilingual(root / "nllb-tiny")
    build_multilingual(root / "m2m100-tiny", family="m2m100")
    build_multilingual(root / "nllb-tiny-en", languages=["en", "ja", "th"], seed=2)
    build_marian_pair(root / "opus-mt-fr-en")
    return root


@pytest.fixture(scope="session")
def nllb(built: Path) -> TranslationModel:
    return load_model(built / "nllb-tiny")


@pytest.fixture(scope="session")
def nllb_en(built: Path) -> TranslationModel:
    return load_model(built / "nllb-tiny-en")


@pytest.fixture(scope="session")
def marian(built: Path) -> TranslationModel:
    return load_model(built / "opus-mt-fr-en")


Calls = list[tuple[str, str, str, list[str]]]


def record_calls(monkeypatch: pytest.MonkeyPatch, *models: TranslationModel) -> Calls:
    """Record every model call on `models`, one per target language, as (model, source, target, texts)."""
    calls: Calls = []
    for model in models:
        original = real_calls(model)

        def wrapper(
            texts: list[str], source: str, target: str, _m: TranslationModel = model, _o: Callable = original
        ) -> list[str]:
            calls.append((_m.name, source, target, list(texts)))
            return _o(texts, source, target)

        replace_calls(monkeypatch, model, wrapper)
    return calls


def gate_calls(monkeypatch: pytest.MonkeyPatch, model: TranslationModel, gate: threading.Event) -> Calls:
    """Make `model`'s calls wait for `gate` in the worker thread; a call is recorded as soon as it starts."""
    calls: Calls = []
    original = real_calls(model)

    def gated(texts: list[str], source: str, target: str) -> list[str]:
        calls.append((model.name, source, target, list(texts)))
        gate.wait(timeout=10)
        return original(texts, source, target)

    replace_calls(monkeypatch, model, gated)
    return calls


# --- loading and family detection -------------------------------------------------------------------


def test_detects_each_family(nllb: TranslationModel, marian: TranslationModel, built: Path) -> None:
    m2m = load_model(built / "m2m100-tiny")
    assert (nllb.family, m2m.family, marian.family) == (
        ModelFamily.NLLB,
        ModelFamily.M2M100,
        ModelFamily.MARIAN,
    )
    assert nllb.name == "nllb-tiny"
    assert nllb.covers("fr", "ja") and nllb.covers("th", "ar") and not nllb.covers("fr", "fr")
    assert m2m.covers("zh", "vi")
    assert marian.covers("fr", "en") and not marian.covers("en", "fr") and not marian.covers("fr", "ja")


def test_coverage_follows_the_language_tokens_in_the_vocabulary(nllb_en: TranslationModel) -> None:
    assert nllb_en.languages == {"en", "ja", "th"}
    assert nllb_en.covers("en", "ja") and not nllb_en.covers("fr", "ja")


def test_babelcall_json_names_the_family_pair_and_languages(built: Path, tmp_path: Path) -> None:
    pair = shutil.copytree(built / "opus-mt-fr-en", tmp_path / "clinic-pair")
    write_metadata(pair, family="marian", source="fr", target="en", name="clinic-fr-en")
    model = load_model(pair)
    assert (model.family, model.name, model.pair) == (ModelFamily.MARIAN, "clinic-fr-en", ("fr", "en"))

    restricted = shutil.copytree(built / "nllb-tiny", tmp_path / "restricted")
    write_metadata(restricted, languages=["en", "fr"])
    assert load_model(restricted).languages == {"en", "fr"}


def test_translate_batch_returns_one_deterministic_string_per_input(nllb: TranslationModel) -> None:
    texts = [TEXT, "Prenez ce médicament deux fois par jour.", "Merci."]
    first = nllb.translate_batch(texts, "fr", "ja")
    assert len(first) == 3 and all(isinstance(t, str) for t in first)
    assert nllb.translate_batch(texts, "fr", "ja") == first
    assert nllb.translate_batch([texts[1]], "fr", "ja") == [first[1]]
    assert nllb.translate_batch([], "fr", "ja") == []


def test_marian_translate_batch(marian: TranslationModel) -> None:
    out = marian.translate_batch([TEXT, "Merci."], "fr", "en")
    assert len(out) == 2 and out == marian.translate_batch([TEXT, "Merci."], "fr", "en")
    with pytest.raises(ValueError, match="does not translate fr→ja"):
        marian.translate_batch([TEXT], "fr", "ja")


def test_nllb_tokens_put_language_codes_where_the_model_expects_them(built: Path) -> None:
    codec = SentencePieceCodec(ModelFamily.NLLB, built / "nllb-tiny" / "sentencepiece.bpe.model")
    batch = codec.encode(["Bonjour"], "fr", "ja")
    assert batch.source[0][0] == "fra_Latn" and batch.source[0][-1] == "</s>"
    assert batch.target_prefix == [["jpn_Jpan"]]
    pieces = batch.source[0][1:-1]
    # The forced target token and control tokens never reach the caption text.
    assert codec.decode(["jpn_Jpan", *pieces, "</s>", "tha_Thai"], "ja") == "Bonjour"
    m2m = SentencePieceCodec(ModelFamily.M2M100, built / "m2m100-tiny" / "sentencepiece.bpe.model")
    assert m2m.encode(["Bonjour"], "fr", "ja").source[0][0] == "__fr__"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "not a directory"),
        (lambda d: d.mkdir(), "no model.bin"),
        (lambda d: (d.mkdir(), (d / "model.bin").write_bytes(b"x")), "no CTranslate2 vocabulary"),
    ],
)
def test_unusable_directories_raise_model_load_error(
    tmp_path: Path, setup: Callable[[Path], object], message: str
) -> None:
    setup(tmp_path / "m")
    with pytest.raises(ModelLoadError, match=message):
        load_model(tmp_path / "m")


def test_missing_tokenizer_files_are_named(built: Path, tmp_path: Path) -> None:
    no_spm = shutil.copytree(built / "nllb-tiny", tmp_path / "nllb-no-spm")
    (no_spm / "sentencepiece.bpe.model").unlink()
    with pytest.raises(ModelLoadError, match=r"sentencepiece\.bpe\.model.*--copy_files"):
        load_model(no_spm)

    unnamed = shutil.copytree(built / "opus-mt-fr-en", tmp_path / "some-pair")
    with pytest.raises(ModelLoadError, match="language pair"):
        load_model(unnamed)

    unknown = shutil.copytree(built / "nllb-tiny", tmp_path / "odd")
    write_metadata(unknown, family="gpt")
    with pytest.raises(ModelLoadError, match="unknown family 'gpt'"):
        load_model(unknown)


def test_from_directory_loads_models_and_skips_junk(
    built: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models_dir = tmp_path / "models"
    shutil.copytree(built / "opus-mt-fr-en", models_dir / "opus-mt-fr-en")
    shutil.copytree(built / "nllb-tiny", models_dir / "nllb-tiny")
    (models_dir / "junk").mkdir()
    (models_dir / "README.txt").write_text("not a model")
    with caplog.at_level(logging.WARNING, logger="mt.engine"):
        engine = TranslationEngine.from_directory(models_dir)
    # The pair model comes first: it is preferred where it covers a pair.
    assert engine.model_names == ["opus-mt-fr-en", "nllb-tiny"]
    assert "skipping junk" in caplog.text and "no model.bin" in caplog.text
    assert engine.route("fr", "en", whisper_english=False).model_label == "opus-mt-fr-en"
    assert engine.route("fr", "ja", whisper_english=False).model_label == "nllb-tiny"
    assert str(models_dir) in engine.missing_model_hint("fr", "ja")
    assert [m.beam_size for m in engine.models] == [2, 2]  # type: ignore[attr-defined]
    greedy = TranslationEngine.from_directory(models_dir, beam_size=1)  # the operator's mt_beam_size
    assert [m.beam_size for m in greedy.models] == [1, 1]  # type: ignore[attr-defined]
    assert greedy.models[0].translate_batch(["Bonjour."], "fr", "en")[0]


def test_from_directory_divides_the_cores_among_the_models(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls to different models run side by side, so each model gets its share of the cores."""
    threads: dict[str, int] = {}
    real_load = engine_module.load_model

    def recording(path: Path, **options: Any) -> TranslationModel:
        threads[path.name] = options["intra_threads"]
        return real_load(path, **options)

    monkeypatch.setattr(engine_module, "load_model", recording)
    alone = tmp_path / "alone"
    shutil.copytree(built / "nllb-tiny", alone / "nllb-tiny")
    TranslationEngine.from_directory(alone, cpu_threads=4)
    assert threads == {"nllb-tiny": 4}
    pairs = tmp_path / "pairs"
    for name in ("opus-mt-fr-en", "nllb-tiny"):
        shutil.copytree(built / name, pairs / name)
    TranslationEngine.from_directory(pairs, cpu_threads=4)
    assert threads == {"nllb-tiny": 2, "opus-mt-fr-en": 2}
    TranslationEngine.from_directory(pairs, cpu_threads=1)
    assert threads == {"nllb-tiny": 1, "opus-mt-fr-en": 1}


def test_missing_models_directory_is_an_empty_engine(tmp_path: Path) -> None:
    engine = TranslationEngine.from_directory(tmp_path / "absent")
    assert engine.model_names == []


# --- routing and translation ------------------------------------------------------------------------


async def test_one_model_call_per_distinct_target(
    nllb: TranslationModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_calls(monkeypatch, nllb)
    engine = TranslationEngine([nllb])
    result = await engine.translate(TEXT, "fr", ["ja", "th", "ja", "fr", "th"])
    assert sorted(result) == ["fr", "ja", "th"]
    assert sorted((s, t, texts) for _, s, t, texts in calls) == [("fr", "ja", [TEXT]), ("fr", "th", [TEXT])]
    assert result["ja"] == Translation(
        nllb.translate_batch([TEXT], "fr", "ja")[0], TranslationPath.MACHINE, "nllb-tiny", None
    )
    assert result["fr"] == Translation(TEXT, TranslationPath.ORIGINAL, None, None)
    await engine.aclose()


async def test_concurrent_utterances_share_one_batch(
    nllb: TranslationModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    calls = gate_calls(monkeypatch, nllb, gate)
    engine = TranslationEngine([nllb])
    first = asyncio.create_task(engine.translate("Merci.", "fr", ["ja"]))
    await wait_until(lambda: len(calls) == 1)  # the worker is busy with the first utterance
    texts = [f"Phrase {i}." for i in range(3)]
    rest = [asyncio.create_task(engine.translate(t, "fr", ["ja"])) for t in texts]
    await wait_until(lambda: engine.pending == 4)
    gate.set()
    results = await asyncio.gather(first, *rest)
    assert [c[3] for c in calls] == [["Merci."], texts]
    assert [r["ja"].path for r in results] == [TranslationPath.MACHINE] * 4
    await engine.aclose()


async def test_no_model_leaves_the_original_text_marked(marian: TranslationModel) -> None:
    engine = TranslationEngine([marian], models_dir=Path("/srv/models"))
    result = await engine.translate(TEXT, "fr", ["ja"])
    note = Note(NoteCode.NO_MODEL, "not translated: no model for fr→ja")
    assert result["ja"] == Translation(TEXT, TranslationPath.UNTRANSLATED, None, note)
    hint = engine.missing_model_hint("fr", "ja")
    assert "fr→ja" in hint
    # Licence-clean first: the one missing Argos hop (fr→en is installed), then M2M100 (MIT), NLLB last.
    assert "Install translate-en_ja (CC-BY-4.0) to translate it through English" in hint
    assert "`babelcall models pull translate-en_ja`" in hint and "translate-fr_en" not in hint
    assert "babelcall models install translate-en_ja-1_1.argosmodel" in hint
    assert "ct2-transformers-converter --model facebook/m2m100_418M" in hint and "into /srv/models/" in hint
    assert hint.index("translate-en_ja") < hint.index("m2m100_418M") < hint.index("nllb-200")
    assert "CC-BY-NC-4.0: non-commercial use only" in hint
    await engine.aclose()


async def test_whisper_english_when_no_model_covers_english() -> None:
    engine = TranslationEngine([])
    result = await engine.translate(TEXT, "fr", ["en", "ja"], whisper_english="Hello, where does it hurt?")
    assert result["en"] == Translation(
        "Hello, where does it hurt?", TranslationPath.WHISPER, "whisper", None, from_whisper_english=True
    )
    assert result["ja"].path is TranslationPath.UNTRANSLATED and result["ja"].text == TEXT
    without = await engine.translate(TEXT, "fr", ["en"])
    assert without["en"].path is TranslationPath.UNTRANSLATED
    assert without["en"].note == whisper_missing_note("fr", "en")
    # Typed text never has Whisper's English: no model translates it, and nothing will.
    written = await engine.start(TEXT, "fr", ["en"], spoken=False).result()
    assert written["en"].note == no_model_note("fr", "en")
    assert no_model_note("fr", "en") == Note(NoteCode.NO_MODEL, "not translated: no model for fr→en")
    assert not engine.route("fr", "en", whisper_english=True).uses_model  # no model call to wait for
    await engine.aclose()


async def test_a_direct_model_beats_whisper(marian: TranslationModel) -> None:
    engine = TranslationEngine([marian])
    result = await engine.translate(TEXT, "fr", ["en"], whisper_english="Hello")
    assert result["en"].path is TranslationPath.MACHINE and result["en"].model == "opus-mt-fr-en"
    await engine.aclose()


async def test_pivot_through_english_shares_the_first_hop(
    marian: TranslationModel, nllb_en: TranslationModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_calls(monkeypatch, marian, nllb_en)
    engine = TranslationEngine([marian, nllb_en])
    result = await engine.translate(TEXT, "fr", ["ja", "th", "en"])
    engine_calls = list(calls)
    english = marian.translate_batch([TEXT], "fr", "en")[0]
    assert result["en"] == Translation(english, TranslationPath.MACHINE, "opus-mt-fr-en", None)
    assert result["ja"].path is TranslationPath.PIVOT
    assert result["ja"].model == "opus-mt-fr-en+nllb-tiny-en"
    assert result["ja"].text == nllb_en.translate_batch([english], "en", "ja")[0]
    assert sorted((s, t, texts) for _, s, t, texts in engine_calls) == [
        ("en", "ja", [english]),
        ("en", "th", [english]),
        ("fr", "en", [TEXT]),
    ]
    await engine.aclose()


async def test_pivot_from_whisper_english(nllb_en: TranslationModel, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_calls(monkeypatch, nllb_en)
    engine = TranslationEngine([nllb_en])
    result = await engine.translate(TEXT, "fr", ["ja"], whisper_english="Hello")
    assert result["ja"].path is TranslationPath.PIVOT and result["ja"].model == "whisper+nllb-tiny-en"
    assert calls == [("nllb-tiny-en", "en", "ja", ["Hello"])]
    assert engine.route("fr", "ja", whisper_english=True).uses_model  # the second hop is a model's
    await engine.aclose()


async def test_unknown_languages_raise(nllb: TranslationModel) -> None:
    engine = TranslationEngine([nllb])
    with pytest.raises(UnknownLanguageError):
        await engine.translate(TEXT, "xx", ["en"])
    with pytest.raises(UnknownLanguageError):
        await engine.translate(TEXT, "fr", ["en", "klingon"])
    with pytest.raises(UnknownLanguageError):
        engine.route("fr", "de", whisper_english=False)
    await engine.aclose()


async def test_a_failing_model_marks_only_its_targets(
    nllb: TranslationModel, marian: TranslationModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(texts: list[str], source: str, target: str) -> list[str]:
        raise RuntimeError("out of memory")

    replace_calls(monkeypatch, nllb, broken)
    engine = TranslationEngine([marian, nllb])
    result = await engine.translate(TEXT, "fr", ["ja", "en"])
    assert result["ja"] == Translation(
        TEXT,
        TranslationPath.UNTRANSLATED,
        None,
        Note(NoteCode.TRANSLATION_FAILED, "not translated: nllb-tiny failed for fr→ja"),
    )
    assert result["en"].path is TranslationPath.MACHINE
    await engine.aclose()


async def test_repeated_text_and_empty_text_skip_the_model(
    nllb: TranslationModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_calls(monkeypatch, nllb)
    engine = TranslationEngine([nllb])
    first = await engine.translate(TEXT, "fr", ["ja"])
    again = await engine.translate(TEXT, "fr", ["ja"])
    empty = await engine.translate("  ", "fr", ["ja"])
    assert first == again and len(calls) == 1
    assert empty["ja"].text == "  "
    await engine.aclose()


# --- concurrency ------------------------------------------------------------------------------------


async def test_translation_never_blocks_the_event_loop(
    nllb: TranslationModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real = real_calls(nllb)

    def slow(texts: list[str], source: str, target: str) -> list[str]:
        threads.append(threading.current_thread())
        time.sleep(0.3)  # stands in for a real model's decoding time
        return real(texts, source, target)

    replace_calls(monkeypatch, nllb, slow)
    engine = TranslationEngine([nllb])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    await engine.translate(TEXT, "fr", ["ja", "th"])
    ticking.cancel()
    assert ticks >= 30  # 0.6 s of model time, a tick every 10 ms
    assert len(threads) == 2 and threads[0] is threads[1] is not threading.main_thread()
    await engine.aclose()


async def test_back_pressure_past_max_pending(
    nllb: TranslationModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    calls = gate_calls(monkeypatch, nllb, gate)
    engine = TranslationEngine([nllb], max_pending=2)
    tasks = [asyncio.create_task(engine.translate(f"Phrase {i}.", "fr", ["ja"])) for i in range(5)]
    await wait_until(lambda: engine.pending == 2 and len(calls) == 1)
    await asyncio.sleep(0.05)  # the three callers past the limit stay waiting
    assert engine.pending == 2 and len(calls) == 1 and not any(t.done() for t in tasks)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert all(r["ja"].path is TranslationPath.MACHINE for r in results)
    assert sum(len(c[3]) for c in calls) == 5
    assert max(len(c[3]) for c in calls) <= 2
    assert engine.pending == 0
    await engine.aclose()


async def test_closed_engine_refuses_work(nllb: TranslationModel) -> None:
    engine = TranslationEngine([nllb])
    await engine.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await engine.translate(TEXT, "fr", ["ja"])
