"""Argos Translate packages for tests: the real zh→en package from ../shared, and .argosmodel files built
at test time in the same format around a tiny random-weight model (tests/mt_models.py)."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

from conftest import SHARED, _missing
from mt_models import CORPUS, build_transformer, train_sentencepiece

REAL_PACKAGE = SHARED / "data" / "models" / "translate-zh_en-1_9.argosmodel"
REAL_FOLDER = "translate-zh_en-1_9"


def require_real_package() -> Path:
    """The real Argos zh→en package; skips on a plain clone, fails in CI (BABELCALL_REQUIRE_SHARED)."""
    if not REAL_PACKAGE.is_file():
        _missing(
            f"the real Argos zh→en package is not at {REAL_PACKAGE} (../shared beside the checkout in CI)",
            "BABELCALL_REQUIRE_SHARED",
        )
    return REAL_PACKAGE


def build_model_folder(
    folder: Path, source: str = "en", target: str = "fr", *, version: str = "1.0", seed: int = 5
) -> Path:
    """An unpacked Argos package: metadata.json, the SOURCE side's sentencepiece.model, model/ with a
    vocabulary of both sides' pieces (as Argos packages have), README.md and a stanza/ folder."""
    (folder / "model").mkdir(parents=True, exist_ok=True)
    source_pieces = train_sentencepiece(folder / "sentencepiece.model", CORPUS[source], vocab_size=120)
    target_pieces = train_sentencepiece(folder / "target-side.model", CORPUS[target], vocab_size=120)
    (folder / "target-side.model").unlink()  # Argos ships the source side's model only
    vocabulary = ["<unk>", "<s>", "</s>", *dict.fromkeys([*source_pieces, *target_pieces])]
    build_transformer(folder / "model", vocabulary, marian=True, seed=seed)
    metadata = {
        "package_version": version,
        "argos_version": "1.9.0",
        "from_code": source,
        "from_name": source,
        "to_code": target,
        "to_name": target,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    (folder / "README.md").write_text("Test package: random weights, meaningless output.\n", encoding="utf-8")
    (folder / "stanza").mkdir(exist_ok=True)
    (folder / "stanza" / "resources.json").write_text("{}", encoding="utf-8")
    return folder


def zip_folder(folder: Path, archive: Path, *, extra: dict[str, bytes] | None = None) -> Path:
    """Zip `folder` as Argos does (the folder itself at the root, directory entries included), plus
    `extra` members given by their full names."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(folder, f"{folder.name}/")
        for path in sorted(folder.rglob("*")):
            name = f"{folder.name}/{path.relative_to(folder).as_posix()}"
            out.write(path, name + ("/" if path.is_dir() else ""))
        for name, data in (extra or {}).items():
            out.writestr(name, data)
    return archive


def build_package(
    directory: Path, source: str = "en", target: str = "fr", *, version: str = "1.0", seed: int = 5
) -> Path:
    """A .argosmodel file for source→target (random weights) in `directory`."""
    stem = f"translate-{source}_{target}-{version.replace('.', '_')}"
    folder = build_model_folder(directory / "src" / stem, source, target, version=version, seed=seed)
    return zip_folder(folder, directory / f"{stem}.argosmodel")


def rewrite(package: Path, archive: Path, change: dict[str, bytes | None]) -> Path:
    """A copy of `package` with members replaced (bytes), removed (None) or added (new names)."""
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            if info.filename in change:
                continue
            out.writestr(info, source.read(info))
        for name, data in change.items():
            if data is not None:
                out.writestr(name, data)
    return archive


def add_symlink(package: Path, archive: Path, name: str, points_to: str) -> Path:
    """A copy of `package` with a symbolic-link member, as `zip --symlinks` stores one."""
    rewrite(package, archive, {})
    with zipfile.ZipFile(archive, "a") as out:
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        out.writestr(info, points_to)
    return archive
