"""`babelcall models list | pull | verify | remove` on models the tests build, against a local fake hub."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from mt_models import build_generator, build_multilingual

from models import hub
from server.cli import build_parser
from server.cli import main as babelcall
from server.models_cli import main


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-models")
    build_multilingual(root / "nllb-tiny", languages=["en", "fr", "ja"])
    build_generator(root / "tiny-llm")
    return root


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}, captured.err


class FakeHub(http.server.BaseHTTPRequestHandler):
    """The two hub endpoints `models.hub` uses, serving repositories from local directories."""

    repos: ClassVar[dict[str, Path]] = {}

    def do_GET(self) -> None:
        path = urllib.parse.unquote(self.path)
        if path.startswith("/api/models/"):
            repo = self.repos.get(path.removeprefix("/api/models/"))
            if repo is None:
                return self.send_error(404)
            files = [p.relative_to(repo).as_posix() for p in sorted(repo.rglob("*")) if p.is_file()]
            return self._send(json.dumps({"siblings": [{"rfilename": f} for f in files]}).encode())
        for repo_id, repo in self.repos.items():
            prefix = f"/{repo_id}/resolve/main/"
            if path.startswith(prefix) and (repo / path.removeprefix(prefix)).is_file():
                return self._send((repo / path.removeprefix(prefix)).read_bytes())
        self.send_error(404)

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_hub(built: Path, tmp_path: Path) -> Iterator[str]:
    unconverted = tmp_path / "hf-original"
    unconverted.mkdir()
    (unconverted / "config.json").write_text("{}")
    (unconverted / "model.safetensors").write_bytes(b"\0" * 16)
    FakeHub.repos = {"clinic/nllb-tiny": built / "nllb-tiny", "clinic/original": unconverted}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_models_is_a_babelcall_command() -> None:
    args = build_parser().parse_args(["models", "--json", "list"])
    assert args.json and args.models_command == "list"
    args = build_parser().parse_args(["models", "verify", "x", "--json", "--models-dir", "/m"])
    assert args.json and args.models_dir == Path("/m")


def test_babelcall_models_uses_the_servers_configured_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "babelcall.toml"
    config.write_text(f'translation_models_dir = "{tmp_path / "from-file"}"\n')
    monkeypatch.setenv("BABELCALL_CONFIG", str(config))
    assert babelcall(["models", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models_dir"] == str(tmp_path / "from-file")
    # Variables override the file, as for `serve`; an explicit --models-dir overrides both.
    monkeypatch.setenv("BABELCALL_TRANSLATION_MODELS_DIR", str(tmp_path / "from-env"))
    assert babelcall(["models", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models_dir"] == str(tmp_path / "from-env")
    assert babelcall(["models", "--models-dir", str(tmp_path / "flag"), "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models_dir"] == str(tmp_path / "flag")


def test_list_shows_catalogue_whisper_and_installed(
    built: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(built / "nllb-tiny", models_dir / "nllb-200-distilled-600M")
    shutil.copytree(built / "tiny-llm", models_dir / "clinic-llm")
    code, out, _ = run(capsys, "--models-dir", str(models_dir), "list", "--json")
    assert code == 0 and out["models_dir"] == str(models_dir)
    by_name = {m["name"]: m for m in out["models"]}
    assert (
        by_name["whisper-base"]["family"] == "whisper" and "pip install" in by_name["whisper-base"]["install"]
    )
    nllb = by_name["nllb-200-distilled-600M"]
    assert nllb["installed"] and nllb["path"] == str(models_dir / "nllb-200-distilled-600M")
    assert nllb["licence"] == "CC-BY-NC-4.0" and nllb["approx_size_mb"] > 0 and "th" in nllb["languages"]
    assert not by_name["m2m100_418M"]["installed"]
    assert by_name["Qwen2.5-1.5B-Instruct"]["family"] == "generator"
    assert by_name["clinic-llm"]["family"] == "generator" and by_name["clinic-llm"]["installed"]
    assert main(["--models-dir", str(models_dir), "list"]) == 0
    assert "installed" in capsys.readouterr().out


def test_pull_downloads_a_converted_model_writes_a_manifest_and_verifies(
    fake_hub: str, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "--models-dir", str(models_dir), "--json", "pull", "clinic/nllb-tiny", "--hub-url", fake_hub
    )
    assert code == 0, err
    installed = models_dir / "nllb-tiny"
    assert out["path"] == str(installed) and (installed / "model.bin").is_file()
    assert "model.bin" in err and "100.0%" in err  # the progress bar went to stderr
    manifest = json.loads((installed / hub.MANIFEST_FILE).read_text())
    assert manifest["files"]["model.bin"] == hub.sha256_file(installed / "model.bin")
    assert not any(p.name.startswith(".pull") for p in models_dir.iterdir())

    code, out, _ = run(capsys, "--models-dir", str(models_dir), "--json", "verify", "nllb-tiny")
    assert code == 0 and out["ok"] and out["manifest"] == "ok" and out["family"] == "nllb"
    assert out["sample"]["source"] == "en" and isinstance(out["sample"]["output"], str)

    code, _, err = run(
        capsys, "--models-dir", str(models_dir), "pull", "clinic/nllb-tiny", "--hub-url", fake_hub
    )
    assert code == 1 and "exists" in err


def test_pull_with_an_unreachable_hub_explains_the_manual_install(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub_url = f"http://127.0.0.1:{unused_port()}"
    code, out, err = run(
        capsys,
        "--models-dir",
        str(models_dir),
        "--json",
        "pull",
        "nllb-200-distilled-600M",
        "--hub-url",
        hub_url,
    )
    assert code == 1 and not out["ok"]
    assert f"cannot reach the model hub at {hub_url}" in err
    assert (
        "ct2-transformers-converter --model facebook/nllb-200-distilled-600M "
        "--output_dir nllb-200-distilled-600M --quantization int8 --copy_files sentencepiece.bpe.model"
    ) in err
    assert f"copy the nllb-200-distilled-600M directory into {models_dir}/" in err
    assert "verify nllb-200-distilled-600M --write-manifest" in err
    assert list(models_dir.iterdir()) == []

    code, _, err = run(
        capsys, "--models-dir", str(models_dir), "pull", "Qwen2.5-1.5B-Instruct", "--hub-url", hub_url
    )
    assert code == 1 and '"prompt_template"' in err and "babelcall.json" in err  # the generator's metadata


def test_pull_explains_missing_converter_dependencies(
    fake_hub: str, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    if importlib.util.find_spec("transformers") and importlib.util.find_spec("torch"):
        pytest.skip("the converter's dependencies are installed here")
    code, _, err = run(
        capsys, "--models-dir", str(models_dir), "pull", "clinic/original", "--hub-url", fake_hub
    )
    assert code == 1 and "pip install transformers torch" in err and "cannot reach" not in err


def test_pull_refuses_unknown_names_and_whisper(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--models-dir", str(models_dir), "pull", "gpt-9")
    assert code == 1 and "unknown model 'gpt-9'" in err
    code, _, err = run(capsys, "--models-dir", str(models_dir), "pull", "Systran/faster-whisper-base")
    assert code == 1 and "pip" in err


def test_verify_a_hand_copied_directory_and_write_then_check_its_manifest(
    built: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copied = shutil.copytree(built / "tiny-llm", models_dir / "clinic-llm")
    code, out, _ = run(capsys, "--models-dir", str(models_dir), "--json", "verify", "clinic-llm")
    assert code == 0 and out["manifest"] == "absent" and out["family"] == "generator"
    code, out, _ = run(
        capsys, "--models-dir", str(models_dir), "--json", "verify", str(copied), "--write-manifest"
    )
    assert code == 0 and out["manifest"] == "written" and (copied / hub.MANIFEST_FILE).is_file()

    (copied / "extra.txt").write_text("notes")
    code, out, _ = run(capsys, "--models-dir", str(models_dir), "--json", "verify", "clinic-llm")
    assert (
        code == 0 and out["manifest"] == "ok" and out["manifest_problems"] == ["not in manifest: extra.txt"]
    )

    with open(copied / "model.bin", "r+b") as f:  # a truncated copy from a USB stick
        f.truncate(100)
    code, out, err = run(capsys, "--models-dir", str(models_dir), "--json", "verify", "clinic-llm")
    assert code == 1 and "sha256 mismatch: model.bin" in err and out["manifest"] == "failed"


def test_verify_reports_unloadable_directories(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (models_dir / "empty").mkdir()
    code, out, err = run(capsys, "--models-dir", str(models_dir), "--json", "verify", "empty")
    assert code == 1 and "no model.bin" in err and not out["ok"]


def test_remove_deletes_only_inside_the_models_dir(
    built: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(built / "nllb-tiny", models_dir / "nllb-tiny")
    outside = shutil.copytree(built / "nllb-tiny", tmp_path / "elsewhere")
    for name in (str(outside), "../elsewhere", str(models_dir), "."):
        code, _, err = run(capsys, "--models-dir", str(models_dir), "remove", name)
        assert code == 2 and "refusing" in err, name
    assert outside.is_dir()
    code, out, _ = run(capsys, "--models-dir", str(models_dir), "--json", "remove", "nllb-tiny")
    assert code == 0 and out["ok"] and not (models_dir / "nllb-tiny").exists()
    code, _, err = run(capsys, "--models-dir", str(models_dir), "remove", "nllb-tiny")
    assert code == 1 and "not an installed model" in err
