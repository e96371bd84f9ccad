"""HTTPS served by BabelCall itself: browsers on other machines get the microphone only on https://."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trustme
from harness import PASSWORD, start_server, stop_server, write_wav

pytestmark = pytest.mark.slow


def write_certificate(directory: Path, *names: str) -> tuple[Path, Path, Path]:
    """A test CA and a certificate it issued for `names` (default 127.0.0.1 and localhost):
    (certificate chain, key, CA) PEM files."""
    authority = trustme.CA()
    issued = authority.issue_cert(*(names or ("127.0.0.1", "localhost")))
    chain, key, ca = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca))
    return chain, key, ca


def test_https_serves_the_api_secure_cookies_and_signalling_over_wss(
    tmp_path: Path, whisper_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain, key, ca = write_certificate(tmp_path)
    # Clients trust the test CA the way they trust a public one: through the default verify paths.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = start_server(data_dir, whisper_model_path, tls_cert=str(chain), tls_key=str(key))
    try:
        assert server.base_url.startswith("https://")
        assert f"BabelCall is ready: {server.base_url}/" in server.log()
        admin = server.admin
        assert admin is not None
        session_cookies = list(admin.jar)
        assert session_cookies and all(cookie.secure for cookie in session_cookies)
        status, body = admin.call("POST", "/api/rooms", {"kind": "consultation"})
        assert status == 201, body

        # The headless participant signs in, joins over wss:// and publishes a second of silence.
        silence = write_wav(tmp_path / "silence.wav", np.zeros(48_000, dtype=np.int16), 48_000)
        command = [sys.executable, "-m", "server", "join", server.base_url + body["link"]]
        command += ["--email", "admin@example.org", "--audio", str(silence), "--speaks", "en"]
        command += ["--captions", "fr", "--linger", "0.5"]
        environment = {**os.environ, "BABELCALL_PASSWORD": PASSWORD}
        joined = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
        assert joined.returncode == 0, joined.stderr
        # Without the CA the same client refuses the server's certificate.
        del environment["SSL_CERT_FILE"]
        refused = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert (
            "certificate this machine does not trust" in refused.stderr and "SSL_CERT_FILE" in refused.stderr
        )

        # Plain HTTP on the TLS port gets no answer.
        plain = type(admin)(server.base_url.replace("https://", "http://", 1))
        with pytest.raises(OSError):
            plain.call("GET", "/api/me")
    finally:
        stop_server(server)
