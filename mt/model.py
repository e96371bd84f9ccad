"""Loading one CTranslate2 translation model directory and translating batches with it."""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import ctranslate2

from models import argos
from mt.errors import DeviceUnavailableError, ModelLoadError
from mt.families import ModelFamily, language_token
from mt.routing import covers
from mt.sentences import join_sentences, split_sentences
from mt.tokenization import (
    EOS,
    ArgosCodec,
    Codec,
    MarianCodec,
    PromptTokenizer,
    SentencePieceCodec,
    load_prompt_tokenizer,
)
from protocol.languages import LANGUAGES, language

log = logging.getLogger(__name__)

METADATA_FILE = "babelcall.json"
NLLB_SENTENCEPIECE = "sentencepiece.bpe.model"
# Hugging Face names OPUS-MT pairs "opus-mt-fr-en"; the Tatoeba-Challenge ones "opus-mt-tc-big-fr-en".
_OPUS_MT_NAME = re.compile(r"opus-mt-(?:tc-[a-z]+-)?([a-z]{2,3})-([a-z]{2,3})$")
DEFAULT_BEAM_SIZE = 2  # beam 2 keeps most of beam 4's quality at about half the latency of live captions


class ScoredText(NamedTuple):
    """A model's translation and its mean token log probability (None where no model scored it)."""

    text: str
    logprob: float | None


class TranslationModel(ABC):
    """One loaded translation model. `translate_batch` is blocking: call it from a worker thread."""

    def __init__(
        self,
        name: str,
        family: ModelFamily,
        *,
        languages: Iterable[str] = (),
        pair: tuple[str, str] | None = None,
        device: str = "cpu",
    ) -> None:
        self.name = name
        self.family = family
        self.languages = frozenset(languages) if pair is None else frozenset(pair)
        self.pair = pair
        self.device = device

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.family.value}, {sorted(self.languages)})"

    def covers(self, source: str, target: str) -> bool:
        return covers(source, target, pair=self.pair, languages=self.languages)

    def translate_batch(self, texts: list[str], source: str, target: str) -> list[str]:
        return [scored.text for scored in self.translate_rows([(text, target) for text in texts], source)]

    def translate_rows(self, rows: list[tuple[str, str]], source: str) -> list[ScoredText]:
        """Translate (text, target language) rows from `source`, each with its score: what the engine
        calls. This default runs one model call per target language; multilingual models override it
        with a single call."""
        results = [ScoredText("", None)] * len(rows)
        by_target: dict[str, list[int]] = {}
        for index, (_, target) in enumerate(rows):
            by_target.setdefault(target, []).append(index)
        for target, indices in by_target.items():
            texts = [rows[i][0] for i in indices]
            translated = self._checked(
                partial(self._translate_batch, texts, source, target), source, [target]
            )
            for index, scored in zip(indices, translated, strict=True):
                results[index] = scored
        return results

    def _checked(
        self, call: Callable[[], list[ScoredText]], source: str, targets: Sequence[str]
    ) -> list[ScoredText]:
        """Run a model call after checking the pairs, turning CUDA library failures into clear errors."""
        for target in targets:
            if not self.covers(source, target):
                raise ValueError(f"{self.name} does not translate {source}→{target}")
        try:
            return call()
        except RuntimeError as exc:
            explained = explain_device_error(exc, self.device)
            if explained is None:
                raise
            raise DeviceUnavailableError(explained) from exc

    @abstractmethod
    def _translate_batch(self, texts: list[str], source: str, target: str) -> list[ScoredText]: ...


