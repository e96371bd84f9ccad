"""Translation models known to work with BabelCall, and the exact commands that install them.

Weights are never bundled: operators fetch them from Hugging Face and convert them to CTranslate2 once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mt.families import ModelFamily
from protocol.languages import LANGUAGES

ALL_LANGUAGES = frozenset(LANGUAGES)


@dataclass(frozen=True)
class KnownModel:
    hf_id: str  # Hugging Face repository
    family: ModelFamily
    languages: frozenset[str]
    licence: str
    copy_files: tuple[str, ...]  # tokenizer files the converter must copy next to model.bin

    @property
    def directory_name(self) -> str:
        return self.hf_id.rsplit("/", 1)[-1]

    def covers(self, source: str, target: str) -> bool:
        if self.family is ModelFamily.MARIAN:
            return self.directory_name.endswith(f"-{source}-{target}")
        return source != target and {source, target} <= self.languages

    def install_command(self, models_dir: Path | str) -> str:
        return (
            f"ct2-transformers-converter --model {self.hf_id} "
            f"--output_dir {models_dir}/{self.directory_name} --quantization int8 "
            f"--copy_files {' '.join(self.copy_files)}"
        )


def _opus_mt(source: str, target: str) -> KnownModel:
    return KnownModel(
        f"Helsinki-NLP/opus-mt-{source}-{target}",
        ModelFamily.MARIAN,
        frozenset((source, target)),
        "CC-BY-4.0",
        ("source.spm", "target.spm"),
    )


NLLB_600M = KnownModel(
    "facebook/nllb-200-distilled-600M",
    ModelFamily.NLLB,
    ALL_LANGUAGES,
    "CC-BY-NC-4.0",
    ("sentencepiece.bpe.model",),
)
M2M100_418M = KnownModel(
    "facebook/m2m100_418M", ModelFamily.M2M100, ALL_LANGUAGES, "MIT", ("sentencepiece.bpe.model",)
)

# Preference order: the first entry covering a pair is the one a hint recommends.
KNOWN_MODELS: tuple[KnownModel, ...] = (
    NLLB_600M,
    M2M100_418M,
    *(_opus_mt(s, "en") for s in ("fr", "es", "ru", "zh", "ar", "id", "ja", "vi", "tr", "th")),
    *(_opus_mt("en", t) for t in ("fr", "es", "ru", "zh", "ar", "id", "vi")),
)


def recommended_model(source: str, target: str) -> KnownModel | None:
    return next((m for m in KNOWN_MODELS if m.covers(source, target)), None)


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
        f"No translation model covers {source}→{target}: install {known.hf_id} "
        f"({known.licence}) into {where}/{known.directory_name} with "
        f"`pip install transformers sentencepiece torch && {known.install_command(where)}` "
        f"on a machine that can reach huggingface.co{alternative}, then restart BabelCall."
    )
