"""Argos Translate packages through `babelcall models install | pull | list | verify | remove`: good
packages built at test time in the Argos format, hostile and broken ones, and a local stand-in for the
Argos package index (the internet is not reachable from tests)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from argos_packages import add_symlink, build_package, rewrite

from models import argos, hub
from mt import TranslationEngine
from mt.families import ModelFamily
from server.models_cli import main

FOLDER = "translate-en_fr-1_0"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package(tmp_path_factory.mktemp("argos-en-fr"))


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


def run(capsys: pytest.CaptureFixture[str], models_dir: Path, *argv: str) -> tuple[int, dict, str]:
    code = main(["--models-dir", str(models_dir), "--json", *argv])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}, captured.err


def installed_names(models_dir: Path) -> list[str]:
    """Everything in the models folder, hidden staging folders included: a failed install leaves none."""
    return sorted(p.name for p in models_dir.iterdir())


# --- a good package ---------------------------------------------------------------------------------


def test_install_verify_list_and_remove_a_good_package(
    package: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, models_dir, "install", str(package))
    assert code == 0, err
    target = models_dir / FOLDER
    assert out["path"] == str(target) and out["pair"] == ["en", "fr"]
    assert installed_names(models_dir) == [FOLDER]  # no staging folder left behind
    assert not (target / "stanza").exists()  # the sentence-boundary model is not unpacked
    assert (target / "model" / "model.bin").is_file() and (target / "sentencepiece.model").is_file()
    manifest = json.loads((target / hub.MANIFEST_FILE).read_text())
    assert manifest["files"]["model/model.bin"] == hub.sha256_file(target / "model" / "model.bin")

    code, out, err = run(capsys, models_dir, "verify", FOLDER)
    assert code == 0, err
    assert out["family"] == "argos" and out["manifest"] == "ok" and out["languages"] == ["en", "fr"]
    assert out["sample"]["source"] == "en" and out["sample"]["text"].startswith("Good morning")

    code, out, _ = run(capsys, models_dir, "list")
    listed = {m["name"]: m for m in out["models"]}
    assert listed["translate-en_fr"]["installed"] and listed["translate-en_fr"]["path"] == str(target)
    assert not listed["translate-fr_en"]["installed"]

    # The server loads it like any model directory; its label is the package folder.
    engine = TranslationEngine.from_directory(models_dir)
    assert [(m.name, m.family, m.pair) for m in engine.models] == [(FOLDER, ModelFamily.ARGOS, ("en", "fr"))]

    code, out, _ = run(capsys, models_dir, "remove", "translate-en_fr")  # the pair's name finds the folder
    assert code == 0 and out["path"] == str(target) and installed_names(models_dir) == []


def test_a_hand_copied_package_folder_is_recognised(
    package: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with zipfile.ZipFile(package) as archive:
        archive.extractall(models_dir)  # what an operator does with unzip: stanza/ and all
    code, out, err = run(capsys, models_dir, "verify", FOLDER)
    assert code == 0 and out["manifest"] == "absent" and out["family"] == "argos", err
    code, out, _ = run(capsys, models_dir, "list")
    assert {m["name"]: m for m in out["models"]}["translate-en_fr"]["installed"]
    assert [m.pair for m in TranslationEngine.from_directory(models_dir).models] == [("en", "fr")]


def test_a_second_package_for_the_same_pair_needs_replace(
    package: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, models_dir, "install", str(package))[0] == 0
    newer = build_package(tmp_path / "newer", version="1.1", seed=6)
    code, _, err = run(capsys, models_dir, "install", str(newer))
    assert code == 1 and f"{FOLDER} already installed for en→fr" in err and "--replace" in err
    assert installed_names(models_dir) == [FOLDER]
    code, out, err = run(capsys, models_dir, "install", str(newer), "--replace")
    assert code == 0 and out["replaced"] == [str(models_dir / FOLDER)], err
    assert installed_names(models_dir) == ["translate-en_fr-1_1"]


def test_verify_catches_a_damaged_file(
    package: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, models_dir, "install", str(package))[0] == 0
    with open(models_dir / FOLDER / "model" / "model.bin", "r+b") as f:
        f.truncate(100)
    code, out, err = run(capsys, models_dir, "verify", FOLDER)
    assert code == 1 and out["manifest"] == "failed" and "sha256 mismatch: model/model.bin" in err


def test_install_checks_a_given_sha256(
    package: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, models_dir, "install", str(package), "--sha256", "0" * 64)
    assert code == 1 and "differs from the expected" in err and installed_names(models_dir) == []
    digest = hub.sha256_file(package)
    assert run(capsys, models_dir, "install", str(package), "--sha256", digest)[0] == 0


# --- packages refused, with the reason ---------------------------------------------------------------


def refused(capsys: pytest.CaptureFixture[str], models_dir: Path, archive: Path) -> str:
    code, out, err = run(capsys, models_dir, "install", str(archive))
    assert code == 1 and not out["ok"], err
    assert installed_names(models_dir) == []  # nothing written, not even a staging folder
    return err


def test_a_corrupt_zip_is_refused(
    package: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truncated = tmp_path / "truncated.argosmodel"
    truncated.write_bytes(package.read_bytes()[: package.stat().st_size // 2])  # an interrupted download
    assert "not a zip archive, or a damaged one" in refused(capsys, models_dir, truncated)

    damaged = tmp_path / "damaged.argosmodel"
    data = bytearray(package.read_bytes())
    with zipfile.ZipFile(package) as archive:
        info = archive.getinfo(f"{FOLDER}/model/model.bin")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle : middle + 16] = bytes(16)  # bytes flipped inside the weights: the CRC catches it
    damaged.write_bytes(bytes(data))
    assert "damaged archive" in refused(capsys, models_dir, damaged)


@pytest.mark.parametrize(
    "member",
    [f"{FOLDER}/../../escaped.txt", "/etc/cron.d/escaped", f"{FOLDER}/model/../../../escaped.txt"],
)
def test_a_path_escaping_the_models_folder_is_refused(
    package: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], member: str
) -> None:
    hostile = rewrite(package, tmp_path / "hostile.argosmodel", {member: b"owned"})
    err = refused(capsys, models_dir, hostile)
    assert repr(member) in err and ("outside the models folder" in err or "absolute" in err)
    assert not list(tmp_path.rglob("escaped.txt")) and not Path("/etc/cron.d/escaped").exists()


def test_a_symbolic_link_is_refused(
    package: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = add_symlink(package, tmp_path / "link.argosmodel", f"{FOLDER}/README", "/etc/passwd")
    assert "is a symbolic link" in refused(capsys, models_dir, hostile)


def test_unexpected_members_are_refused(
    package: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = rewrite(package, tmp_path / "script.argosmodel", {f"{FOLDER}/install.sh": b"rm -rf /"})
    assert f"unexpected file '{FOLDER}/install.sh'" in refused(capsys, models_dir, script)
    two = rewrite(package, tmp_path / "two.argosmodel", {"other/metadata.json": b"{}"})
    assert "exactly one folder" in refused(capsys, models_dir, two)


def test_a_package_for_an_unknown_language_is_refused(
    package: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    german = {"package_version": "1.0", "from_code": "en", "to_code": "de"}
    other = rewrite(
        package, tmp_path / "de.argosmodel", {f"{FOLDER}/metadata.json": json.dumps(german).encode()}
    )
    err = refused(capsys, models_dir, other)
    assert "a package for 'de', not a language BabelCall supports" in err


def test_missing_files_are_named(
    package: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, models_dir, "install", str(tmp_path / "nowhere.argosmodel"))
    assert code == 1 and "nowhere.argosmodel: no such file" in err
    for member in ("sentencepiece.model", "model/model.bin", "metadata.json"):
        lacking = rewrite(package, tmp_path / "lacking.argosmodel", {f"{FOLDER}/{member}": None})
        assert f"the package lacks {FOLDER}/{member}" in refused(capsys, models_dir, lacking)
    bad_metadata = rewrite(
        package, tmp_path / "bad.argosmodel", {f"{FOLDER}/metadata.json": b'{"to_code": "fr"}'}
    )
    assert "from_code is missing" in refused(capsys, models_dir, bad_metadata)


def test_a_package_folder_missing_its_tokenizer_does_not_load(
    package: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, models_dir, "install", str(package))[0] == 0
    (models_dir / FOLDER / "sentencepiece.model").unlink()
    (models_dir / FOLDER / hub.MANIFEST_FILE).unlink()
    code, _, err = run(capsys, models_dir, "verify", FOLDER)
    assert code == 1 and "the Argos package lacks sentencepiece.model" in err


# --- pulling from the package index -----------------------------------------------------------------


class PackageIndex(http.server.BaseHTTPRequestHandler):
    """Serves /index.json and the package files, as the Argos index and its download host do."""

    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            return self.send_error(404)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def index_server(package: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PackageIndex)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    PackageIndex.requests = []
    PackageIndex.files = {f"/v1/{package.name}": package.read_bytes()}
    yield base
    server.shutdown()
    server.server_close()


def publish_index(base: str, package: Path, **extra: str) -> str:
    entries = [
        # Another pair, and a pair BabelCall does not translate: both ignored.
        {
            "code": "translate-de_en",
            "from_code": "de",
            "to_code": "en",
            "package_version": "1.9",
            "links": [],
        },
        {
            "code": "translate-en_fr",
            "from_code": "en",
            "from_name": "English",
            "to_code": "fr",
            "to_name": "French",
            "package_version": "1.0",
            "argos_version": "1.9.0",
            "links": [f"{base}/v1/{package.name}", "ipfs://QmNotFetched"],
            **extra,
        },
    ]
    PackageIndex.files["/index.json"] = json.dumps(entries).encode()
    return f"{base}/index.json"


def test_pull_downloads_from_the_index_with_a_progress_bar_and_checks_the_sha256(
    package: Path, models_dir: Path, index_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    index = publish_index(index_server, package, sha256=digest)
    code, out, err = run(capsys, models_dir, "pull", "translate-en_fr", "--index-url", index)
    assert code == 0, err
    assert (
        out["path"] == str(models_dir / FOLDER) and out["sha256"] == digest and out["checksum"] == "verified"
    )
    assert "100.0%" in err and package.name in err  # the progress bar went to stderr
    assert PackageIndex.requests == ["/index.json", f"/v1/{package.name}"]
    assert installed_names(models_dir) == [FOLDER]
    manifest = json.loads((models_dir / FOLDER / hub.MANIFEST_FILE).read_text())
    assert digest in manifest["source"]
    assert run(capsys, models_dir, "verify", FOLDER)[0] == 0


def test_pull_refuses_a_download_whose_checksum_differs(
    package: Path, models_dir: Path, index_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    index = publish_index(index_server, package, sha256="ab" * 32)
    code, _, err = run(capsys, models_dir, "pull", "translate-en_fr", "--index-url", index)
    assert code == 1 and "differs from the expected" in err and installed_names(models_dir) == []
    # Without a published checksum the download is installed and its sha256 recorded; --sha256 checks it.
    index = publish_index(index_server, package)
    code, _, err = run(
        capsys, models_dir, "pull", "translate-en_fr", "--index-url", index, "--sha256", "cd" * 32
    )
    assert code == 1 and "differs from the expected" in err and installed_names(models_dir) == []
    code, out, err = run(capsys, models_dir, "pull", "translate-en_fr", "--index-url", index)
    assert code == 0 and out["checksum"] == "none published: recorded in the manifest", err


def test_pull_without_the_index_or_the_package_explains_the_manual_install(
    package: Path, models_dir: Path, index_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    index = f"{index_server}/missing-index.json"
    code, _, err = run(capsys, models_dir, "pull", "translate-en_fr", "--index-url", index)
    assert code == 1 and "the Argos package index" in err and "HTTP 404" in err
    # The catalogue's own link was tried next (unreachable here), then the manual way is explained.
    assert "download https://argos-net.com/v1/translate-en_fr-1_9.argosmodel" in err
    assert "install translate-en_fr-1_9.argosmodel" in err
    assert installed_names(models_dir) == []


def test_the_argos_index_format_is_read(package: Path, index_server: str) -> None:
    entries = argos.fetch_index(publish_index(index_server, package, sha256="EF" * 32))
    (entry,) = entries
    assert entry.code == "translate-en_fr" and (entry.metadata.source, entry.metadata.target) == ("en", "fr")
    assert entry.links == (f"{index_server}/v1/{package.name}",) and entry.sha256 == "ef" * 32


def test_pull_replaces_an_installed_pair_only_with_force(
    package: Path, models_dir: Path, index_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    index = publish_index(index_server, package)
    assert run(capsys, models_dir, "pull", "translate-en_fr", "--index-url", index)[0] == 0
    code, _, err = run(capsys, models_dir, "pull", "translate-en_fr", "--index-url", index)
    assert code == 1 and "already installed" in err
    assert run(capsys, models_dir, "pull", "translate-en_fr", "--index-url", index, "--force")[0] == 0
    assert installed_names(models_dir) == [FOLDER]