class Seq2SeqModel(TranslationModel):
    """NLLB-200, M2M100, OPUS-MT/Marian and Argos packages through `ctranslate2.Translator`."""

    def __init__(
        self,
        name: str,
        family: ModelFamily,
        translator: ctranslate2.Translator,
        codec: Codec,
        *,
        languages: Iterable[str] = (),
        pair: tuple[str, str] | None = None,
        beam_size: int = DEFAULT_BEAM_SIZE,
        device: str = "cpu",
    ) -> None:
        super().__init__(name, family, languages=languages, pair=pair, device=device)
        self.beam_size = beam_size
        self._translator = translator
        self._codec = codec

    @property
    def multi_target(self) -> bool:
        """Multilingual models choose the output language per row (a target-language prefix), so one
        call can serve every listener language of an utterance."""
        return self.family in (ModelFamily.NLLB, ModelFamily.M2M100)

    def translate_rows(self, rows: list[tuple[str, str]], source: str) -> list[ScoredText]:
        """All rows in ONE model call: each row carries its target language as a prefix token. On a GPU a
        batch costs about what one row does, so this keeps fan-out to many listener languages cheap."""
        if not self.multi_target:
            return super().translate_rows(rows, source)
        if not rows:
            return []
        targets = sorted({target for _, target in rows})
        return self._checked(partial(self._decode_rows, rows, source), source, targets)

    def _translate_batch(self, texts: list[str], source: str, target: str) -> list[ScoredText]:
        return self._decode_rows([(text, target) for text in texts], source)

    def _decode_rows(self, rows: list[tuple[str, str]], source: str) -> list[ScoredText]:
        """Each row's text is split into sentences (the models were trained on single sentences); every
        sentence of every row goes into one model call, and each row's translations are joined again.
        A row's score is its sentences' mean token log probability, weighted by their lengths."""
        sentences_of = [split_sentences(text, source) for text, _ in rows]
        sources: list[list[str]] = []
        prefixes: list[list[str]] = []
        targets: list[str] = []
        for sentences, (_, target) in zip(sentences_of, rows, strict=True):
            if not sentences:
                continue
            encoded = self._codec.encode(sentences, source, target)
            sources += encoded.source
            targets += [target] * len(sentences)
            if encoded.target_prefix is not None:
                prefixes += encoded.target_prefix
        if not sources:
            return [ScoredText("", None) for _ in rows]
        shortest, longest = self.decoding_bounds(max(len(tokens) for tokens in sources))
        results = self._translator.translate_batch(
            sources,
            target_prefix=prefixes or None,
            beam_size=self.beam_size,
            min_decoding_length=shortest,
            max_decoding_length=longest,
            replace_unknowns=self._codec.replace_unknowns,
            return_scores=True,
        )
        # (text, mean token log probability, tokens counted in that mean: the hypothesis and its end)
        decoded = iter(
            (
                self._codec.decode(result.hypotheses[0], target),
                result.scores[0],
                len(result.hypotheses[0]) + 1,
            )
            for result, target in zip(results, targets, strict=True)
        )
        rows_out = []
        for sentences, (_, target) in zip(sentences_of, rows, strict=True):
            parts = [next(decoded) for _ in sentences]
            rows_out.append(ScoredText(join_sentences([text for text, _, _ in parts], target), _mean(parts)))
        return rows_out

    def decoding_bounds(self, longest_source: int) -> tuple[int, int]:
        """(min, max) target tokens for a batch whose longest source has `longest_source` tokens. The
        bound keeps a confused model from decoding for seconds; real translations are rarely 3x their
        source in tokens."""
        return 1, 3 * longest_source + 10


