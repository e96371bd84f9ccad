"""Builders for tiny CTranslate2 translation models with seeded random weights, for tests.

No real translation weights can be downloaded here, so tests build models of the real shapes: a
SentencePiece model trained on the inline text below, a vocabulary laid out the way the Hugging Face
converters lay it out, and a 2-layer Transformer of random weights. Their output is meaningless but
deterministic, which is all tokenisation, batching, routing and error tests need.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
from ctranslate2.specs import TransformerDecoderModelSpec, TransformerSpec, model_spec

from bench.synthetic import transformer_weight_shape
from mt import ScoredText, TranslationModel
from protocol.languages import LANGUAGES

# A few clinic-style sentences per language: enough for SentencePiece to learn pieces in every script.
CORPUS: dict[str, list[str]] = {
    "en": [
        "Good morning, how are you feeling today?",
        "Where does it hurt, and since when?",
        "Please take this medicine twice a day after meals.",
        "Do you have any allergies to medication?",
        "We will check your blood pressure and temperature.",
        "Come back next week if the pain does not go away.",
        # Glossary placeholders ("[1]") must survive SentencePiece as they do in NLLB's vocabulary.
        "See [1], [2] and [3]: 0 1 2 3 4 5 6 7 8 9 10 11 12.",
    ],
    "fr": [
        "Bonjour, comment vous sentez-vous aujourd'hui ?",
        "Où avez-vous mal, et depuis quand ?",
        "Prenez ce médicament deux fois par jour après les repas.",
        "Avez-vous des allergies aux médicaments ?",
        "Nous allons vérifier votre tension et votre température.",
        "Revenez la semaine prochaine si la douleur ne passe pas.",
    ],
    "es": [
        "Buenos días, ¿cómo se siente hoy?",
        "¿Dónde le duele y desde cuándo?",
        "Tome este medicamento dos veces al día después de las comidas.",
        "¿Tiene alergia a algún medicamento?",
    ],
    "ar": ["صباح الخير، كيف تشعر اليوم؟", "أين يؤلمك ومنذ متى؟", "خذ هذا الدواء مرتين في اليوم بعد الأكل."],
    "zh": ["早上好，你今天感觉怎么样？", "哪里疼，从什么时候开始的？", "请饭后服用这种药，每天两次。"],
    "id": ["Selamat pagi, bagaimana perasaan Anda hari ini?", "Di mana yang sakit, dan sejak kapan?"],
    "ja": ["おはようございます、今日の気分はいかがですか？", "どこが痛みますか、いつからですか？"],
    "ru": ["Доброе утро, как вы себя чувствуете сегодня?", "Где болит и с каких пор?"],
    "th": ["สวัสดีตอนเช้า วันนี้คุณรู้สึกอย่างไร", "เจ็บตรงไหน และเป็นมาตั้งแต่เมื่อไหร่"],
    "tr": ["Günaydın, bugün kendinizi nasıl hissediyorsunuz?", "Neresi ağrıyor ve ne zamandan beri?"],
    "vi": ["Chào buổi sáng, hôm nay bạn cảm thấy thế nào?", "Bạn đau ở đâu và từ khi nào?"],
}

D_MODEL = 32
FFN = 64
SPECIALS = ("<unk>", "<s>", "</s>")


def train_sentencepiece(path: Path, lines: Iterable[str], vocab_size: int = 300) -> list[str]:
    """Train a BPE SentencePiece model into `path`; return its pieces without the control tokens."""
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(lines) * 4),
        model_writer=writer,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # the corpus is too small to promise an exact vocabulary size
        character_coverage=1.0,
        minloglevel=2,
    )
    path.write_bytes(writer.getvalue())
    sp = spm.SentencePieceProcessor(model_file=str(path))
    return [p for p in (sp.id_to_piece(i) for i in range(sp.get_piece_size())) if p not in SPECIALS]


def _fill_random(spec: model_spec.LayerSpec, vocab_size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)

    def fill(layer: model_spec.LayerSpec, scope: str, value: object) -> None:
        if value is None:
            shape = transformer_weight_shape(scope, D_MODEL, FFN, vocab_size)
            array = np.ones(shape) if scope.endswith("gamma") else rng.normal(0.0, 0.5, shape)
            setattr(layer, scope.split("/")[-1], array.astype(np.float32))

    model_spec.visit_spec(spec, fill)


def build_transformer(directory: Path, vocabulary: list[str], *, marian: bool, seed: int = 0) -> None:
    """Save a 2-layer Transformer with seeded random weights and `vocabulary` as a CTranslate2 model."""
    spec = TransformerSpec.from_config(num_layers=2, num_heads=2)
    _fill_random(spec, len(vocabulary), seed)
    # Mirrors ctranslate2's Hugging Face loaders: NLLB/M2M100 start decoding after "</s>"; Marian starts
    # from a zero embedding.
    spec.config.decoder_start_token = "</s>"
    if marian:
        spec.decoder.start_from_zero_embedding = True
    spec.register_source_vocabulary(vocabulary)
    spec.register_target_vocabulary(vocabulary)
    spec.validate()
    spec.optimize()
    directory.mkdir(parents=True, exist_ok=True)
    spec.save(str(directory))


def build_multilingual(
    directory: Path, family: str = "nllb", languages: Iterable[str] = tuple(LANGUAGES), seed: int = 0
) -> Path:
    """An NLLB- or M2M100-shaped model: sentencepiece.bpe.model + fairseq-style shared vocabulary."""
    directory.mkdir(parents=True, exist_ok=True)
    pieces = train_sentencepiece(directory / "sentencepiece.bpe.model", _corpus_lines(LANGUAGES))
    if family == "nllb":
        lang_tokens = [LANGUAGES[c].nllb_code for c in languages]
    else:
        lang_tokens = [f"__{c}__" for c in languages]
    vocabulary = ["<s>", "<pad>", "</s>", "<unk>", *pieces, *lang_tokens]
    build_transformer(directory, vocabulary, marian=False, seed=seed)
    return directory


def build_marian_pair(directory: Path, source: str = "fr", target: str = "en", seed: int = 1) -> Path:
    """An OPUS-MT-shaped pair: source.spm, target.spm and one shared vocabulary of both."""
    directory.mkdir(parents=True, exist_ok=True)
    source_pieces = train_sentencepiece(directory / "source.spm", _corpus_lines([source]), vocab_size=120)
    target_pieces = train_sentencepiece(directory / "target.spm", _corpus_lines([target]), vocab_size=120)
    vocabulary = ["</s>", "<unk>", *dict.fromkeys([*source_pieces, *target_pieces])]
    build_transformer(directory, vocabulary, marian=True, seed=seed)
    return directory


def write_metadata(directory: Path, **metadata: object) -> None:
    (directory / "babelcall.json").write_text(json.dumps(metadata), encoding="utf-8")


def _corpus_lines(codes: Iterable[str]) -> list[str]:
    return [line for code in codes for line in CORPUS.get(code, [])]


GENERATOR_TEMPLATE = "Translate from {source_name} to {target_name}.\n{source_name}: {text}\n{target_name}:"
GENERATOR_SPECIALS = ("<unk>", "<s>", "</s>", "<|im_end|>")


def build_generator(
    directory: Path,
    *,
    tokenizer: str = "sentencepiece",
    languages: Iterable[str] = ("en", "fr", "es", "ja"),
    stop: Iterable[str] = ("<|im_end|>",),
    seed: int = 3,
) -> Path:
    """A decoder-only model (the shape of a small instruct LLM) with seeded random weights, its tokenizer
    (a SentencePiece model, or a Hugging Face tokenizer.json) and a babelcall.json prompt template."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = _corpus_lines(LANGUAGES)
    if tokenizer == "sentencepiece":
        pieces = train_sentencepiece(directory / "tokenizer.model", lines)
        vocabulary = [*SPECIALS, *pieces, "<|im_end|>"]
    else:
        vocabulary = _train_hf_tokenizer(directory / "tokenizer.json", lines)
    spec = TransformerDecoderModelSpec.from_config(num_layers=2, num_heads=2)
    _fill_random(spec, len(vocabulary), seed)
    spec.register_vocabulary(vocabulary)
    spec.validate()
    spec.optimize()
    spec.save(str(directory))
    write_metadata(
        directory,
        family="generator",
        prompt_template=GENERATOR_TEMPLATE,
        stop=list(stop),
        languages=list(languages),
    )
    return directory


