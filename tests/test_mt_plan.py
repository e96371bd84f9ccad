"""The per-room translation plan (mt/plan.py), what a caption may be labelled, and device "auto": with
tiny random-weight models (tests/mt_models.py) whose calls a test may replace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mt_models import build_marian_pair, build_multilingual, replace_calls

from mt import TranslationEngine, load_model
from mt.plan import Note
from mt.scripts import repeats_source
from protocol.captions import NoteCode, TranslationPath

CHINESE = "我胸口疼，已经三天了。"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plan-models")
    build_marian_pair(root / "opus-mt-zh-en", "zh", "en")
    build_marian_pair(root / "opus-mt-en-fr", "en", "fr", seed=2)
    build_marian_pair(root / "opus-mt-vi-en", "vi", "en", seed=3)
    build_multilingual(root / "nllb-tiny", languages=["zh", "en", "fr"])
    return root


def pairs(built: Path, *names: str) -> TranslationEngine:
    return TranslationEngine([load_model(built / name) for name in names])


# --- the plan -----------------------------------------------------------------------------------------


def test_a_plan_says_per_target_how_it_is_reached(built: Path) -> None:
    engine = pairs(built, "opus-mt-zh-en", "opus-mt-en-fr")
    plan = engine.plan("zh", ["zh", "en", "fr", "vi"])
    assert plan.original_read and set(plan.targets) == {"en", "fr", "vi"}
    assert plan.targets["en"].route(False).path is TranslationPath.MACHINE
    assert plan.targets["fr"].model_label(False) == "opus-mt-zh-en+opus-mt-en-fr"
    assert plan.targets["fr"].route(False).path is TranslationPath.PIVOT
    assert plan.targets["vi"].note(True) == Note(NoteCode.NO_MODEL, "not translated: no model for zh→vi")
    assert not plan.whisper_english  # a text model gives the English: no second Whisper decode
    assert plan.partial_targets == {"en", "fr"} and plan.needs_model(False)


def test_whisper_english_is_asked_for_only_where_a_route_starts_from_it(built: Path) -> None:
    engine = pairs(built, "opus-mt-en-fr")
    plan = engine.plan("vi", ["en", "fr"])
    assert plan.whisper_english
    assert plan.targets["en"].route(True).path is TranslationPath.WHISPER
    assert plan.targets["fr"].model_label(True) == "whisper+opus-mt-en-fr"
    assert not plan.needs_model(False) and plan.needs_model(True)
    # Partials come before Whisper's English: shown as spoken, saying that a translation follows.
    shown = plan.as_spoken("Tôi đau ngực")
    assert set(shown) == {"en", "fr"} and plan.partial_targets == frozenset()
    assert {t.note for t in shown.values()} == {
        Note(NoteCode.FOLLOWS_AT_SENTENCE_END, "translation follows when the sentence ends")
    }
    assert all(t.path is TranslationPath.UNTRANSLATED for t in shown.values())
    # A final recognised before anyone read English has no Whisper English: the note says why.
    assert plan.targets["en"].note(False) == Note(
        NoteCode.WHISPER_NEXT_SENTENCE,
        "not translated: vi→en needs Whisper's English, which starts with the next sentence",
    )
    assert not engine.plan("vi", ["vi", "fr"]).targets["fr"].route(False).uses_model


async def test_a_final_without_whisper_english_says_english_starts_with_the_next_sentence(
    built: Path,
) -> None:
    """A reader who switched to English mid-sentence is told the truth, not 'no model for vi→en'."""
    engine = pairs(built, "opus-mt-en-fr")
    result = await engine.translate("Tôi đau ngực", "vi", ["en"])
    assert result["en"].path is TranslationPath.UNTRANSLATED
    assert result["en"].note == Note(
        NoteCode.WHISPER_NEXT_SENTENCE,
        "not translated: vi→en needs Whisper's English, which starts with the next sentence",
    )
    blank = await engine.translate("Tôi đau ngực", "vi", ["en"], whisper_english="  ")
    assert blank["en"].note == result["en"].note  # Whisper produced nothing: no English from it either
    await engine.aclose()


def test_prefer_whisper_english_per_spoken_language(built: Path) -> None:
    models = [load_model(built / name) for name in ("opus-mt-zh-en", "opus-mt-en-fr")]
    default = TranslationEngine(models).plan("zh", ["en", "fr"])
    assert default.targets["en"].model_label(True) == "opus-mt-zh-en" and not default.whisper_english
    preferring = TranslationEngine(models, prefer_whisper_english=["zh"]).plan("zh", ["en", "fr"])
    assert preferring.whisper_english
    assert preferring.targets["en"].model_label(True) == "whisper"
    assert preferring.targets["fr"].model_label(True) == "whisper+opus-mt-en-fr"
    # Without Whisper's English (partials) the text model still serves.
    assert preferring.targets["en"].model_label(False) == "opus-mt-zh-en"
    with pytest.raises(ValueError, match="unknown language"):
        TranslationEngine(models, prefer_whisper_english=["xx"])


# --- never a copy labelled as a translation ---------------------------------------------------------------


def copying(monkeypatch: pytest.MonkeyPatch, model: object) -> None:
    replace_calls(monkeypatch, model, lambda texts, source, target: list(texts))  # type: ignore[arg-type]


async def test_a_model_that_copies_the_speakers_words_is_not_labelled_as_translating(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_model(built / "nllb-tiny")
    copying(monkeypatch, model)
    engine = TranslationEngine([model])
    result = await engine.translate(CHINESE, "zh", ["en", "fr"])
    for target, name in (("en", "English"), ("fr", "French")):
        assert result[target].path is TranslationPath.UNTRANSLATED, result[target]
        assert result[target].note == Note(
            NoteCode.REPEATED_SOURCE, f"not translated: nllb-tiny did not produce {name}"
        )
        assert result[target].text == CHINESE and result[target].model is None
    await engine.aclose()


async def test_whisper_english_in_the_speakers_language_is_not_english(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whisper's translate task answered in Chinese: neither the English caption nor the pivot into
    French may carry it as a translation."""
    engine = pairs(built, "opus-mt-en-fr")
    result = await engine.translate(CHINESE, "zh", ["en", "fr"], whisper_english="我胸口疼，三天了。")
    for target in ("en", "fr"):
        assert result[target].path is TranslationPath.UNTRANSLATED, result[target]
        assert result[target].note == Note(
            NoteCode.REPEATED_SOURCE, "not translated: whisper did not produce English"
        )
    english = await engine.translate(CHINESE, "zh", ["en"], whisper_english="My chest hurts, for three days.")
    assert english["en"].path is TranslationPath.WHISPER and english["en"].model == "whisper"
    await engine.aclose()