class GeneratorModel(TranslationModel):
    """A decoder-only instruct model through `ctranslate2.Generator`, driven by a prompt template.

    babelcall.json: {"family": "generator", "prompt_template": "...{source_name}...{target_name}...{text}...",
    "stop": [...], "languages": [...]}. The template may also use {source_code} and {target_code}; literal
    braces are doubled, as in str.format. Stop strings that are single vocabulary tokens end decoding
    early; longer ones cut the text afterwards (decoding is bounded by max_length either way).
    """

    def __init__(
        self,
        name: str,
        generator: ctranslate2.Generator,
        tokenizer: PromptTokenizer,
        *,
        prompt_template: str,
        stop: Sequence[str],
        end_tokens: Sequence[str],
        languages: Iterable[str],
        device: str = "cpu",
    ) -> None:
        super().__init__(name, ModelFamily.GENERATOR, languages=languages, device=device)
        self.prompt_template = prompt_template
        self.stop = tuple(s for s in stop if s)
        self._end_tokens = list(end_tokens)
        self._generator = generator
        self._tokenizer = tokenizer

    def prompt(self, text: str, source: str, target: str) -> str:
        src, tgt = language(source), language(target)
        return self.prompt_template.format_map(
            {
                "source_name": src.name,
                "target_name": tgt.name,
                "source_code": src.code,
                "target_code": tgt.code,
                "text": text,
            }
        )

    def _translate_batch(self, texts: list[str], source: str, target: str) -> list[ScoredText]:
        prompts = [self._tokenizer.encode(self.prompt(t, source, target)) for t in texts]
        longest_text = max(self._tokenizer.count(t) for t in texts)
        results = self._generator.generate_batch(
            prompts,
            max_length=3 * longest_text + 10,  # counts generated tokens only (prompt excluded)
            end_token=self._end_tokens,
            include_prompt_in_result=False,
            beam_size=1,  # greedy: instruct models translate well greedily and twice as fast as beam 2
            return_scores=True,
        )
        return [
            ScoredText(self._cut(self._tokenizer.decode(r.sequences[0], r.sequences_ids[0])), r.scores[0])
            for r in results
        ]

    def _cut(self, text: str) -> str:
        for stop in self.stop:
            index = text.find(stop)
            if index >= 0:
                text = text[:index]
        return text.strip()


def _mean(parts: Sequence[tuple[str, float, int]]) -> float | None:
    """The mean token log probability of (text, score, tokens) sentences, each score already a mean."""
    tokens = sum(count for _, _, count in parts)
    if not tokens:
        return None
    return round(sum(score * count for _, score, count in parts) / tokens, 4)


_CUBLAS_HINT = (
    "install NVIDIA's CUDA 12 cuBLAS (`pip install nvidia-cublas-cu12`, then add its "
    "site-packages/nvidia/cublas/lib directory to LD_LIBRARY_PATH; or the CUDA 12 toolkit). On a host "
    "with only CUDA 13, exposing CUDA 13's libcublas.so.13 under the name libcublas.so.12 (a symlink in a "
    "directory on LD_LIBRARY_PATH) works with ctranslate2 4.8.5. Or run on CPU: device cpu, compute type int8"
)


def explain_device_error(exc: BaseException, device: str) -> str | None:
    """An actionable message for CTranslate2's GPU library errors; None when `exc` is something else."""
    message = str(exc)
    if re.search(r"libcublas|libcudnn|cublas", message, re.IGNORECASE):
        return f"CTranslate2 could not load a CUDA library ({message}): {_CUBLAS_HINT}"
    if device != "cpu" and re.search(r"CUDA (driver|failed)|no CUDA|cuda.*not available", message, re.I):
        return (
            f"CTranslate2 cannot use the GPU ({message}): check the NVIDIA driver (nvidia-smi) supports "
            "CUDA 12, or run on CPU with device cpu and compute type int8"
        )
    return None


def check_device(device: str, compute_type: str) -> None:
    """Fail early, with a message an operator can act on, when `device`/`compute_type` cannot work here."""
    if device not in ("cpu", "cuda", "auto"):
        raise DeviceUnavailableError(f"unknown device {device!r}: use cpu, cuda or auto")
    if device == "cuda":
        try:
            count = ctranslate2.get_cuda_device_count()
        except RuntimeError as exc:
            count, reason = 0, f" ({exc})"
        else:
            reason = ""
        if count == 0:
            raise DeviceUnavailableError(
                f"device cuda requested but CTranslate2 sees no usable GPU{reason}: install the NVIDIA "
                "driver (nvidia-smi must list the GPU; CTranslate2 4.x needs CUDA 12 libraries), or set "
                "device cpu with compute type int8"
            )
    if compute_type in ("default", "auto"):
        return
    try:
        supported = ctranslate2.get_supported_compute_types("cuda" if device == "cuda" else "cpu")
    except RuntimeError as exc:
        raise DeviceUnavailableError(explain_device_error(exc, device) or str(exc)) from exc
    if compute_type not in supported:
        raise DeviceUnavailableError(
            f"compute type {compute_type!r} is not supported on {device} here (supported: "
            f"{', '.join(sorted(supported))}); on CPU use int8, on GPU float16 or int8_float16"
        )


