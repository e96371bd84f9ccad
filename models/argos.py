"""Argos Translate packages (.argosmodel): reading, checking and installing them, and fetching them from
the Argos package index.

A package is a zip archive holding one folder, e.g. `translate-zh_en-1_9/`, with `metadata.json`
(from_code, to_code, package_version, argos_version; optionally target_prefix), `model/` (a CTranslate2
model: model.bin, config.json and its vocabulary), `sentencepiece.model` (the SOURCE side's) and
optionally a README, a licence and a sentence-boundary model (`stanza/`, `minisbd/` or `spacy/`, which
BabelCall does not need and does not unpack: it splits sentences itself, mt/sentences.py). This module
knows the storage format only; how such a model tokenises and translates is mt/'s business.

Installing never trusts the archive: every member must sit inside the package folder (no absolute
paths, no "..", no links or devices), be a file the format has, and fit the sizes the archive
declares; the package is unpacked into a hidden staging folder beside its destination and renamed into
place only once complete, so a failed install leaves nothing behind and the server never loads half a
model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from models.download import DownloadError, download, request
from models.hub import write_manifest
from protocol.languages import LANGUAGES

METADATA_FILE = "metadata.json"
SENTENCEPIECE_FILE = "sentencepiece.model"
MODEL_DIR = "model"
DEFAULT_INDEX_URL = "https://raw.githubusercontent.com/argosopentech/argospm-index/main/index.json"
INDEX_URL_VARIABLE = "BABELCALL_ARGOS_INDEX"

# What a package may hold, relative to its folder. Anything else is refused by name.
_TOP_FILES = frozenset({METADATA_FILE, SENTENCEPIECE_FILE, "README.md", "README", "LICENSE", "LICENSE.md"})
_MODEL_FILES = frozenset(
    {
        "model.bin",
        "config.json",
        "shared_vocabulary.json",
        "shared_vocabulary.txt",
        "source_vocabulary.json",
        "source_vocabulary.txt",
        "target_vocabulary.json",
        "target_vocabulary.txt",
        "vmap.txt",
    }
)
_SKIPPED_DIRS = frozenset({"stanza", "minisbd", "spacy"})  # sentence-boundary models: not unpacked
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_UNPACKED_BYTES = 8 << 30  # the largest Argos packages are well under 1 GB
MAX_COMPRESSION_RATIO = 200  # int8 weights barely compress; far beyond this is a zip bomb


class ArgosPackageError(ValueError):
    """A file is not a usable Argos package; the message says what is wrong with it."""


@dataclass(frozen=True)
class ArgosMetadata:
    source: str  # BabelCall language codes
    target: str
    package_version: str
    argos_version: str = ""
    target_prefix: str = ""  # a token the decoder must start with (multilingual packages); "" for none

    @property
    def code(self) -> str:
        """The index's name for the pair: "translate-zh_en"."""
        return f"translate-{self.source}_{self.target}"

    @property
    def folder_name(self) -> str:
        """Where the package is installed: "translate-zh_en-1_9"."""
        return f"{self.code}-{self.package_version.replace('.', '_')}"


def parse_metadata(data: object, where: str) -> ArgosMetadata:
    """Check an Argos metadata.json object; ArgosPackageError names the problem and the file."""
    if not isinstance(data, dict):
        raise ArgosPackageError(f"{where}: expected a JSON object")
    kind = data.get("type", "translate")
    if kind != "translate":
        raise ArgosPackageError(f"{where}: a {kind!r} package, not a translation package")
    codes: list[str] = []
    for key in ("from_code", "to_code"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise ArgosPackageError(f"{where}: {key} is missing")
        codes.append(value)
    unknown = [code for code in codes if code not in LANGUAGES]
    if unknown:
        raise ArgosPackageError(
            f"{where}: a package for {' and '.join(repr(c) for c in unknown)}, not a language BabelCall "
            f"supports ({', '.join(sorted(LANGUAGES))})"
        )
    source, target = codes
    if source == target:
        raise ArgosPackageError(f"{where}: from_code and to_code are both {source!r}")
    strings = {key: data.get(key, "") for key in ("package_version", "argos_version", "target_prefix")}
    for key, value in strings.items():
        if not isinstance(value, str):
            raise ArgosPackageError(f"{where}: {key} must be a string")
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.]*", strings["package_version"] or "0"):
        raise ArgosPackageError(f"{where}: package_version {strings['package_version']!r} is not a version")
    return ArgosMetadata(
        source,
        target,
        strings["package_version"] or "0",
        strings["argos_version"],
        strings["target_prefix"],
    )


