"""Relaying a published microphone to its subscribers encoded once, not once per subscriber.

aiortc's MediaRelay hands every subscriber the decoded frames, and each subscriber's RTP sender encodes
them to Opus again: with three listeners per speaker those encodes were most of a media worker's CPU.
Here one Opus encoder per published microphone makes the packets and every subscriber's sender gets the
same ones; aiortc's senders send ready-made `av.Packet`s as they are (they only packetise them).
"""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import Callable

import av
from aiortc.codecs.opus import OpusEncoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription

_CLOCK_RATE = 48_000
_TIME_BASE = fractions.Fraction(1, _CLOCK_RATE)
_SAMPLES_PER_PACKET = 960  # 20 ms, aiortc's Opus frame
# A subscriber that stops reading (its connection is going away) keeps at most this much, newest kept.
_MAX_QUEUED_PACKETS = 50


def offers_opus_first(offer_sdp: str) -> bool:
    """Whether the subscriber's offer lists Opus first for audio, so that Opus is what will be sent to it
    (aiortc answers in the order of the offer's rtpmap lines). Browsers and aiortc do; any other offer
    gets the decoded frames, encoded by its own sender in the codec it chose."""
    try:
        description = SessionDescription.parse(offer_sdp)
    except Exception:  # aiortc raises assorted errors on bad SDP; negotiation reports them properly
        return False
    audio = [media for media in description.media if media.kind == "audio"]
    return bool(audio and audio[0].rtp.codecs and audio[0].rtp.codecs[0].name.lower() == "opus")


class SharedOpusEncoding:
    """Encodes one microphone's decoded frames (`frames`, a relay subscription) once for all subscribers."""

    def __init__(self, frames: MediaStreamTrack) -> None:
        self._frames = frames
        self._encoder = OpusEncoder()
        self._queues: set[asyncio.Queue[av.Packet | None]] = set()
        self._pump: asyncio.Task[None] | None = None

    def subscribe(self) -> MediaStreamTrack:
        queue: asyncio.Queue[av.Packet | None] = asyncio.Queue(_MAX_QUEUED_PACKETS)
        self._queues.add(queue)
        if self._pump is None:
            self._pump = asyncio.create_task(self._encode_all(), name="opus-relay")
        return _PacketTrack(queue, self._queues.discard)

    def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        self._frames.stop()

    async def _encode_all(self) -> None:
        try:
            while True:
                frame = await self._frames.recv()
                # 20 ms of Opus takes ~0.1 ms; an executor hand-off per frame would cost more than that.
                payloads, timestamp = self._encoder.encode(frame)
                for index, payload in enumerate(payloads):
                    packet = av.Packet(payload)
                    packet.pts = timestamp + index * _SAMPLES_PER_PACKET
                    packet.time_base = _TIME_BASE
                    for queue in list(self._queues):
                        _put_newest(queue, packet)
        except MediaStreamError:
            pass
        finally:
            for queue in list(self._queues):
                _put_newest(queue, None)


class _PacketTrack(MediaStreamTrack):
    """One subscriber's copy: the shared packets; None in the queue means the microphone ended."""

    kind = "audio"

    def __init__(
        self,
        queue: asyncio.Queue[av.Packet | None],
        forget: Callable[[asyncio.Queue[av.Packet | None]], None],
    ) -> None:
        super().__init__()
        self._queue = queue
        self._forget = forget

    async def recv(self) -> av.Packet:  # type: ignore[override]
        packet = await self._queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        self._forget(self._queue)
        super().stop()


def _put_newest(queue: asyncio.Queue[av.Packet | None], item: av.Packet | None) -> None:
    if queue.full():
        queue.get_nowait()  # drop the oldest
    queue.put_nowait(item)