GPU_WORKERS = 2


def resolve_device(device: str) -> str:
    """The device to load on: "auto" is the GPU when CTranslate2 sees one, else the CPU. Resolved before
    loading, so every model knows the device it really runs on (the engine's CPU fan-out and GPU finals
    lane depend on it)."""
    if device != "auto":
        return device
    try:
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except RuntimeError:
        return "cpu"


def load_model(
    path: Path,
    *,
    device: str = "cpu",
    compute_type: str = "int8",
    intra_threads: int = 2,
    beam_size: int = DEFAULT_BEAM_SIZE,
) -> TranslationModel:
    """Load a CTranslate2 model directory, detecting its family (see docs in mt/__init__.py).
    `beam_size` applies to sequence-to-sequence models; instruct models always decode greedily."""
    path = Path(path)
    device = resolve_device(device)
    if not path.is_dir():
        raise ModelLoadError(f"{path}: not a directory")
    if argos.is_package_directory(path):
        return _load_argos(path, device, compute_type, intra_threads, beam_size)
    if not (path / "model.bin").is_file():
        raise ModelLoadError(
            f"{path}: no model.bin, so not a CTranslate2 model; convert the Hugging Face model with "
            "ct2-transformers-converter (see `babelcall models list` for the command)"
        )
    metadata = _read_metadata(path)
    if metadata.get("family") == ModelFamily.GENERATOR.value:
        check_device(device, compute_type)
        return _load_generator(path, metadata, device, compute_type, intra_threads)
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
        prefix = metadata.get("source_prefix")
        if prefix is not None and not isinstance(prefix, str):
            raise ModelLoadError(
                f'{path / METADATA_FILE}: "source_prefix" must be a string such as ">>vie<<"'
            )
        codec = MarianCodec(path / "source.spm", path / "target.spm", source_prefix=prefix)
        languages: frozenset[str] = frozenset(pair)
    else:
        pair = None
        codec = SentencePieceCodec(family, _sentencepiece_file(path))
        languages = _multilingual_languages(path, family, metadata, source_vocab, target_vocab)

    check_device(device, compute_type)
    translator = _open(ctranslate2.Translator, path, device, compute_type, intra_threads)
    if device != "cpu":
        # cuBLAS is loaded on the first call, not at load time: provoke it now so a missing library is
        # reported at start-up rather than as untranslated captions later.
        _warm_up(path, device, lambda: translator.translate_batch([[EOS]], max_decoding_length=1))
    return Seq2SeqModel(
        name, family, translator, codec, languages=languages, pair=pair, beam_size=beam_size, device=device
    )


def _load_argos(
    path: Path, device: str, compute_type: str, intra_threads: int, beam_size: int
) -> Seq2SeqModel:
    """An Argos Translate package: its model/ folder through ctranslate2.Translator, tokenised the way
    Argos does it (see ArgosCodec)."""
    try:
        metadata = argos.read_metadata(path)
    except argos.ArgosPackageError as exc:
        raise ModelLoadError(str(exc)) from None
    model_dir = path / argos.MODEL_DIR
    if (path / "bpe.model").is_file() and not (path / argos.SENTENCEPIECE_FILE).is_file():
        raise ModelLoadError(
            f"{path}: a BPE-tokenised Argos package (bpe.model), which BabelCall does not support"
        )
    for required in (path / argos.SENTENCEPIECE_FILE, model_dir / "model.bin"):
        if not required.is_file():
            raise ModelLoadError(
                f"{path}: the Argos package lacks {required.relative_to(path)}; reinstall it with "
                "`babelcall models install FILE.argosmodel`"
            )
    _read_vocabularies(model_dir)
    codec = ArgosCodec(path / argos.SENTENCEPIECE_FILE, target_prefix=metadata.target_prefix or None)
    check_device(device, compute_type)
    translator = _open(ctranslate2.Translator, model_dir, device, compute_type, intra_threads)
    if device != "cpu":
        _warm_up(path, device, lambda: translator.translate_batch([[EOS]], max_decoding_length=1))
    return Seq2SeqModel(
        path.name,
        ModelFamily.ARGOS,
        translator,
        codec,
        pair=(metadata.source, metadata.target),
        beam_size=beam_size,
        device=device,
    )


