"""A real TURN server (Debian's coturn) and the network namespaces the relay tests build around it.

Tests run in a private user and network namespace (scripts/test.sh), where they are root: they can
make child network namespaces, each held open by an `unshare -n` process and entered with `nsenter`,
and join them with veth pairs. Nothing here is reachable from outside the test's namespace.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conftest import require_turn_server

TURN_REALM = "babelcall.test"
_FORWARDER = Path(__file__).with_name("tcp_forwarder.py")


def _wait_for(condition: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {condition}")
        time.sleep(0.05)


class Namespace:
    """A child network namespace with only `lo` (up), alive while its holding process runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        # `cat` reads a pipe from this process, so it ends (and leaves no holder behind) if the test dies.
        self._holder = subprocess.Popen(
            ["unshare", "-n", "cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        own = os.readlink("/proc/self/ns/net")
        # unshare(2) runs just after the process starts: until then it still shares our network.
        _wait_for(f"namespace {name}", lambda: os.readlink(f"/proc/{self.pid}/ns/net") != own)
        self.run("ip", "link", "set", "lo", "up")

    @property
    def pid(self) -> int:
        return self._holder.pid

    def command(self, *args: str) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", "--", *args]

    def run(self, *args: str) -> str:
        done = subprocess.run(self.command(*args), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} in namespace {self.name}: {done.stderr.strip()}")
        return done.stdout

    def close(self) -> None:
        # The namespace, and every veth end in it, goes with its last process.
        self._holder.kill()
        self._holder.wait()
        if self._holder.stdin is not None:
            self._holder.stdin.close()


def connect(
    left: Namespace | None,
    left_name: str,
    left_address: str,
    right: Namespace,
    right_name: str,
    right_address: str,
) -> None:
    """A veth pair between two namespaces (None: the test's own), with a /24 address on each end."""

    def run(namespace: Namespace | None, *args: str) -> None:
        if namespace is None:
            subprocess.run(args, check=True, capture_output=True)
        else:
            namespace.run(*args)

    run(left, "ip", "link", "add", "name", left_name, "type", "veth", "peer", "name", right_name)
    run(left, "ip", "link", "set", right_name, "netns", str(right.pid))
    for namespace, name, address in ((left, left_name, left_address), (right, right_name, right_address)):
        run(namespace, "ip", "address", "add", f"{address}/24", "dev", name)
        run(namespace, "ip", "link", "set", name, "up")


@dataclass
class TurnServer:
    """coturn with the shared-secret ("TURN REST API") authentication BabelCall's credentials use."""

    process: subprocess.Popen[str]
    log_path: Path
    _read: int = field(default=0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def new_log(self) -> str:
        """What coturn logged since the previous call."""
        text = self.log()
        fresh, self._read = text[self._read :], len(text)
        return fresh

    def wait_for_line(self, pattern: str, timeout_s: float = 60.0) -> re.Match[str]:
        """The first match of `pattern` in the log (coturn logs a session's usage when it ends,
        a moment after the client released it)."""
        found: list[re.Match[str]] = []

        def logged() -> bool:
            match = re.search(pattern, self.log())
            if match is not None:
                found.append(match)
            return match is not None

        _wait_for(f"coturn to log {pattern!r}", logged, timeout_s)
        return found[0]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_turn_server(
    directory: Path,
    secret: str,
    *,
    listening_ip: str,
    relay_ip: str,
    udp_port: int = 3478,
    tls_port: int | None = None,
    tls_files: tuple[Path, Path] | None = None,
    extra: Sequence[str] = (),
    namespace: Namespace | None = None,
) -> TurnServer:
    """Start coturn listening on `listening_ip` (UDP and TCP on `udp_port`, TLS on `tls_port` with
    `tls_files` = (certificate chain, key)), relaying from `relay_ip`; wait until it listens."""
    turnserver = require_turn_server()
    arguments = [
        turnserver,
        "-n",  # no configuration file: everything is on this line
        "--no-cli",
        "--verbose",  # one line per allocation, permission and session, with bytes relayed
        "--log-file=stdout",
        f"--listening-ip={listening_ip}",
        f"--relay-ip={relay_ip}",
        f"--listening-port={udp_port}",
        "--min-port=49152",
        "--max-port=49407",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={TURN_REALM}",
        "--no-dtls",
        "--no-multicast-peers",
        f"--db={directory / 'turndb'}",
        f"--pidfile={directory / 'turnserver.pid'}",
        *extra,
    ]
    if tls_port is not None and tls_files is not None:
        arguments += [f"--tls-listening-port={tls_port}", f"--cert={tls_files[0]}", f"--pkey={tls_files[1]}"]
        arguments += ["--no-tlsv1", "--no-tlsv1_1"]
    else:
        arguments.append("--no-tls")
    log_path = directory / "turnserver.log"
    command = namespace.command(*arguments) if namespace is not None else arguments
    log_file = open(log_path, "w")  # noqa: SIM115 - coturn writes to it for its whole life
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, text=True)
    server = TurnServer(process, log_path)
    expected = [f"UDP listener opened on: {listening_ip}:{udp_port}"]
    if tls_port is not None:
        expected.append(f"listener opened on : {listening_ip}:{tls_port}")

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"coturn exited:\n{server.log()}")
        log = server.log()
        return all(line in log for line in expected) and "Total General servers" in log

    _wait_for("coturn to listen", listening)
    return server


@dataclass
class Forwarder:
    process: subprocess.Popen[str]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_forwarder(namespace: Namespace, listen: tuple[str, int], target: tuple[str, int]) -> Forwarder:
    """A TCP forwarder in `namespace`: the only way from one side's network to the other's web server."""
    arguments = [sys.executable, str(_FORWARDER), listen[0], str(listen[1]), target[0], str(target[1])]
    process = subprocess.Popen(namespace.command(*arguments), stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "forwarding":
        process.kill()
        raise RuntimeError("the TCP forwarder did not start")
    return Forwarder(process)