def _train_hf_tokenizer(path: Path, lines: list[str]) -> list[str]:
    """A byte-level BPE tokenizer.json like GPT-2's/Qwen's; returns the vocabulary in id order."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE(unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=list(GENERATOR_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf.train_from_iterator(lines * 4, trainer=trainer)
    hf.save(str(path))
    vocab = hf.get_vocab()
    return sorted(vocab, key=vocab.__getitem__)


BatchCall = Callable[[list[str], str, str], list[str]]


def real_calls(model: TranslationModel) -> BatchCall:
    """The model's real call for one target language, usable while `replace_calls` is in effect."""

    def real(texts: list[str], source: str, target: str) -> list[str]:
        rows = [(text, target) for text in texts]
        return [scored.text for scored in type(model).translate_rows(model, rows, source)]

    return real


def replace_calls(monkeypatch: pytest.MonkeyPatch, model: TranslationModel, call: BatchCall) -> None:
    """Route the engine's model calls (`translate_rows`) through `call(texts, source, target)`, one call per
    target language, so a test can count, slow down or break them."""

    def rows_call(rows: list[tuple[str, str]], source: str) -> list[ScoredText]:
        results = [ScoredText("", None)] * len(rows)
        by_target: dict[str, list[int]] = {}
        for index, (_, target) in enumerate(rows):
            by_target.setdefault(target, []).append(index)
        for target, indices in by_target.items():
            for index, text in zip(indices, call([rows[i][0] for i in indices], source, target), strict=True):
                results[index] = ScoredText(text, None)
        return results

    monkeypatch.setattr(model, "translate_rows", rows_call)


def hold_calls(
    monkeypatch: pytest.MonkeyPatch,
    model: TranslationModel,
    held: Callable[[list[str]], bool],
    release: threading.Event,
    timeout_s: float = 10.0,
) -> list[list[str]]:
    """Model calls whose texts satisfy `held` block until `release` (at most `timeout_s`), as a batch
    still running would; every call's texts are recorded, in order, in the list returned."""
    original = real_calls(model)
    calls: list[list[str]] = []

    def holding(texts: list[str], source: str, target: str) -> list[str]:
        calls.append(list(texts))
        if held(texts):
            release.wait(timeout_s)
        return original(texts, source, target)

    replace_calls(monkeypatch, model, holding)
    return calls