def _open(cls: type[Any], path: Path, device: str, compute_type: str, intra_threads: int) -> Any:
    # On a GPU the engine runs finals and partials in two threads at once (mt/engine.py); two CTranslate2
    # workers, each on its own CUDA stream with shared weights, let them overlap instead of queueing.
    inter_threads = 1 if device == "cpu" else GPU_WORKERS
    try:
        return cls(
            str(path),
            device=device,
            compute_type=compute_type,
            intra_threads=intra_threads,
            inter_threads=inter_threads,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        explained = explain_device_error(exc, device)
        if explained is not None:
            raise DeviceUnavailableError(f"{path}: {explained}") from exc
        raise ModelLoadError(
            f"{path}: CTranslate2 could not load the model on {device}/{compute_type}: {exc}"
        ) from exc


def _warm_up(path: Path, device: str, call: Callable[[], object]) -> None:
    try:
        call()
    except RuntimeError as exc:
        explained = explain_device_error(exc, device)
        raise DeviceUnavailableError(f"{path}: {explained or exc}") from exc


def _load_generator(
    path: Path, metadata: dict[str, Any], device: str, compute_type: str, intra_threads: int
) -> GeneratorModel:
    template = metadata.get("prompt_template")
    if not isinstance(template, str) or "{text}" not in template:
        raise ModelLoadError(
            f'{path / METADATA_FILE}: a generator model needs "prompt_template" containing {{text}} '
            "(and usually {source_name} and {target_name})"
        )
    try:
        template.format_map(
            {k: "" for k in ("source_name", "target_name", "source_code", "target_code", "text")}
        )
    except (KeyError, ValueError, IndexError) as exc:
        raise ModelLoadError(
            f"{path / METADATA_FILE}: prompt_template has an unknown field or stray brace ({exc}); "
            "double literal braces"
        ) from None
    declared = metadata.get("languages")
    if not isinstance(declared, list):
        raise ModelLoadError(
            f'{path / METADATA_FILE}: a generator model needs "languages": ["en", "fr", ...]'
        )
    languages = frozenset(c for c in declared if c in LANGUAGES)
    if len(languages) < 2:
        raise ModelLoadError(f"{path / METADATA_FILE}: fewer than two BabelCall languages in {declared}")
    stop = metadata.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ModelLoadError(f'{path / METADATA_FILE}: "stop" must be a list of strings')

    vocabulary = _read_vocabulary_file(path, "vocabulary")
    if vocabulary is None:
        raise ModelLoadError(f"{path}: no vocabulary.json: not a CTranslate2 decoder-only model")
    tokenizer = load_prompt_tokenizer(path, add_bos=bool(metadata.get("add_bos", True)))
    eos = _config_token(path, "eos_token", "</s>")
    end_tokens = [eos, *(s for s in stop if s in vocabulary and s != eos)]
    generator = _open(ctranslate2.Generator, path, device, compute_type, intra_threads)
    if device != "cpu":
        _warm_up(path, device, lambda: generator.generate_batch([[eos]], max_length=1))
    return GeneratorModel(
        str(metadata.get("name") or path.name),
        generator,
        tokenizer,
        prompt_template=template,
        stop=stop,
        end_tokens=end_tokens,
        languages=languages,
        device=device,
    )


def _config_token(path: Path, key: str, default: str) -> str:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
    value = config.get(key) if isinstance(config, dict) else None
    return value if isinstance(value, str) else default


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
