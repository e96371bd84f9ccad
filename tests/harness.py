"""A real BabelCall server in a subprocess, and the account steps every end-to-end test needs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from media.file_source import decode_file, write_wav
from participant.rest import RestClient

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    admin: RestClient | None = None  # made by `babelcall admin create` before the first start
    env: dict[str, str] = field(default_factory=dict)  # the process's environment, for restart_server

    def member(self, name: str, email: str) -> RestClient:
        """Apply, get approved by the administrator, sign in."""
        client = RestClient(self.base_url)
        status, body = client.call("POST", "/api/apply", {"name": name, "email": email, "password": PASSWORD})
        assert status == 201, body
        assert self.admin is not None
        status, decided = self.admin.call("POST", f"/api/admin/members/{body['member']['id']}/approve")
        assert status == 200, decided
        status, body = client.call("POST", "/api/login", {"email": email, "password": PASSWORD})
        assert status == 200, body
        return client

    def setup_links(self) -> list[str]:
        """The one-time setup links the server printed, oldest first."""
        return re.findall(r"(https?://\S+/setup#\S+)", self.log())


ADMIN_EMAIL = "admin@example.org"


def create_admin(env: dict[str, str], email: str = ADMIN_EMAIL, name: str = "Site Administrator") -> None:
    """`babelcall admin create`, as a scripted install runs it, with the password in the environment."""
    created = subprocess.run(
        [sys.executable, "-m", "server", "admin", "create", "--email", email, "--name", name],
        env={**env, "BABELCALL_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr


def start_server(
    data_dir: Path, whisper_model: Path, *, with_admin: bool = True, **settings: str
) -> RunningServer:
    port = free_port()
    env = {
        **os.environ,
        "BABELCALL_DATA_DIR": str(data_dir),
        "BABELCALL_PORT": str(port),
        "BABELCALL_WHISPER_MODEL": str(whisper_model),
        # Every test applies for memberships from the same address, far more than a person would.
        "BABELCALL_APPLICATIONS_PER_ADDRESS": "0",
        **{f"BABELCALL_{key.upper()}": value for key, value in settings.items()},
    }
    scheme = "https" if "tls_cert" in settings else "http"
    log_path = data_dir / "server.log"
    if with_admin:
        create_admin(env)
    server = RunningServer(f"{scheme}://127.0.0.1:{port}", _launch(env, log_path), log_path, env=env)
    _wait_until_ready(server)
    if with_admin:
        server.admin = RestClient(server.base_url)
        status, body = server.admin.call("POST", "/api/login", {"email": ADMIN_EMAIL, "password": PASSWORD})
        assert status == 200, body
    return server


def restart_server(server: RunningServer) -> None:
    """Stop the server and start it again on the same port and data: members, rooms and sessions stay."""
    stop_server(server)
    start_stopped_server(server)


def start_stopped_server(server: RunningServer) -> None:
    """Start a server that `stop_server` stopped, on the same port and data."""
    server.process = _launch(server.env, server.log_path)
    _wait_until_ready(server)


def _launch(env: dict[str, str], log_path: Path) -> subprocess.Popen[str]:
    log_file = open(log_path, "w")  # noqa: SIM115 - the subprocess writes to it for its whole life
    return subprocess.Popen(
        [sys.executable, "-m", "server", "serve"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_until_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + 120
    while "BabelCall is ready" not in server.log():
        if server.process.poll() is not None or time.monotonic() > deadline:
            server.process.kill()
            raise RuntimeError(f"server did not start:\n{server.log()}")
        time.sleep(0.2)


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()


def padded_speech(source: Path, target: Path, lead_s: float, tail_s: float, rate: int = 48_000) -> Path:
    """`source` as a WAV with silence before (time to connect) and after (time to hear the pause)."""
    speech = decode_file(source, rate)
    silence = np.zeros(int(lead_s * rate), dtype=np.int16), np.zeros(int(tail_s * rate), dtype=np.int16)
    return write_wav(target, np.concatenate([silence[0], speech, silence[1]]), rate)


def normalised_words(text: str) -> str:
    return " ".join("".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split())


def reference_text(speech_dir: Path, file_name: str) -> str:
    """The reference transcript of a development clip, from its refs.tsv."""
    for line in (speech_dir / "refs.tsv").read_text().splitlines()[1:]:
        columns = line.split("\t")
        if columns[0] == file_name:
            return columns[3]
    raise KeyError(file_name)
