"""Loading one CTranslate2 translation model directory and translating batches with it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ctranslate2

from mt.families import ModelFamily, language_token
from mt.tokenization import Codec, MarianCodec, SentencePieceCodec
from protocol.languages import LANGUAGES

METADATA_FILE = "babelcall.json"
NLLB_SENTENCEPIECE = "sentencepiece.bpe.model"
# Hugging Face names OPUS-MT pairs "opus-mt-fr-en"; the Tatoeba-Challenge ones "opus-mt-tc-big-fr-en".
_OPUS_MT_NAME = re.compile(r"opus-mt-(?:tc-[a-z]+-)?([a-z]{2,3})-([a-z]{2,3})$")
_DEFAULT_BEAM_SIZE = 2  # beam 2 keeps most of beam 4's quality at about half the latency of live captions


class ModelLoadError(Exception):
    """A directory is not a usable translation model; the message says what is missing and how to fix it."""


class TranslationModel:
    """One loaded translation model. `translate_batch` is blocking: call it from a worker thread."""

    def __init__(
        self,
        name: str,
        family: ModelFamily,
        translator: ctranslate2.Translator,
        codec: Codec,
        *,
        languages: Iterable[str] = (),
        pair: tuple[str, str] | None = None,
        beam_size: int = _DEFAULT_BEAM_SIZE,
    ) -> None:
        self.name = name
        self.family = family
        self.languages = frozenset(languages) if pair is None else frozenset(pair)
        self.pair = pair
        self.beam_size = beam_size
        self._translator = translator
        self._codec = codec

    def __repr__(self) -> str:
        return f"TranslationModel({self.name!r}, {self.family.value}, {sorted(self.languages)})"

    def covers(self, source: str, target: str) -> bool:
        if source == target:
            return False
        if self.pair is not None:
            return (source, target) == self.pair
        return source in self.languages and target in self.languages

    def translate_batch(self, texts: list[str], source: str, target: str) -> list[str]:
        if not self.covers(source, target):
            raise ValueError(f"{self.name} does not translate {source}→{target}")
        if not texts:
            return []
        batch = self._codec.encode(texts, source, target)
        longest = max(len(tokens) for tokens in batch.source)
        results = self._translator.translate_batch(
            batch.source,
            target_prefix=batch.target_prefix,
            beam_size=self.beam_size,
            # A bound on output length keeps a confused model (or a random-weight test model) from
            # decoding for seconds; real translations are rarely 3x their source in tokens.
            max_decoding_length=3 * longest + 10,
        )
        return [self._codec.decode(result.hypotheses[0], target) for result in results]


def load_model(
    path: Path, *, device: str = "cpu", compute_type: str = "int8", intra_threads: int = 2
) -> TranslationModel:
    """Load a CTranslate2 model directory, detecting its family (see docs in mt/__init__.py)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelLoadError(f"{path}: not a directory")
    if not (path / "model.bin").is_file():
        raise ModelLoadError(
            f"{path}: no model.bin, so not a CTranslate2 model; convert the Hugging Face model with "
            "ct2-transformers-converter (see mt.catalogue for the command)"
        )
    metadata = _read_metadata(path)
    source_vocab, target_vocab = _read_vocabularies(path)
    family = _detect_family(path, metadata, target_vocab)
    name = str(metadata.get("name") or path.name)

    codec: Codec
    if family is ModelFamily.MARIAN:
        pair = _marian_pair(path, metadata)
        for spm_file in ("source.spm", "target.spm"):
            if not (path / spm_file).is_file():
                raise ModelLoadError(
                    f"{path}: Marian model lacks {spm_file}; "
                    "reconvert with --copy_files source.spm target.spm"
                )
        codec = MarianCodec(path / "source.spm", path / "target.spm")
        languages: frozenset[str] = frozenset(pair)
    else:
        pair = None
        codec = SentencePieceCodec(family, _sentencepiece_file(path))
        languages = _multilingual_languages(path, family, metadata, source_vocab, target_vocab)

    try:
        translator = ctranslate2.Translator(
            str(path), device=device, compute_type=compute_type, intra_threads=intra_threads
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelLoadError(
            f"{path}: CTranslate2 could not load the model on {device}/{compute_type}: {exc}"
        ) from exc
    return TranslationModel(name, family, translator, codec, languages=languages, pair=pair)


def _read_metadata(path: Path) -> dict[str, Any]:
    file = path / METADATA_FILE
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{file}: expected a JSON object")
    return data


def _read_vocabulary_file(path: Path, stem: str) -> set[str] | None:
    json_file, text_file = path / f"{stem}.json", path / f"{stem}.txt"
    if json_file.is_file():
        return set(json.loads(json_file.read_text(encoding="utf-8")))
    # CTranslate2 before 3.x wrote one token per line.
    if text_file.is_file():
        return set(text_file.read_text(encoding="utf-8").splitlines())
    return None


def _read_vocabularies(path: Path) -> tuple[set[str], set[str]]:
    shared = _read_vocabulary_file(path, "shared_vocabulary")
    if shared is not None:
        return shared, shared
    source = _read_vocabulary_file(path, "source_vocabulary")
    target = _read_vocabulary_file(path, "target_vocabulary")
    if source is None or target is None:
        raise ModelLoadError(
            f"{path}: no CTranslate2 vocabulary "
            "(shared_vocabulary.json, or source_vocabulary.json and target_vocabulary.json)"
        )
    return source, target


def _detect_family(path: Path, metadata: dict[str, Any], target_vocab: set[str]) -> ModelFamily:
    declared = metadata.get("family")
    if declared is not None:
        try:
            return ModelFamily(declared)
        except ValueError:
            known = ", ".join(f.value for f in ModelFamily)
            raise ModelLoadError(
                f"{path / METADATA_FILE}: unknown family {declared!r}; known: {known}"
            ) from None
    if (path / "source.spm").is_file() and (path / "target.spm").is_file():
        return ModelFamily.MARIAN
    if "eng_Latn" in target_vocab:
        return ModelFamily.NLLB
    if "__en__" in target_vocab:
        return ModelFamily.M2M100
    raise ModelLoadError(
        f"{path}: cannot tell the model family: no source.spm + target.spm (Marian pair), and the vocabulary "
        f'has neither "eng_Latn" (NLLB) nor "__en__" (M2M100); add {METADATA_FILE} with {{"family": ...}}'
    )


def _sentencepiece_file(path: Path) -> Path:
    preferred = path / NLLB_SENTENCEPIECE
    if preferred.is_file():
        return preferred
    candidates = sorted(path.glob("*.model"))
    if not candidates:
        raise ModelLoadError(
            f"{path}: no SentencePiece model ({NLLB_SENTENCEPIECE}); copy it from the Hugging Face "
            f"repository or reconvert with --copy_files {NLLB_SENTENCEPIECE}"
        )
    return candidates[0]


def _marian_pair(path: Path, metadata: dict[str, Any]) -> tuple[str, str]:
    source, target = metadata.get("source"), metadata.get("target")
    if source is None or target is None:
        match = _OPUS_MT_NAME.search(path.name)
        if match is None:
            raise ModelLoadError(
                f"{path}: cannot tell the Marian model's language pair; "
                "name the directory opus-mt-<src>-<tgt> "
                f'or add {METADATA_FILE} with {{"family": "marian", "source": "fr", "target": "en"}}'
            )
        source, target = match.groups()
    for code in (source, target):
        if code not in LANGUAGES:
            raise ModelLoadError(f"{path}: language {code!r} is not one BabelCall supports")
    return source, target


def _multilingual_languages(
    path: Path, family: ModelFamily, metadata: dict[str, Any], source_vocab: set[str], target_vocab: set[str]
) -> frozenset[str]:
    declared = metadata.get("languages")
    candidates = LANGUAGES.keys() if declared is None else [c for c in declared if c in LANGUAGES]
    languages = frozenset(
        code
        for code in candidates
        if language_token(family, code) in source_vocab and language_token(family, code) in target_vocab
    )
    if len(languages) < 2:
        raise ModelLoadError(
            f"{path}: {family.value} vocabulary holds tokens for fewer than two BabelCall languages "
            f"({sorted(languages)})"
        )
    return languages
