"""A call whose media can only flow through a real TURN server (coturn), as across hospital networks.

Three networks, each its own network namespace:

    server side (the test's own)   relay (coturn, and a TCP forwarder)   clinic (the participant)
    10.1.0.1  ------------------  10.1.0.2 | 10.2.0.1  ------------------  10.2.0.2

The relay namespace does not forward IP, and the clinic has no route to 10.1.0.0/24: the participant
(`babelcall join`) reaches BabelCall's web server only through the forwarder, as a hospital's HTTPS
proxy, and BabelCall's media addresses not at all. coturn listens on the clinic side and relays from
the server side, configured as the README recommends (shared secret, peers on private networks
refused except BabelCall's own address). Without TURN configured the same call gets no media.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from conftest import require_network_namespaces, require_turn_server
from harness import (
    PASSWORD,
    RunningServer,
    normalised_words,
    reference_text,
    start_server,
    stop_server,
    write_wav,
)
from test_tls import write_certificate
from turn_network import Namespace, TurnServer, connect, start_forwarder, start_turn_server

from protocol import CaptionEvent
from protocol.captions import transcript

pytestmark = pytest.mark.slow

SERVER_ADDRESS = "10.1.0.1"  # BabelCall's web server and media, in the test's own namespace
RELAY_SERVER_SIDE = "10.1.0.2"  # coturn's relayed addresses
RELAY_CLINIC_SIDE = "10.2.0.1"  # coturn's listeners and the web proxy, as the clinic sees them
CLINIC_ADDRESS = "10.2.0.2"
PROXY_PORT = 8443
TURN_SECRET = "shared by BabelCall and coturn only"
_SERVER_LINK = "bc-server"


@dataclass
class HospitalNetworks:
    relay: Namespace
    clinic: Namespace
    turn: TurnServer
    certificate_authority: Path  # the clinic trusts it, as it would trust a public CA


@pytest.fixture(scope="module")
def networks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HospitalNetworks]:
    require_network_namespaces()
    require_turn_server()
    directory = tmp_path_factory.mktemp("turn")
    relay, clinic = Namespace("relay"), Namespace("clinic")
    turn: TurnServer | None = None
    try:
        connect(None, _SERVER_LINK, SERVER_ADDRESS, relay, "relay-server", RELAY_SERVER_SIDE)
        connect(relay, "relay-clinic", RELAY_CLINIC_SIDE, clinic, "clinic", CLINIC_ADDRESS)
        assert relay.run("cat", "/proc/sys/net/ipv4/ip_forward").strip() == "0"
        no_route = subprocess.run(clinic.command("ip", "route", "get", SERVER_ADDRESS), capture_output=True)
        assert no_route.returncode != 0, "the clinic must have no route to BabelCall's addresses"
        chain, key, ca = write_certificate(directory, RELAY_CLINIC_SIDE)
        turn = start_turn_server(
            directory,
            TURN_SECRET,
            listening_ip=RELAY_CLINIC_SIDE,
            relay_ip=RELAY_SERVER_SIDE,
            tls_port=443,
            tls_files=(chain, key),
            extra=["--denied-peer-ip=10.0.0.0-10.255.255.255", f"--allowed-peer-ip={SERVER_ADDRESS}"],
            namespace=relay,
        )
        yield HospitalNetworks(relay, clinic, turn, ca)
    finally:
        if turn is not None:
            turn.stop()
        relay.close()  # takes its veth ends, and so their peers here, with it
        clinic.close()
        subprocess.run(["ip", "link", "delete", _SERVER_LINK], capture_output=True, check=False)


def _start_babelcall(tmp_path: Path, whisper_model_path: Path, **settings: str) -> RunningServer:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # Listening on every address of this namespace: the forwarder reaches it on SERVER_ADDRESS, the
    # test on 127.0.0.1. Media is offered on SERVER_ADDRESS only.
    return start_server(
        data_dir,
        whisper_model_path,
        host="0.0.0.0",
        loopback_candidates="false",
        media_workers="1",
        **settings,
    )


def _join_from_the_clinic(
    networks: HospitalNetworks, server: RunningServer, audio: Path
) -> tuple[subprocess.CompletedProcess[str], str]:
    """`babelcall join` run in the clinic, through the proxy; returns its result and the member's id."""
    member = server.member("Dr Clinic", "clinic@example.org")
    status, body = member.call("POST", "/api/rooms", {"kind": "consultation"})
    assert status == 201, body
    status, me = member.call("GET", "/api/me")
    assert status == 200, me
    port = urlsplit(server.base_url).port
    assert port is not None
    proxy = start_forwarder(networks.relay, (RELAY_CLINIC_SIDE, PROXY_PORT), (SERVER_ADDRESS, port))
    try:
        command = [
            sys.executable,
            "-m",
            "server",
            "join",
            f"http://{RELAY_CLINIC_SIDE}:{PROXY_PORT}{body['link']}",
        ]
        command += [
            "--email",
            "clinic@example.org",
            "--audio",
            str(audio),
            "--speaks",
            "en",
            "--captions",
            "en",
        ]
        command += ["--linger", "8", "--no-loopback"]
        environment = {
            **os.environ,
            "BABELCALL_PASSWORD": PASSWORD,
            "SSL_CERT_FILE": str(networks.certificate_authority),
        }
        joined = subprocess.run(
            networks.clinic.command(*command), env=environment, capture_output=True, text=True, timeout=180
        )
    finally:
        proxy.stop()
    return joined, str(me["member"]["id"])


