"""The server's side of media: rooms pinned to media worker processes, and each speaker's decoded audio.

    browser ─WebRTC─► media worker k (media/worker.py: aiortc, relay, audio tap)
                           │ 16 kHz float32 batches per speaker, over a pipe
                           ▼
                      MediaHub.listen(participant) in the server process ─► speech recognition

All of a room's peer connections live in one worker, chosen when the room first negotiates (the one
with the fewest participants), so relaying a participant's media to the others never crosses
processes. A worker that dies takes its rooms' calls with it; the hub reports who was affected and
starts a replacement for the rooms that come next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from media.audio_tap import SAMPLE_RATE
from media.channel import ChannelError, encode_message, read_message
from media.peers import NegotiationError
from media.worker import WorkerSettings
from protocol.privacy import describe_exception

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 60.0
_REQUEST_TIMEOUT_S = 30.0
_CLOSE_TIMEOUT_S = 5.0
# Where `media` lives, so a worker imports this same code however the server was started.
_SOURCE_ROOT = str(Path(__file__).resolve().parent.parent)


class MediaUnavailableError(RuntimeError):
    """The media worker of this room failed or did not answer; the participant must join again."""


@dataclass(frozen=True)
class MediaSettings:
    workers: int = 1
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    # Decoded audio held per speaker while recognition is behind; beyond it the oldest is dropped (and
    # counted), so a stalled recogniser costs words, not the server's memory.
    max_buffered_audio_s: float = 120.0


@dataclass(frozen=True)
class MediaFigures:
    workers: int
    participants: int
    buffered_audio_s: float
    dropped_audio_s: float


class _AudioBuffer:
    """One speaker's audio between the worker's pipe and recognition: never blocks the pipe reader
    (one slow speaker must not hold up the others in the same worker), bounded by dropping the oldest."""

    def __init__(self, max_samples: int) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self.samples = 0
        self.dropped_samples = 0
        self._max_samples = max_samples
        self._ended = False
        self._ready = asyncio.Event()

    def put(self, chunk: np.ndarray) -> None:
        if self._ended:
            return
        self._chunks.append(chunk)
        self.samples += len(chunk)
        while self.samples > self._max_samples and len(self._chunks) > 1:
            dropped = self._chunks.popleft()
            self.samples -= len(dropped)
            self.dropped_samples += len(dropped)
        self._ready.set()

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    async def chunks(self) -> AsyncIterator[np.ndarray]:
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self.samples -= len(chunk)
                yield chunk
            if self._ended:
                return
            self._ready.clear()
            await self._ready.wait()


class _Worker:
    """One worker process and the requests waiting for its replies."""

    def __init__(self, index: int, process: asyncio.subprocess.Process) -> None:
        self.index = index
        self.process = process
        self.participants: set[str] = set()
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and self.reader is not None and not self.reader.done()

    def send(self, header: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(encode_message(header))


class MediaHub:
    """Negotiates participants' peer connections in the room's worker and hands out their audio."""

    def __init__(self, settings: MediaSettings) -> None:
        if settings.workers < 1:
            raise ValueError("at least one media worker")
        self._settings = settings
        self._workers: list[_Worker | None] = [None] * settings.workers
        self._room_workers: dict[str, _Worker] = {}
        self._participant_rooms: dict[str, str] = {}
        self._audio: dict[str, _AudioBuffer] = {}
        self._dropped_samples = 0
        self._next_id = 0
        self._closing = False
        self._lost_listeners: list[Callable[[list[str]], None]] = []
        self._restarts: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start every worker and wait until each is ready to negotiate."""
        await asyncio.gather(*(self._start_worker(index) for index in range(len(self._workers))))
        log.info("%d media worker(s) ready", len(self._workers))

    def on_lost(self, listener: Callable[[list[str]], None]) -> None:
        """`listener(participant_ids)` runs when a worker dies with those participants' calls in it."""
        self._lost_listeners.append(listener)

    async def publish(
        self, room_id: str, participant_id: str, offer_sdp: str, *, listen: bool = True
    ) -> tuple[str, list[str]]:
        """Accept a publication (a participant's camera and microphone, or a shared screen under an id
        of its own); return the SDP answer and the kinds published. With `listen`, a published
        microphone's audio is then available from `listen()`."""
        # Ready before the request: the worker's first audio batch can follow its reply immediately.
        buffer = _AudioBuffer(round(self._settings.max_buffered_audio_s * SAMPLE_RATE)) if listen else None
        if buffer is not None:
            self._audio[participant_id] = buffer
        published_audio = False
        try:
            reply = await self._request(
                room_id, participant_id, {"op": "publish", "sdp": offer_sdp, "tap": listen}
            )
            kinds = [str(kind) for kind in reply["kinds"]]
            published_audio = "audio" in kinds
        finally:
            if buffer is not None and not published_audio and self._audio.get(participant_id) is buffer:
                del self._audio[participant_id]
        return str(reply["sdp"]), kinds

    async def subscribe(self, room_id: str, subscriber_id: str, publisher_id: str, offer_sdp: str) -> str:
        """Answer a receive-only offer with relayed copies of `publisher_id`'s tracks."""
        reply = await self._request(
            room_id, subscriber_id, {"op": "subscribe", "publisher": publisher_id, "sdp": offer_sdp}
        )
        return str(reply["sdp"])

    def listen(self, participant_id: str) -> AsyncIterator[np.ndarray]:
        """The participant's published audio as 16 kHz mono float32 chunks, until the microphone track
        ends, the participant is removed, or its worker dies."""
        buffer = self._audio.get(participant_id)
        if buffer is None:
            raise NegotiationError(f"participant {participant_id} publishes no audio")
        return buffer.chunks()

    async def remove(self, participant_id: str) -> None:
        """Close every connection of the participant."""
        buffer = self._audio.pop(participant_id, None)
        if buffer is not None:
            buffer.end()
            self._dropped_samples += buffer.dropped_samples
        room_id = self._participant_rooms.pop(participant_id, None)
        worker = self._room_workers.get(room_id) if room_id is not None else None
        if worker is None:
            return
        worker.participants.discard(participant_id)
        if not any(room == room_id for room in self._participant_rooms.values()):
            del self._room_workers[room_id]  # the room is empty here: pin it afresh next time
        if worker.alive:
            with contextlib.suppress(MediaUnavailableError):
                await self._call(worker, {"op": "remove", "participant": participant_id})

    def worker_of(self, room_id: str) -> int | None:
        """The index of the worker running the room's connections, if it has any."""
        worker = self._room_workers.get(room_id)
        return worker.index if worker is not None else None

    def worker_pids(self) -> list[int]:
        return [worker.process.pid for worker in self._alive_workers()]

    def figures(self) -> MediaFigures:
        return MediaFigures(
            workers=len(self._alive_workers()),
            participants=len(self._participant_rooms),
            buffered_audio_s=sum(buffer.samples for buffer in self._audio.values()) / SAMPLE_RATE,
            dropped_audio_s=(
                self._dropped_samples + sum(buffer.dropped_samples for buffer in self._audio.values())
            )
            / SAMPLE_RATE,
        )

    async def close(self) -> None:
        """Close every connection and end the workers."""
        self._closing = True
        for task in self._restarts:
            task.cancel()
        await asyncio.gather(*(self._stop(worker) for worker in self._workers if worker is not None))

    async def _request(self, room_id: str, participant_id: str, request: dict[str, Any]) -> dict[str, Any]:
        worker = self._room_workers.get(room_id) or await self._least_busy_worker()
        self._room_workers[room_id] = worker
        self._participant_rooms[participant_id] = room_id
        worker.participants.add(participant_id)
        reply = await self._call(worker, {**request, "participant": participant_id})
        if not reply.get("ok"):
            if reply.get("error") == "negotiation":
                raise NegotiationError(str(reply.get("message")))
            raise MediaUnavailableError(f"the media worker failed ({reply.get('message')})")
        return reply

    async def _least_busy_worker(self) -> _Worker:
        alive = self._alive_workers()
        if not alive and not self._closing:
            # Replacements may be starting; one whose start failed earlier is tried again now.
            if not self._restarts:
                for index, worker in enumerate(self._workers):
                    if worker is None or not worker.alive:
                        self._schedule_restart(index)
            await asyncio.wait(self._restarts, timeout=_START_TIMEOUT_S)
            alive = self._alive_workers()
        if not alive:
            raise MediaUnavailableError("no media worker is running; try again shortly")
        return min(alive, key=lambda worker: len(worker.participants))

    def _alive_workers(self) -> list[_Worker]:
        return [worker for worker in self._workers if worker is not None and worker.alive]

    async def _call(self, worker: _Worker, request: dict[str, Any]) -> dict[str, Any]:
        if not worker.alive:
            raise MediaUnavailableError("this room's media worker has stopped; join the room again")
        self._next_id += 1
        request_id = self._next_id
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        worker.replies[request_id] = reply
        try:
            worker.send({**request, "id": request_id})
            return await asyncio.wait_for(reply, _REQUEST_TIMEOUT_S)
        except TimeoutError as error:
            raise MediaUnavailableError("the media worker did not answer in time") from error
        finally:
            worker.replies.pop(request_id, None)

    async def _start_worker(self, index: int) -> None:
        python_path = os.pathsep.join(filter(None, [_SOURCE_ROOT, os.environ.get("PYTHONPATH")]))
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "media",
                self._settings.worker.to_json(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": python_path},
                limit=2**20,
            )
        except OSError as error:  # out of processes or memory, say
            raise MediaUnavailableError(f"media worker {index} could not be started: {error}") from error
        worker = _Worker(index, process)
        assert process.stdout is not None
        try:
            first = await asyncio.wait_for(read_message(process.stdout), _START_TIMEOUT_S)
        except (TimeoutError, ChannelError) as error:
            process.kill()
            raise MediaUnavailableError(f"media worker {index} did not start: {error!r}") from error
        if first is None or not first[0].get("ready"):
            process.kill()
            raise MediaUnavailableError(
                f"media worker {index} did not start (exit code {process.returncode})"
            )
        worker.reader = asyncio.create_task(self._read(worker), name=f"media-worker-{index}")
        self._workers[index] = worker

    async def _read(self, worker: _Worker) -> None:
        assert worker.process.stdout is not None
        try:
            while (message := await read_message(worker.process.stdout)) is not None:
                header, body = message
                if "audio" in header:
                    buffer = self._audio.get(str(header["audio"]))
                    if buffer is not None:
                        buffer.put(np.frombuffer(body, dtype="<f4"))
                elif "audio_end" in header:
                    buffer = self._audio.get(str(header["audio_end"]))
                    if buffer is not None:
                        buffer.end()
                else:
                    reply = worker.replies.get(header.get("id", -1))
                    if reply is not None and not reply.done():
                        reply.set_result(header)
        except ChannelError as error:
            log.error("media worker %d sent garbage (%s); stopping it", worker.index, error)
            worker.process.kill()
        finally:
            if not self._closing:
                self._lose(worker)

    def _lose(self, worker: _Worker) -> None:
        lost = sorted(worker.participants)
        log.error(
            "media worker %d (pid %d) stopped; %d participant(s) lost their call",
            worker.index,
            worker.process.pid,
            len(lost),
        )
        for reply in worker.replies.values():
            if not reply.done():
                reply.set_exception(MediaUnavailableError("this room's media worker stopped"))
        for participant_id in lost:
            self._participant_rooms.pop(participant_id, None)
            # Ended, so recognition finishes what it heard; forgotten, so publishing again starts afresh.
            buffer = self._audio.pop(participant_id, None)
            if buffer is not None:
                buffer.end()
                self._dropped_samples += buffer.dropped_samples
        for room_id in [room for room, pinned in self._room_workers.items() if pinned is worker]:
            del self._room_workers[room_id]
        with contextlib.suppress(ProcessLookupError):
            worker.process.kill()
        for listener in self._lost_listeners:
            listener(lost)
        self._schedule_restart(worker.index)

    def _schedule_restart(self, index: int) -> None:
        restart = asyncio.create_task(self._restart(index), name=f"media-worker-{index}-restart")
        self._restarts.add(restart)
        restart.add_done_callback(self._restarts.discard)

    async def _restart(self, index: int) -> None:
        try:
            await self._start_worker(index)
            log.info("media worker %d restarted", index)
        except MediaUnavailableError as error:
            log.error("media worker %d could not be restarted: %s", index, describe_exception(error))

    async def _stop(self, worker: _Worker) -> None:
        assert worker.process.stdin is not None
        with contextlib.suppress(ConnectionError):
            worker.process.stdin.close()  # end of input: the worker closes its connections and exits
        try:
            await asyncio.wait_for(worker.process.wait(), _CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning("media worker %d did not stop in time; killing it", worker.index)
            worker.process.kill()
            await worker.process.wait()
        if worker.reader is not None:
            worker.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker.reader