def is_package_directory(directory: Path) -> bool:
    """An installed Argos package (or one copied in by hand): metadata.json beside a model/ folder."""
    return (directory / METADATA_FILE).is_file() and (directory / MODEL_DIR).is_dir()


def read_metadata(directory: Path) -> ArgosMetadata:
    file = directory / METADATA_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArgosPackageError(f"{file}: not readable JSON ({exc})") from exc
    return parse_metadata(data, str(file))


def installed_packages(models_dir: Path) -> dict[Path, ArgosMetadata]:
    """Every readable Argos package directly under `models_dir` (hidden staging folders excluded)."""
    if not models_dir.is_dir():
        return {}
    found: dict[Path, ArgosMetadata] = {}
    for entry in sorted(models_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir() or not is_package_directory(entry):
            continue
        try:
            found[entry] = read_metadata(entry)
        except ArgosPackageError:
            continue
    return found


# --- archives -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedArchive:
    path: Path
    folder: str  # the package folder inside the archive
    metadata: ArgosMetadata
    members: tuple[zipfile.ZipInfo, ...] = field(repr=False)  # the files to unpack
    skipped: tuple[str, ...]  # folders present but not unpacked (sentence-boundary models)
    unpacked_bytes: int


def check_archive(path: Path) -> CheckedArchive:
    """Read a .argosmodel file's table of contents and metadata and refuse anything unsafe or unknown;
    nothing is written."""
    if not path.is_file():
        raise ArgosPackageError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as archive:
            return _check(path, archive)
    except zipfile.BadZipFile as exc:
        raise ArgosPackageError(f"{path}: not a zip archive, or a damaged one ({exc})") from exc


def _check(path: Path, archive: zipfile.ZipFile) -> CheckedArchive:
    infos = archive.infolist()
    if not infos:
        raise ArgosPackageError(f"{path}: the archive is empty")
    names = [info.filename for info in infos]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ArgosPackageError(f"{path}: the archive holds {duplicates[0]!r} twice")
    folders: set[str] = set()
    for info in infos:
        _refuse_unsafe(path, info)
        folders.add(PurePosixPath(info.filename).parts[0])
    if len(folders) != 1:
        raise ArgosPackageError(
            f"{path}: an Argos package holds exactly one folder; this one has {', '.join(sorted(folders))}"
        )
    folder = folders.pop()
    if not _FOLDER_NAME.fullmatch(folder):
        raise ArgosPackageError(f"{path}: unusable package folder name {folder!r}")

    members: list[zipfile.ZipInfo] = []
    skipped: set[str] = set()
    present: set[str] = set()
    for info in infos:
        inner = PurePosixPath(info.filename).parts[1:]
        if not inner:
            continue  # the folder's own entry
        if inner[0] in _SKIPPED_DIRS:
            skipped.add(inner[0])
            continue
        if info.is_dir():
            if inner != (MODEL_DIR,):
                raise ArgosPackageError(f"{path}: unexpected folder {info.filename!r} in an Argos package")
            continue
        relative = "/".join(inner)
        allowed = (len(inner) == 1 and inner[0] in _TOP_FILES) or (
            len(inner) == 2 and inner[0] == MODEL_DIR and inner[1] in _MODEL_FILES
        )
        if not allowed:
            if relative == "bpe.model":
                raise ArgosPackageError(
                    f"{path}: this package tokenises with BPE (bpe.model), which BabelCall does not support; "
                    "use a SentencePiece package (every Argos index package for BabelCall's languages is one)"
                )
            raise ArgosPackageError(f"{path}: unexpected file {info.filename!r} in an Argos package")
        if info.flag_bits & 0x1:
            raise ArgosPackageError(f"{path}: {info.filename!r} is encrypted")
        present.add(relative)
        members.append(info)

    for required in (METADATA_FILE, f"{MODEL_DIR}/model.bin", SENTENCEPIECE_FILE):
        if required not in present:
            raise ArgosPackageError(f"{path}: the package lacks {folder}/{required}")
    if not any(f"{MODEL_DIR}/{v}" in present for v in _MODEL_FILES if "vocabulary" in v):
        raise ArgosPackageError(
            f"{path}: the package lacks the model's vocabulary ({folder}/model/*_vocabulary.json)"
        )

    unpacked = sum(info.file_size for info in members)
    packed = sum(info.compress_size for info in members)
    if unpacked > MAX_UNPACKED_BYTES or unpacked > MAX_COMPRESSION_RATIO * max(packed, 1):
        raise ArgosPackageError(
            f"{path}: unpacks to {unpacked / 1e9:.1f} GB from {packed / 1e6:.1f} MB: "
            "not a translation package"
        )
    metadata_info = next(i for i in members if i.filename == f"{folder}/{METADATA_FILE}")
    if metadata_info.file_size > 1 << 20:
        raise ArgosPackageError(f"{path}: {folder}/{METADATA_FILE} is too large to be package metadata")
    try:
        data = json.loads(archive.read(metadata_info).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArgosPackageError(f"{path}: {folder}/{METADATA_FILE} is not valid JSON ({exc})") from exc
    metadata = parse_metadata(data, f"{path}: {folder}/{METADATA_FILE}")
    return CheckedArchive(path, folder, metadata, tuple(members), tuple(sorted(skipped)), unpacked)


def _refuse_unsafe(path: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or "\\" in name or "\0" in name:
        raise ArgosPackageError(f"{path}: member {name!r} has an absolute or non-portable path")
    if ".." in PurePosixPath(name).parts:
        raise ArgosPackageError(f"{path}: member {name!r} would write outside the models folder")
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:  # made on Unix: the high bits are st_mode
        kind = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            raise ArgosPackageError(f"{path}: member {name!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ArgosPackageError(f"{path}: member {name!r} is not a regular file")


def install_archive(
    path: Path,
    models_dir: Path,
    *,
    replace: bool = False,
    source: str | None = None,
) -> tuple[Path, list[Path]]:
    """Check and unpack an Argos package into `models_dir/<its folder>`, atomically, with a sha256
    manifest. Another package for the same pair (or the same folder) is an error, unless `replace`:
    then it is removed once the new one is in place. Returns (installed folder, folders replaced)."""
    checked = check_archive(path)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / checked.folder
    same_pair = [
        folder
        for folder, metadata in installed_packages(models_dir).items()
        if (metadata.source, metadata.target) == (checked.metadata.source, checked.metadata.target)
    ]
    clashes = sorted({*same_pair, *([target] if target.exists() else [])})
    if clashes and not replace:
        names = ", ".join(p.name for p in clashes)
        raise ArgosPackageError(
            f"{names} already installed for {checked.metadata.source}→{checked.metadata.target}: "
            "remove it first, or install with --replace"
        )
    free = shutil.disk_usage(models_dir).free
    if checked.unpacked_bytes > free:
        raise ArgosPackageError(
            f"{path}: needs {checked.unpacked_bytes / 1e6:.0f} MB in {models_dir}, "
            f"only {free / 1e6:.0f} MB free"
        )
    staging = Path(tempfile.mkdtemp(prefix=f".install-{checked.folder}-", dir=models_dir))
    try:
        try:
            _unpack(checked, staging / checked.folder)
        except zipfile.BadZipFile as exc:
            raise ArgosPackageError(f"{path}: damaged archive ({exc})") from exc
        write_manifest(staging / checked.folder, source=source or f"Argos package {path.name}")
        retired: list[tuple[Path, Path]] = []
        try:
            for old in clashes:
                moved = staging / f"replaced-{old.name}"
                old.rename(moved)
                retired.append((old, moved))
            (staging / checked.folder).rename(target)
        except OSError:
            for old, moved in retired:  # put back what was there: the install failed, nothing changes
                moved.rename(old)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, clashes


def _unpack(checked: CheckedArchive, destination: Path) -> None:
    """Write each checked member below `destination` by its validated parts; never more bytes than the
    archive declared (zipfile checks each member's CRC as it is read)."""
    with zipfile.ZipFile(checked.path) as archive:
        for info in checked.members:
            inner = PurePosixPath(info.filename).parts[1:]
            file = destination.joinpath(*inner)
            file.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with archive.open(info) as member, open(file, "xb") as sink:
                while chunk := member.read(1 << 20):
                    written += len(chunk)
                    if written > info.file_size:
                        raise ArgosPackageError(f"{checked.path}: {info.filename!r} is larger than declared")
                    sink.write(chunk)
            if written != info.file_size:
                raise ArgosPackageError(f"{checked.path}: {info.filename!r} is shorter than declared")
            os.chmod(file, 0o644)


# --- the package index ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexEntry:
    code: str  # "translate-zh_en"
    metadata: ArgosMetadata
    links: tuple[str, ...]  # http(s) links only
    sha256: str | None  # when the index publishes one (the public index does not, as of 2025)


def index_url() -> str:
    return os.environ.get(INDEX_URL_VARIABLE) or DEFAULT_INDEX_URL


def fetch_index(url: str, *, timeout: float = 20.0) -> list[IndexEntry]:
    """The index's translation packages between BabelCall languages; DownloadError when unreachable."""
    try:
        with urllib.request.urlopen(request(url), timeout=timeout) as response:
            data: Any = json.loads(response.read(16 << 20))
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"the Argos package index {url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DownloadError(
            f"cannot reach the Argos package index at {url} ({getattr(exc, 'reason', exc)})"
        ) from exc
    except ValueError as exc:
        raise DownloadError(f"the Argos package index {url} is not JSON ({exc})") from exc
    if not isinstance(data, list):
        raise DownloadError(f"the Argos package index {url} is not a list of packages")
    entries: list[IndexEntry] = []
    for item in data:
        try:
            metadata = parse_metadata(item, url)
        except ArgosPackageError:
            continue  # another language pair, or not a translation package
        links = tuple(
            link
            for link in item.get("links", [])
            if isinstance(link, str) and link.startswith(("https://", "http://"))
        )
        checksum = item.get("sha256")
        entries.append(
            IndexEntry(
                str(item.get("code") or metadata.code),
                metadata,
                links,
                checksum.lower() if isinstance(checksum, str) else None,
            )
        )
    return entries


def download_package(
    links: Iterable[str],
    directory: Path,
    *,
    expected_sha256: str | None = None,
    progress: IO[str] | None = None,
) -> tuple[Path, str]:
    """Download a package from the first link that works into `directory`; (file, sha256). A checksum
    that differs from `expected_sha256` is an error and the file is deleted."""
    failures: list[str] = []
    for link in links:
        file = directory / (Path(link).name or "package.argosmodel")
        try:
            digest = download(link, file, progress=progress if progress is not None else sys.stderr)
        except DownloadError as exc:
            failures.append(str(exc))
            file.unlink(missing_ok=True)
            continue
        if expected_sha256 is not None and digest != expected_sha256.lower():
            file.unlink(missing_ok=True)
            raise DownloadError(f"{link}: sha256 {digest} differs from the expected {expected_sha256}")
        return file, digest
    raise DownloadError("; ".join(failures) or "the package has no http(s) link")
