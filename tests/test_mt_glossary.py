"""Glossary protection through every translation path, and the cache key that carries it."""

from __future__ import annotations

from pathlib import Path

import pytest
from mt_models import build_marian_pair, build_multilingual, replace_calls

from mt import TranslationEngine, TranslationModel, load_model
from mt.glossary import ProtectedText, placeholder, protect, restore
from mt.tokenization import SentencePieceCodec
from protocol.captions import TranslationPath
from protocol.glossary import Glossary

GLOSSARY = Glossary.from_list(
    [
        "Doliprane",
        {"term": "paracétamol", "renderings": {"en": "acetaminophen", "ja": "アセトアミノフェン"}},
        "Dr Okafor",
    ]
)
TEXT = "Prenez du Doliprane, pas de paracétamol, dit Dr Okafor."
# What a good model makes of TEXT in Japanese: the words translated, the placeholders kept.
JAPANESE = "[1]を飲んでください。[2]ではありません、と[3]は言います。"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("glossary-models")
    build_multilingual(root / "nllb-tiny")
    build_multilingual(root / "nllb-tiny-en", languages=["en", "ja", "th"], seed=2)
    build_marian_pair(root / "opus-mt-fr-en")
    return root


def copying(model: TranslationModel, monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    """Stand in for a good model, which copies placeholders: output = input, tagged with the pair; TEXT
    into Japanese as JAPANESE (French words copied into a Japanese caption would be refused as a copy)."""

    def echo(texts: list[str], source: str, target: str) -> list[str]:
        calls.extend(texts)
        whole = ("[1]", "[2]", "[3]")
        return [
            JAPANESE if target == "ja" and all(p in t for p in whole) else f"<{target}> {t}" for t in texts
        ]

    replace_calls(monkeypatch, model, echo)


def test_protect_replaces_whole_terms_case_insensitively() -> None:
    protected = protect(TEXT + " DOLIPRANE again; Doliprane500 is not a term.", GLOSSARY, "fr")
    assert protected.text == "Prenez du [1], pas de [2], dit [3]. [1] again; Doliprane500 is not a term."
    assert [t.term for t in protected.terms] == ["Doliprane", "paracétamol", "Dr Okafor"]
    assert restore(protected.text, protected, "ja").startswith(
        "Prenez du Doliprane, pas de アセトアミノフェン"
    )
    assert protect(TEXT, None, "fr") == ProtectedText(TEXT, ())
    # In scripts without spaces a term may sit inside a run of letters.
    zh = Glossary.from_list(["布洛芬"])
    assert protect("请服用布洛芬两次", zh, "zh").text == "请服用[1]两次"


def test_source_language_renderings_are_recognised_too() -> None:
    protected = protect("Take acetaminophen.", GLOSSARY, "en")
    assert protected.text == "Take [1]." and protected.terms[0].term == "paracétamol"
    assert restore("Prenez [1].", protected, "fr") == "Prenez paracétamol."


def test_restore_tolerates_model_spacing_and_appends_what_was_dropped() -> None:
    protected = protect(TEXT, GLOSSARY, "fr")
    assert restore("取 ［ 1 ］ 和 【2】", protected, "ja") == "取 Doliprane 和 アセトアミノフェン Dr Okafor"
    assert restore("nothing kept", protected, "en") == "nothing kept Doliprane acetaminophen Dr Okafor"
    assert (
        restore("[9] is not ours [1]", protected, "en") == "[9] is not ours Doliprane acetaminophen Dr Okafor"
    )


def test_placeholders_survive_sentencepiece(built: Path) -> None:
    codec = SentencePieceCodec(
        load_model(built / "nllb-tiny").family, built / "nllb-tiny" / "sentencepiece.bpe.model"
    )
    protected = protect(TEXT, GLOSSARY, "fr").text
    tokens = codec.encode([protected], "fr", "en").source[0]
    assert "<unk>" not in tokens
    assert codec.decode(tokens[1:-1], "en") == protected


async def test_direct_path_maps_terms_per_target(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nllb = load_model(built / "nllb-tiny")
    calls: list[str] = []
    copying(nllb, monkeypatch, calls)
    engine = TranslationEngine([nllb])
    result = await engine.translate(TEXT, "fr", ["en", "ja", "fr"], glossary=GLOSSARY)
    assert calls == ["Prenez du [1], pas de [2], dit [3]."] * 2  # the model never sees the terms
    assert result["en"].text == "<en> Prenez du Doliprane, pas de acetaminophen, dit Dr Okafor."
    assert (
        result["ja"].text
        == "Dolipraneを飲んでください。アセトアミノフェンではありません、とDr Okaforは言います。"
    )
    assert result["fr"].text == TEXT and result["fr"].path is TranslationPath.ORIGINAL
    await engine.aclose()


async def test_a_real_model_that_drops_placeholders_still_keeps_every_term(built: Path) -> None:
    engine = TranslationEngine([load_model(built / "nllb-tiny")])
    result = await engine.translate(TEXT, "fr", ["ja"], glossary=GLOSSARY)
    text = result["ja"].text
    assert result["ja"].path is TranslationPath.MACHINE
    for term in ("Doliprane", "アセトアミノフェン", "Dr Okafor"):
        assert term in text
    assert "[1]" not in text and "paracétamol" not in text
    await engine.aclose()


async def test_pivot_carries_placeholders_through_both_hops(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marian, nllb_en = load_model(built / "opus-mt-fr-en"), load_model(built / "nllb-tiny-en")
    calls: list[str] = []
    copying(marian, monkeypatch, calls)
    copying(nllb_en, monkeypatch, calls)
    engine = TranslationEngine([marian, nllb_en])
    result = await engine.translate(TEXT, "fr", ["ja", "en"], glossary=GLOSSARY)
    assert calls == ["Prenez du [1], pas de [2], dit [3].", "<en> Prenez du [1], pas de [2], dit [3]."]
    assert result["ja"].path is TranslationPath.PIVOT
    assert (
        result["ja"].text
        == "Dolipraneを飲んでください。アセトアミノフェンではありません、とDr Okaforは言います。"
    )
    assert result["en"].text == "<en> Prenez du Doliprane, pas de acetaminophen, dit Dr Okafor."
    await engine.aclose()


async def test_whisper_english_and_its_pivot_keep_terms(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nllb_en = load_model(built / "nllb-tiny-en")
    calls: list[str] = []
    copying(nllb_en, monkeypatch, calls)
    engine = TranslationEngine([nllb_en])
    # Whisper rendered the drug name its own way and dropped the doctor's name.
    english = "Take Doliprane, not paracetamol, says the doctor."
    result = await engine.translate(TEXT, "fr", ["en", "ja"], whisper_english=english, glossary=GLOSSARY)
    assert result["en"].path is TranslationPath.WHISPER
    assert result["en"].text == "Take Doliprane, not paracetamol, says the doctor. acetaminophen Dr Okafor"
    assert calls == ["Take [1], not paracetamol, says the doctor."]
    assert result["ja"].path is TranslationPath.PIVOT
    assert result["ja"].text.startswith("<ja> Take Doliprane, not paracetamol")
    assert result["ja"].text.endswith("アセトアミノフェン Dr Okafor")
    await engine.aclose()


async def test_cache_key_holds_model_and_glossary(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nllb = load_model(built / "nllb-tiny")
    calls: list[str] = []
    copying(nllb, monkeypatch, calls)
    engine = TranslationEngine([nllb])
    plain = await engine.translate(TEXT, "fr", ["en"])
    protected = await engine.translate(TEXT, "fr", ["en"], glossary=GLOSSARY)
    other = Glossary.from_list([{"term": "Doliprane", "renderings": {"en": "Tylenol"}}])
    renamed = await engine.translate(TEXT, "fr", ["en"], glossary=other)
    again = await engine.translate(TEXT, "fr", ["en"], glossary=GLOSSARY)
    assert plain["en"].text == f"<en> {TEXT}"
    assert "acetaminophen" in protected["en"].text and "Tylenol" in renamed["en"].text
    assert again == protected
    # Three distinct model inputs (no glossary, three terms, one term); the repeat came from the cache.
    assert calls == [
        TEXT,
        "Prenez du [1], pas de [2], dit [3].",
        "Prenez du [1], pas de paracétamol, dit Dr Okafor.",
    ]
    # Another model with the same name does not share cache entries.
    twin = load_model(built / "nllb-tiny")
    twin_calls: list[str] = []
    copying(twin, monkeypatch, twin_calls)
    twin_engine_result = await TranslationEngine([twin]).translate(TEXT, "fr", ["en"])
    assert twin_calls == [TEXT] and twin_engine_result == plain
    await engine.aclose()


def test_placeholder_format() -> None:
    assert placeholder(1) == "[1]"


@pytest.mark.parametrize(
    ("text", "language", "protected"),
    [
        # Turkish: the glossary's capitals against recognition's dotted and dotless i.
        ("Kolunda kırık var", "tr", "Kolunda [1] var"),
        ("ilaç aldı", "tr", "[1] aldı"),
        ("ıbuprofen 400 mg", "tr", "[1] 400 mg"),
        ("Parol'ü aldı", "tr", "[1]'ü aldı"),  # a suffix after an apostrophe
        # Arabic: joined "and"/"the", and short-vowel marks written or not.
        ("خذ والباراسيتامول الآن", "ar", "خذ وال[1] الآن"),
        ("خذ البَارَاسِيتَامُول", "ar", "خذ ال[1]"),
        ("خذ باراسيتامولات", "ar", "خذ باراسيتامولات"),  # another word
        # Chinese and Thai are written without spaces between words.
        ("请服用布洛芬两次", "zh", "请服用[1]两次"),
        ("ให้ยาพาราสองเม็ด", "th", "ให้[1]สองเม็ด"),
        # Vietnamese: the same letters typed composed or decomposed; the diacritics tell words apart.
        ("Uống thuốc hạ sốt nhé", "vi", "Uống [1] nhé"),
        ("Uống thuo\u0302\u0301c ha\u0323 so\u0302\u0301t nhé", "vi", "Uống [1] nhé"),
        ("Uống thuoc ha sot nhé", "vi", "Uống thuoc ha sot nhé"),
        # Whole words elsewhere.
        ("IBUPROFEN twice", "en", "[1] twice"),
        ("Ibuprofens", "en", "Ibuprofens"),
    ],
)
def test_terms_are_found_as_each_language_writes_them(text: str, language: str, protected: str) -> None:
    glossary = Glossary.from_list(
        ["KIRIK", "Ibuprofen", "Parol", "باراسيتامول", "布洛芬", "ยาพารา", "thuốc hạ sốt", "İlaç"]
    )
    result = protect(text, glossary, language)
    assert result.text == protected
    # Restoring gives the terms as the glossary writes them, never a lost or doubled one.
    restored = restore(result.text, result, "en")
    for term in result.terms:
        assert restored.count(term.term) == result.text.count(placeholder(result.terms.index(term) + 1))
