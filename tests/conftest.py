"""Shared fixtures: the development data beside the checkout, and the built-in Whisper model."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _missing(reason: str, required_by: str) -> NoReturn:
    """Skip on a user's clone; fail in CI, where the variable says the thing must be there."""
    if os.environ.get(required_by):
        pytest.fail(f"{reason} (and {required_by} is set)")
    pytest.skip(reason)


def require_shared() -> Path:
    if not (SHARED / "data" / "dev").is_dir():
        _missing(
            f"development data not found at {SHARED} (it sits beside the checkout in CI)",
            "BABELCALL_REQUIRE_SHARED",
        )
    return SHARED


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return require_shared()


@pytest.fixture(scope="session")
def speech_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "dev" / "speech"


@pytest.fixture(scope="session")
def whisper_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models import ModelNotFoundError, resolve_whisper_model

    try:
        return resolve_whisper_model("base")
    except ModelNotFoundError as error:
        pytest.skip(str(error))


def require_browser() -> str:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        _missing(
            "Debian's chromium is not installed (scripts/setup.sh --test installs it)",
            "BABELCALL_REQUIRE_BROWSER",
        )
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        _missing(
            "not inside a private network namespace (scripts/test.sh runs tests in one)",
            "BABELCALL_REQUIRE_BROWSER",
        )
    return chromium


def require_turn_server() -> str:
    """The coturn binary; skips (fails under BABELCALL_REQUIRE_TURN) where it is not installed."""
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        _missing(
            "Debian's coturn is not installed (scripts/setup.sh --test installs it)", "BABELCALL_REQUIRE_TURN"
        )
    return turnserver


def require_network_namespaces() -> None:
    """Skips (fails under BABELCALL_REQUIRE_TURN) unless child network namespaces can be made here."""
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        _missing(
            "not inside a private network namespace (scripts/test.sh runs tests in one)",
            "BABELCALL_REQUIRE_TURN",
        )
    missing = [tool for tool in ("unshare", "nsenter", "ip") if shutil.which(tool) is None]
    if missing:
        _missing(f"{', '.join(missing)} not found (util-linux, iproute2)", "BABELCALL_REQUIRE_TURN")
    made = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if made.returncode != 0:
        _missing(
            f"cannot make a child network namespace here: {made.stderr.strip()}", "BABELCALL_REQUIRE_TURN"
        )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, whisper_model_path: Path):  # type: ignore[no-untyped-def]
    """One real server (real Whisper base, no translation model) for all end-to-end tests."""
    from harness import start_server, stop_server

    running = start_server(tmp_path_factory.mktemp("server"), whisper_model_path)
    yield running
    stop_server(running)
