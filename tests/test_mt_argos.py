"""The real Argos Translate zh→en package (OPUS-MT, CC BY 4.0; ../shared/data/models) through the engine:
installed with models/argos.py, loaded from the models folder, translating Chinese medical sentences
from TICO-19, pivoting into French through a random-weight en→fr package built here in the same format,
and keeping glossary terms. Skipped on a plain clone; CI (BABELCALL_REQUIRE_SHARED) fails instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from argos_packages import REAL_FOLDER, build_package, require_real_package
from mt_models import real_calls, replace_calls

from models import argos
from mt import TranslationEngine, TranslationModel
from mt.families import ModelFamily
from protocol.captions import TranslationPath
from protocol.glossary import Glossary

pytestmark = pytest.mark.slow

# TICO-19 dev (CMU_1, doctor-patient speech): the Chinese, and words its English must contain.
TICO_MEDICAL = [
    ("现在您有这种胸痛症状吗？", ["chest pain"]),  # CMU_1:8 "and are you having this chest pain now?"
    ("还需要检查一下胆固醇和血压", ["cholesterol", "blood pressure"]),  # CMU_1:4
    ("我今天有些头痛和发热", ["headache", "fever"]),  # CMU_1:82
    ("我还有咳嗽症状", ["cough"]),  # CMU_1:14
    ("我偶尔会有胸痛症状", ["chest pain"]),  # CMU_1:110
    ("还有任何其他疾病和慢性健康问题吗？比如，糖尿病。", ["chronic", "diabetes"]),  # CMU_1:54
]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the real zh→en package (installed as an operator would) and a
    random-weight en→fr package in the same format."""
    real = require_real_package()
    root = tmp_path_factory.mktemp("argos-real")
    models = root / "models"
    argos.install_archive(real, models)
    argos.install_archive(build_package(root / "built", "en", "fr"), models)
    return models


@pytest.fixture
async def engine(models_dir: Path) -> TranslationEngine:
    engine = TranslationEngine.from_directory(models_dir, device="auto", cpu_threads=2)
    yield engine
    await engine.aclose()


def zh_en(engine: TranslationEngine) -> TranslationModel:
    return next(m for m in engine.models if m.pair == ("zh", "en"))


async def test_chinese_medical_sentences_come_out_as_english_with_their_content_words(
    engine: TranslationEngine,
) -> None:
    assert zh_en(engine).name == REAL_FOLDER and zh_en(engine).family is ModelFamily.ARGOS
    for chinese, words in TICO_MEDICAL:
        result = (await engine.translate(chinese, "zh", ["en"]))["en"]
        assert result.path is TranslationPath.MACHINE and result.model == REAL_FOLDER
        english = result.text.lower()
        for word in words:
            assert word in english, (chinese, result.text)
        # The model is sure of these: the caption is not marked.
        assert result.logprob is not None and not result.uncertain, (chinese, result.logprob)
        # Detokenised as the package expects: no SentencePiece marks, spaces between words.
        assert "▁" not in result.text and " " in result.text.strip()
        assert not any("\u4e00" <= char <= "\u9fff" for char in result.text)


async def test_scrambled_chinese_comes_out_fluent_but_marked_uncertain(engine: TranslationEngine) -> None:
    # The characters of TICO sentences in random order ("I've got urine and a slow pain in the head."):
    # fluent English a reader could trust, which the model itself scores low.
    result = (await engine.translate("一尿症和检康疾慢舒痛今还", "zh", ["en"]))["en"]
    assert result.path is TranslationPath.MACHINE and result.text
    assert result.uncertain, result.logprob


async def test_a_long_utterance_is_split_into_sentences_and_translated_in_one_call(
    engine: TranslationEngine,
) -> None:
    model = zh_en(engine)
    sentences = [c if c.endswith(("？", "。")) else c + "。" for c, _ in TICO_MEDICAL[:3]]
    one_by_one = [model.translate_batch([s], "zh", "en")[0] for s in sentences]
    calls: list[int] = []
    translator = model._translator  # type: ignore[attr-defined]

    class Counting:
        def translate_batch(self, source: list[list[str]], **options: object) -> object:
            calls.append(len(source))
            return translator.translate_batch(source, **options)

    model._translator = Counting()  # type: ignore[attr-defined]
    try:
        result = (await engine.translate("".join(sentences), "zh", ["en"]))["en"]
    finally:
        model._translator = translator  # type: ignore[attr-defined]
    assert calls == [3]  # three sentences, one model call
    assert result.text == " ".join(one_by_one)  # each as it reads alone, joined


async def test_pivot_zh_en_fr_through_a_package_built_in_the_argos_format(
    engine: TranslationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    en_fr = next(m for m in engine.models if m.pair == ("en", "fr"))
    seen: list[str] = []
    real = real_calls(en_fr)

    def recording(texts: list[str], source: str, target: str) -> list[str]:
        seen.extend(texts)
        return real(texts, source, target)

    replace_calls(monkeypatch, en_fr, recording)
    plan = engine.plan("zh", ["zh", "en", "fr"])
    assert plan.targets["fr"].model_label(False) == f"{REAL_FOLDER}+translate-en_fr-1_0"
    assert not plan.whisper_english  # a text model gives the English: Whisper's second decode is not needed

    result = await engine.translate("我偶尔会有胸痛症状", "zh", ["zh", "en", "fr"])
    assert result["fr"].path is TranslationPath.PIVOT
    assert result["fr"].model == f"{REAL_FOLDER}+translate-en_fr-1_0"
    assert result["fr"].text and result["fr"].note is None  # random weights: meaningless, but French-labelled
    # The second hop read the first hop's real English, shared with the English reader's caption.
    assert seen == [result["en"].text] and "chest pain" in seen[0].lower()
    assert result["zh"].path is TranslationPath.ORIGINAL


async def test_glossary_terms_survive_a_real_translation_in_place(engine: TranslationEngine) -> None:
    glossary = Glossary.from_list(
        [
            {"term": "二甲双胍", "renderings": {"en": "metformin"}},
            "阿司匹林",
            {"term": "张医生", "renderings": {"en": "Dr Zhang"}},
        ]
    )
    cases = [
        ("请每天服用二甲双胍两次，不要服用阿司匹林。", ["metformin", "阿司匹林"]),
        ("张医生说您的血压太高了。", ["Dr Zhang", "blood pressure"]),
        ("您对阿司匹林过敏吗？", ["阿司匹林", "allergic"]),
    ]
    for chinese, expected in cases:
        result = (await engine.translate(chinese, "zh", ["en"], glossary=glossary))["en"]
        assert result.path is TranslationPath.MACHINE, result
        for term in expected:
            assert term in result.text, (chinese, result.text)
        # Placed by the model where the word was, not appended after the sentence (the fallback for a
        # placeholder the model dropped): the text still ends with the model's punctuation.
        assert result.text.endswith((".", "?")), result.text
        assert "[" not in result.text and "ZX" not in result.text


async def test_auto_device_on_a_cpu_host_keeps_the_cpu_fan_out(engine: TranslationEngine) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("a GPU is visible: auto means cuda here")
    assert {m.device for m in engine.models} == {"cpu"}
    assert not engine.finals_lane  # models side by side on the CPU threads, not a GPU finals lane
