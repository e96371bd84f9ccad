"""Relaying a published track to its subscribers encoded once, not once per subscriber.

aiortc's MediaRelay hands every subscriber the decoded frames, and each subscriber's RTP sender encodes
them again: Opus for a microphone (most of a media worker's CPU with three listeners per speaker) and
VP8 for a camera (~1.5 ms a 640x480 frame on the 2-core development CPU, more whenever aiortc restarts
an encoder for a new bitrate; a 12-person review relays every camera to 11 others). Here one encoder
per published track makes the packets and every subscriber's sender gets the same ones: aiortc's
senders send ready-made `av.Packet`s as they are, only packetising them. Measured with a camera and
three listeners: a media worker's CPU per speaker-second 422 → 187 ms (bench/RESULTS.md).

What a shared encoding cannot do per subscriber: adapt the bitrate to each one's bandwidth (the camera
is encoded at aiortc's default 500 kbps) or answer one subscriber's keyframe request. A camera's
encoding makes a keyframe whenever someone subscribes and every `KEYFRAME_INTERVAL_FRAMES` frames, so a
subscriber that lost packets recovers within a few seconds (3 s at 30 frames a second).
"""

from __future__ import annotations

import asyncio
import fractions
import os
from abc import ABC, abstractmethod
from collections.abc import Callable

import av
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import number_of_threads
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription

_AUDIO_TIME_BASE = fractions.Fraction(1, 48_000)
_OPUS_PACKET_SAMPLES = 960  # 20 ms, aiortc's Opus frame
_VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
_VIDEO_BITRATE = 500_000  # aiortc's default VP8 bitrate
KEYFRAME_INTERVAL_FRAMES = 100
# A subscriber that stops reading (its connection is going away) keeps at most this many, newest kept.
_MAX_QUEUED_PACKETS = 50

Packets = asyncio.Queue[av.Packet | None]


def first_offered_codec(offer_sdp: str, kind: str) -> str | None:
    """The codec the subscriber's offer lists first for `kind` ("audio", "video"), lower case: what it
    will be sent, since aiortc answers in the order of the offer's rtpmap lines. None if unreadable."""
    try:
        description = SessionDescription.parse(offer_sdp)
    except Exception:  # aiortc raises assorted errors on bad SDP; negotiation reports them properly
        return None
    for media in description.media:
        if media.kind == kind and media.rtp.codecs:
            return media.rtp.codecs[0].name.lower()
    return None


class _PacketEncoder(ABC):
    codec: str  # as first_offered_codec names it
    in_thread: bool  # slow enough to take off the event loop (libvpx releases the GIL while it works)

    @abstractmethod
    def encode(self, frame: av.AudioFrame | av.VideoFrame) -> list[av.Packet]: ...

    @abstractmethod
    def request_keyframe(self) -> None:
        """A new subscriber needs a complete picture to start from."""


class _OpusPackets(_PacketEncoder):
    codec = "opus"
    in_thread = False  # ~0.1 ms a frame: a thread hand-off would cost about as much

    def __init__(self) -> None:
        self._encoder = OpusEncoder()

    def request_keyframe(self) -> None:
        pass  # every Opus packet stands alone

    def encode(self, frame: av.AudioFrame | av.VideoFrame) -> list[av.Packet]:
        payloads, timestamp = self._encoder.encode(frame)
        packets = []
        for index, payload in enumerate(payloads):
            packet = av.Packet(payload)
            packet.pts = timestamp + index * _OPUS_PACKET_SAMPLES
            packet.time_base = _AUDIO_TIME_BASE
            packets.append(packet)
        return packets