def test_copies_are_told_from_translations() -> None:
    assert repeats_source("患者胸痛三天", "患者胸痛三天，血压很高", "zh", "en")
    assert repeats_source("病人胸口痛了三天", "患者胸痛三天", "zh", "en")  # Whisper's Chinese paraphrase
    assert not repeats_source("The patient has had chest pain for three days.", "患者胸痛三天", "zh", "en")
    # A drug name in Latin letters inside a Chinese caption weighs one word: still Chinese.
    assert not repeats_source("请服用 Paracetamol 两次", "Please take paracetamol twice", "en", "zh")
    assert not repeats_source("Bonjour", "Bonjour", "fr", "en")  # one script: nothing can be told
    # A name left in Chinese inside an English sentence is not a copy of the sentence.
    assert not repeats_source("Mr Wang (王先生) has a fever.", "王先生发烧了", "zh", "en")


# --- device "auto" --------------------------------------------------------------------------------


def test_auto_device_on_a_cpu_host_is_the_cpu_with_its_fan_out(built: Path, tmp_path: Path) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("a GPU is visible: auto means cuda here")
    for name in ("opus-mt-zh-en", "opus-mt-en-fr"):
        shutil.copytree(built / name, tmp_path / name)
    engine = TranslationEngine.from_directory(tmp_path, device="auto", cpu_threads=2)
    assert [m.device for m in engine.models] == ["cpu", "cpu"]
    assert not engine.finals_lane  # two models side by side on the CPU's threads, not a GPU finals lane
    assert load_model(built / "opus-mt-zh-en", device="auto").device == "cpu"


async def test_the_server_setting_chooses_whisper_english(built: Path, tmp_path: Path) -> None:
    from server.app import load_engine
    from server.config import load_config

    for name in ("opus-mt-zh-en", "opus-mt-en-fr"):
        shutil.copytree(built / name, tmp_path / name)
    environ = {
        "BABELCALL_TRANSLATION_MODELS_DIR": str(tmp_path),
        "BABELCALL_MT_PREFER_WHISPER_ENGLISH": "zh, es",
    }
    config = load_config(environ=environ)
    assert config.mt_prefer_whisper_english == ("zh", "es")
    engine = load_engine(config)
    assert engine.plan("zh", ["en"]).targets["en"].model_label(True) == "whisper"
    assert engine.plan("zh", ["en"]).whisper_english
    await engine.aclose()
