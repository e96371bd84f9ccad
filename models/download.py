"""Downloading one file over HTTP(S) with a progress bar on stderr, hashing it on the way.

Shared by the hub (models/hub.py) and the Argos package index (models/argos.py). A download whose
length differs from the server's Content-Length is an error, not a short file.
"""

from __future__ import annotations

import hashlib
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

CHUNK = 1 << 20
USER_AGENT = "babelcall-models"


class DownloadError(RuntimeError):
    """A download failed or came back incomplete; the message names the URL."""


def request(url: str, headers: dict[str, str] | None = None) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})


def download(
    url: str,
    target: Path,
    *,
    label: str | None = None,
    progress: IO[str] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> str:
    """Save `url` as `target`, drawing a progress bar on `progress` (stderr); return its sha256."""
    out = progress if progress is not None else sys.stderr
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(request(url, headers), timeout=timeout) as response,
            open(target, "wb") as sink,
        ):
            total = int(response.headers.get("Content-Length") or 0)
            done = _copy(response, sink, digest, total, label or Path(url).name, out)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DownloadError(f"downloading {url} failed ({getattr(exc, 'reason', exc)})") from exc
    if total and done != total:
        raise DownloadError(f"{url}: received {done} of {total} bytes")
    return digest.hexdigest()


def _copy(
    source: IO[bytes], sink: IO[bytes], digest: hashlib._Hash, total: int, label: str, out: IO[str]
) -> int:
    done, last = 0, 0.0
    while chunk := source.read(CHUNK):
        sink.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        now = time.monotonic()
        if now - last > 0.2:
            last = now
            _bar(out, label, done, total)
    _bar(out, label, done, total)
    out.write("\n")
    out.flush()
    return done


def _bar(out: IO[str], label: str, done: int, total: int) -> None:
    if total:
        filled = int(30 * min(done, total) / total)
        out.write(f"\r{label[:40]:40} [{'#' * filled}{'.' * (30 - filled)}] {done / total:6.1%} ")
    else:
        out.write(f"\r{label[:40]:40} {done / 1e6:10.1f} MB ")
    out.flush()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
