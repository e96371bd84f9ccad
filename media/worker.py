"""A media worker process: the WebRTC peer connections of the rooms pinned to it, and their audio taps.

The server (media/hub.py) starts it as `python -m media SETTINGS_JSON` and talks to it over
stdin/stdout (media/channel.py); logs go to stderr. Every WebRTC packet (ICE, DTLS, SRTP, RTP, the
jitter buffer, Opus decoding, the video relay) is handled here, on this process's own event loop, so
that work spreads over as many cores as there are workers; the server receives only each speaker's
decoded 16 kHz audio, a few batches a second.

Requests, each with an "id" echoed in its reply ({"id", "ok": true, ...} or {"id", "ok": false,
"error": "negotiation" | "internal", "message"}):

    {"op": "publish", "participant": P, "sdp": OFFER, "tap": true} -> {"sdp": ANSWER, "kinds": [...]}
        ("tap": false: a shared screen's audio is relayed, not sent to the server for captions)
    {"op": "subscribe", "participant": P, "publisher": Q, "sdp": OFFER} -> {"sdp": ANSWER}
    {"op": "remove", "participant": P}                             -> {}

Unprompted messages: {"ready": true} once at start-up; {"audio": P} with float32 samples as the body;
{"audio_end": P} when P's microphone track ended. Closing stdin closes every connection and ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from media.audio_level import use_fast_audio_level
from media.audio_tap import SAMPLE_RATE, tap_track
from media.channel import encode_message, read_message
from media.ice import enable_loopback_candidates
from media.peers import NegotiationError, PeerConnections
from protocol.privacy import describe_exception

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    ice_servers: tuple[str, ...] = ()
    loopback_candidates: bool = True
    # Audio goes to the server in batches this long: each message costs the server's event loop a
    # little, and 60 ms is 3 Opus frames, small next to the silence that ends an utterance.
    audio_batch_s: float = 0.06
    log_level: int = logging.INFO

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSettings:
        values = json.loads(text)
        return cls(**{**values, "ice_servers": tuple(values.get("ice_servers", ()))})


class MediaWorker:
    def __init__(self, settings: WorkerSettings, writer: asyncio.StreamWriter) -> None:
        self._settings = settings
        self._writer = writer
        self._peers = PeerConnections(list(settings.ice_servers))
        self._taps: dict[str, asyncio.Task[None]] = {}
        self._requests: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader) -> None:
        self._send({"ready": True})
        try:
            while (message := await read_message(reader)) is not None:
                # Each request runs on its own: one room's slow negotiation must not hold up another's.
                task = asyncio.create_task(self._answer(message[0]))
                self._requests.add(task)
                task.add_done_callback(self._requests.discard)
        finally:
            for task in [*self._requests, *self._taps.values()]:
                task.cancel()
            await self._peers.close()

    async def _answer(self, request: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": request.get("id")}
        tap_after_reply: str | None = None
        try:
            op = request.get("op")
            if op == "publish":
                participant_id = str(request["participant"])
                answer, publication = await self._peers.publish(participant_id, str(request["sdp"]))
                reply.update(sdp=answer, kinds=publication.kinds)
                if publication.audio is not None and request.get("tap", True):
                    tap_after_reply = participant_id
            elif op == "subscribe":
                answer = await self._peers.subscribe(
                    str(request["participant"]), str(request["publisher"]), str(request["sdp"])
                )
                reply.update(sdp=answer)
            elif op == "remove":
                participant_id = str(request["participant"])
                tap = self._taps.pop(participant_id, None)
                if tap is not None:
                    tap.cancel()
                await self._peers.remove(participant_id)
            else:
                raise ValueError(f"unknown op {op!r}")
            reply["ok"] = True
        except NegotiationError as error:
            reply.update(ok=False, error="negotiation", message=str(error))
        except Exception as error:
            log.error("media request %s failed: %s", request.get("op"), describe_exception(error))
            reply.update(ok=False, error="internal", message=type(error).__name__)
        self._send(reply)
        if tap_after_reply is not None:
            # Only now, so the server knows the participant published audio before its first batch.
            self._taps[tap_after_reply] = asyncio.create_task(
                self._stream_audio(tap_after_reply), name=f"tap-{tap_after_reply}"
            )

    async def _stream_audio(self, participant_id: str) -> None:
        batch_samples = max(1, round(self._settings.audio_batch_s * SAMPLE_RATE))
        pending: list[np.ndarray] = []
        pending_samples = 0

        async def collect(samples: np.ndarray) -> None:
            nonlocal pending_samples
            pending.append(samples)
            pending_samples += len(samples)
            if pending_samples >= batch_samples:
                await self._send_audio(participant_id, pending)
                pending.clear()
                pending_samples = 0

        with contextlib.suppress(asyncio.CancelledError):
            await tap_track(self._peers.listen(participant_id), collect)
            await self._send_audio(participant_id, pending)
            self._send({"audio_end": participant_id})

    async def _send_audio(self, participant_id: str, chunks: list[np.ndarray]) -> None:
        if chunks:
            samples = np.concatenate(chunks).astype("<f4", copy=False)
            self._send({"audio": participant_id}, samples.tobytes())
            # When the server falls behind, the pipe fills and this tap waits; frames queue in aiortc.
            await self._writer.drain()

    def _send(self, header: dict[str, Any], body: bytes = b"") -> None:
        self._writer.write(encode_message(header, body))


async def _connect_stdio() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """stdin and a private copy of stdout as asyncio streams; fd 1 itself then points at stderr, so a
    stray print from any library lands in the log instead of corrupting the channel."""
    loop = asyncio.get_running_loop()
    channel_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", 0))
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, channel_out)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return reader, writer


async def _main(settings: WorkerSettings) -> None:
    reader, writer = await _connect_stdio()
    await MediaWorker(settings, writer).serve(reader)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


def main(argv: list[str]) -> int:
    settings = WorkerSettings.from_json(argv[0]) if argv else WorkerSettings()
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s %(levelname)s media-worker-{os.getpid()} %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if settings.log_level > logging.DEBUG:
        for noisy in ("aioice", "aiortc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    # Ctrl-C in a terminal reaches the whole process group; the server ends its workers itself (by
    # closing their stdin) after closing its calls, and a worker that dies first would cut them short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if settings.loopback_candidates:
        enable_loopback_candidates()
    use_fast_audio_level()
    asyncio.run(_main(settings))
    return 0
