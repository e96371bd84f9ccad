"""Fetching model repositories from a Hugging Face-compatible hub, and sha256 manifests of model folders.

Plain urllib against the hub's documented endpoints (`/api/models/{repo}` lists files,
`/{repo}/resolve/{revision}/{file}` serves them): one code path that works the same with or without
`huggingface_hub` installed, and that tests can point at a local server. `$HF_ENDPOINT` selects a
mirror, `$HF_TOKEN` authenticates for gated repositories.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from models.download import DownloadError, download, request, sha256_file

HUB_URL = "https://huggingface.co"
MANIFEST_FILE = "babelcall-manifest.json"
# Weights in formats the CTranslate2 converter does not read; skipping them halves many downloads.
_SKIPPED_SUFFIXES = (".h5", ".msgpack", ".onnx", ".ot", ".tflite", ".gguf")
_SKIPPED_DIRS = ("onnx/", "tf/", "flax/", "coreml/", "openvino/")


class HubError(RuntimeError):
    """The hub could not be reached or refused a request; the message names the URL."""


def hub_url() -> str:
    return (os.environ.get("HF_ENDPOINT") or HUB_URL).rstrip("/")


def _request(url: str) -> urllib.request.Request:
    token = os.environ.get("HF_TOKEN")
    return request(url, {"Authorization": f"Bearer {token}"} if token else None)


def list_repo_files(repo_id: str, *, endpoint: str, timeout: float = 10.0) -> list[str]:
    """The files of a hub repository; raises HubError when the hub cannot be reached."""
    url = f"{endpoint}/api/models/{urllib.parse.quote(repo_id, safe='/')}"
    try:
        with urllib.request.urlopen(_request(url), timeout=timeout) as response:
            info: Any = json.load(response)
    except urllib.error.HTTPError as exc:
        raise HubError(f"{url} answered HTTP {exc.code} (gated model? set $HF_TOKEN)") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HubError(f"cannot reach the model hub at {endpoint} ({reason})") from exc
    except ValueError as exc:
        raise HubError(f"{url} did not answer JSON ({exc})") from exc
    siblings = info.get("siblings") if isinstance(info, dict) else None
    if not isinstance(siblings, list):
        raise HubError(f"{url}: no file list in the answer")
    return [s["rfilename"] for s in siblings if isinstance(s, dict) and isinstance(s.get("rfilename"), str)]


def select_files(files: Iterable[str]) -> list[str]:
    """The files a CTranslate2 conversion (or an already converted model) needs."""
    files = list(files)
    chosen = [
        f
        for f in files
        if not f.endswith(_SKIPPED_SUFFIXES) and not f.startswith(_SKIPPED_DIRS) and not f.startswith(".")
    ]
    if any(f.endswith(".safetensors") for f in chosen):
        # The same weights twice: keep the safetensors copy, which loads without pickle.
        chosen = [f for f in chosen if not (f.startswith("pytorch_model") and f.endswith(".bin"))]
    return chosen


def download_files(
    repo_id: str,
    files: Iterable[str],
    destination: Path,
    *,
    endpoint: str,
    revision: str = "main",
    progress: IO[str] | None = None,
    timeout: float = 60.0,
) -> None:
    """Download `files` of `repo_id` into `destination`, with a progress bar on `progress` (stderr)."""
    token = os.environ.get("HF_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    for name in files:
        target = destination / name
        if ".." in Path(name).parts:
            raise HubError(f"refusing file name {name!r} from the hub")
        target.parent.mkdir(parents=True, exist_ok=True)
        quoted = urllib.parse.quote(name)
        url = f"{endpoint}/{urllib.parse.quote(repo_id, safe='/')}/resolve/{revision}/{quoted}"
        try:
            download(url, target, label=name, progress=progress, headers=headers, timeout=timeout)
        except DownloadError as exc:
            raise HubError(str(exc)) from exc


def model_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)


def write_manifest(directory: Path, *, source: str | None = None) -> dict[str, Any]:
    files = {p.relative_to(directory).as_posix(): sha256_file(p) for p in model_files(directory)}
    manifest = {"version": 1, "source": source, "files": files}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def check_manifest(
    directory: Path, *, on_file: Callable[[str], None] | None = None
) -> tuple[bool, list[str]] | None:
    """None when there is no manifest; else (all good, problems). Extra files are reported, not fatal."""
    file = directory / MANIFEST_FILE
    if not file.is_file():
        return None
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
        expected: dict[str, str] = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, [f"{MANIFEST_FILE} is unreadable ({exc})"]
    problems: list[str] = []
    ok = True
    for name, digest in sorted(expected.items()):
        path = directory / name
        if on_file is not None:
            on_file(name)
        if not path.is_file():
            problems.append(f"missing: {name}")
            ok = False
        elif sha256_file(path) != digest:
            problems.append(f"sha256 mismatch: {name}")
            ok = False
    present = {p.relative_to(directory).as_posix() for p in model_files(directory)}
    problems.extend(f"not in manifest: {name}" for name in sorted(present - expected.keys()))
    return ok, problems