class _Vp8Packets(_PacketEncoder):
    """libvpx set up as aiortc's Vp8Encoder sets it up (real-time CBR), plus keyframes on request and
    every KEYFRAME_INTERVAL_FRAMES frames."""

    codec = "vp8"
    in_thread = True  # ~1.5 ms a 640x480 frame

    def __init__(self) -> None:
        self._context: av.VideoCodecContext | None = None
        self._keyframe_due = True
        self._since_keyframe = 0

    def request_keyframe(self) -> None:
        self._keyframe_due = True

    def encode(self, frame: av.AudioFrame | av.VideoFrame) -> list[av.Packet]:
        assert isinstance(frame, av.VideoFrame)
        pts = round(frame.pts * frame.time_base / _VIDEO_TIME_BASE) if frame.time_base else frame.pts
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        context = self._context
        if context is None or (frame.width, frame.height) != (context.width, context.height):
            context = self._context = _vp8_context(frame.width, frame.height)
            self._keyframe_due = True
        self._since_keyframe += 1
        if self._keyframe_due or self._since_keyframe >= KEYFRAME_INTERVAL_FRAMES:
            frame.pict_type = av.video.frame.PictureType.I
            self._keyframe_due = False
            self._since_keyframe = 0
        data = b"".join(bytes(packet) for packet in context.encode(frame))
        if not data:
            return []
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = _VIDEO_TIME_BASE
        return [packet]


def _vp8_context(width: int, height: int) -> av.VideoCodecContext:
    context = av.CodecContext.create("libvpx", "w")
    context.width, context.height = width, height
    context.bit_rate = _VIDEO_BITRATE
    context.pix_fmt = "yuv420p"
    context.gop_size = 3000  # keyframes come from request_keyframe and the interval
    context.qmin, context.qmax = 2, 56
    context.options = {
        "bufsize": str(_VIDEO_BITRATE),
        "cpu-used": "-6",
        "deadline": "realtime",
        "lag-in-frames": "0",
        "minrate": str(_VIDEO_BITRATE),
        "maxrate": str(_VIDEO_BITRATE),
        "noise-sensitivity": "4",
        "overshoot-pct": "15",
        "partitions": "0",
        "static-thresh": "1",
        "undershoot-pct": "100",
    }
    # As aiortc chooses: one thread up to 640x480. Left at 0, FFmpeg starts one per core, whose waiting
    # cost more CPU than the encoding itself on 2 cores.
    context.thread_count = number_of_threads(width * height, os.cpu_count() or 1)
    return context


class SharedEncoding:
    """One published track's decoded frames (`frames`, a relay subscription) encoded once for all."""

    def __init__(self, frames: MediaStreamTrack, encoder: _PacketEncoder) -> None:
        self._frames = frames
        self._encoder = encoder
        self._queues: set[Packets] = set()
        self._pump: asyncio.Task[None] | None = None

    @classmethod
    def for_track(cls, frames: MediaStreamTrack) -> SharedEncoding:
        return cls(frames, _OpusPackets() if frames.kind == "audio" else _Vp8Packets())

    @property
    def codec(self) -> str:
        return self._encoder.codec

    def subscribe(self) -> MediaStreamTrack:
        queue: Packets = asyncio.Queue(_MAX_QUEUED_PACKETS)
        self._queues.add(queue)
        self._encoder.request_keyframe()
        if self._pump is None:
            self._pump = asyncio.create_task(self._encode_all(), name=f"shared-{self._frames.kind}")
        return _PacketTrack(self._frames.kind, queue, self._queues.discard)

    def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        self._frames.stop()

    async def _encode_all(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await self._frames.recv()
                if self._encoder.in_thread:
                    packets = await loop.run_in_executor(None, self._encoder.encode, frame)
                else:
                    packets = self._encoder.encode(frame)
                for packet in packets:
                    for queue in list(self._queues):
                        _put_newest(queue, packet)
        except MediaStreamError:
            pass
        finally:
            for queue in list(self._queues):
                _put_newest(queue, None)


class _PacketTrack(MediaStreamTrack):
    """One subscriber's copy: the shared packets; None in the queue means the source ended."""

    def __init__(self, kind: str, queue: Packets, forget: Callable[[Packets], None]) -> None:
        super().__init__()
        self.kind = kind
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


def _put_newest(queue: Packets, item: av.Packet | None) -> None:
    if queue.full():
        queue.get_nowait()  # drop the oldest
    queue.put_nowait(item)