@pytest.mark.parametrize(
    "turn_url",
    [f"turn:{RELAY_CLINIC_SIDE}:3478?transport=udp", f"turns:{RELAY_CLINIC_SIDE}:443?transport=tcp"],
    ids=["udp", "tls"],
)
def test_a_call_whose_media_only_a_turn_relay_can_carry(
    networks: HospitalNetworks,
    turn_url: str,
    whisper_model_path: Path,
    speech_dir: Path,
    tmp_path: Path,
) -> None:
    server = _start_babelcall(tmp_path, whisper_model_path, turn_urls=turn_url, turn_secret=TURN_SECRET)
    networks.turn.new_log()
    try:
        joined, member_id = _join_from_the_clinic(networks, server, speech_dir / "en_jfk.flac")
    finally:
        stop_server(server)
    turn_log = networks.turn.new_log()
    assert joined.returncode == 0, f"{joined.stderr}\ncoturn:\n{turn_log}\nserver:\n{server.log()}"

    # The speech reached the server's recogniser, and its captions came back: finals made of the
    # clip's words. (How complete and accurate they are is test_participant.py's business: on a
    # loaded machine the last final can come after the participant has left.)
    finals = transcript(map(CaptionEvent.from_json, joined.stdout.splitlines()))
    said = normalised_words(" ".join(event.text for event in finals)).split()
    reference = set(normalised_words(reference_text(speech_dir, "en_jfk.flac")).split())
    assert said, f"no final captions; stderr:\n{joined.stderr}"
    assert sum(word in reference for word in said) >= 0.8 * len(said), said

    # coturn accepted the server's short-lived credentials for this member, bound a channel to
    # BabelCall's media address, and carried the call's audio to it: 11 s of Opus is over 20 kB.
    user = rf"user <\d+:{member_id}>"
    assert re.search(rf"{user}: incoming packet ALLOCATE processed, success", turn_log), turn_log
    assert re.search(
        rf"{user}: incoming packet (CHANNEL_BIND|CREATE_PERMISSION) processed, success", turn_log
    )
    assert f"peer {SERVER_ADDRESS}:" in turn_log
    if turn_url.startswith("turns:"):
        assert re.search(rf"new, realm=<[^>]*>, username=<\d+:{member_id}>, .*method=TLSv1\.[23]", turn_log)
    closed = networks.turn.wait_for_line(rf"closed \(2nd stage\), {user} .* local ([\d.]+:\d+)")
    assert closed.group(1) == turn_url.split(":", 1)[1].split("?")[0], closed.group(0)
    usage = networks.turn.wait_for_line(
        rf"peer usage: realm=<[^>]*>, username=<\d+:{member_id}>, rp=\d+, rb=\d+, sp=\d+, sb=(\d+)"
    )
    assert int(usage.group(1)) > 20_000, usage.group(0)


def test_without_turn_the_clinic_cannot_reach_the_media(
    networks: HospitalNetworks, whisper_model_path: Path, tmp_path: Path
) -> None:
    """The control: the same call with no TURN configured gets no media, so the relay was needed."""
    server = _start_babelcall(tmp_path, whisper_model_path)
    silence = write_wav(tmp_path / "silence.wav", np.zeros(48_000, dtype=np.int16), 48_000)
    networks.turn.new_log()
    try:
        joined, _ = _join_from_the_clinic(networks, server, silence)
    finally:
        stop_server(server)
    assert joined.returncode == 1, joined.stderr
    assert "the audio never reached the server (no media connection)" in joined.stderr
    assert "Traceback" not in joined.stderr
    assert "ALLOCATE" not in networks.turn.new_log()
