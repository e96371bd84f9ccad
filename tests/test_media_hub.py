"""The media workers: rooms pinned to worker processes, decoded audio back to the server, relaying
between participants, bad offers, a worker that dies, and the bound on audio waiting for recognition.

Real aiortc on both sides: the test process plays the browser, the hub's workers are real processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from media import (
    SAMPLE_RATE,
    AudioTap,
    FileAudioTrack,
    MediaHub,
    MediaSettings,
    NegotiationError,
    enable_loopback_candidates,
)
from media.file_source import PatternVideoTrack
from media.peers import PeerConnections, Publication
from media.shared_encoding import first_offered_codec

_BROWSER_RATE = 48_000


def _tone(frequency: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * _BROWSER_RATE)) / _BROWSER_RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


async def _publish(hub: MediaHub, room: str, participant: str, samples: np.ndarray) -> RTCPeerConnection:
    enable_loopback_candidates()
    pc = RTCPeerConnection()
    pc.addTransceiver(FileAudioTrack(samples), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    answer, kinds = await hub.publish(room, participant, pc.localDescription.sdp)
    assert kinds == ["audio"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc


async def _collect(audio: AsyncIterator[np.ndarray], seconds: float, timeout_s: float = 20.0) -> np.ndarray:
    chunks: list[np.ndarray] = []
    wanted = int(seconds * SAMPLE_RATE)

    async def read() -> None:
        async for chunk in audio:
            chunks.append(chunk)
            if sum(len(c) for c in chunks) >= wanted:
                return

    await asyncio.wait_for(read(), timeout_s)
    return np.concatenate(chunks)


def _dominant_frequency(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[int(np.argmax(spectrum))])


@pytest.fixture
async def two_workers() -> AsyncIterator[MediaHub]:
    hub = MediaHub(MediaSettings(workers=2))
    await hub.start()
    yield hub
    await hub.close()


async def test_rooms_spread_over_workers_and_each_speaker_arrives_as_16khz_audio(
    two_workers: MediaHub,
) -> None:
    hub = two_workers
    assert len(set(hub.worker_pids())) == 2 and os.getpid() not in hub.worker_pids()
    first = await _publish(hub, "room-a", "alice", _tone(440, 4.0))
    second = await _publish(hub, "room-b", "bruno", _tone(1000, 4.0))
    try:
        assert {hub.worker_of("room-a"), hub.worker_of("room-b")} == {0, 1}
        alice, bruno = await asyncio.gather(
            _collect(hub.listen("alice"), 1.5), _collect(hub.listen("bruno"), 1.5)
        )
        # Through Opus, the worker's decoder and its 48 → 16 kHz resampler, each speaker's own tone.
        steady = slice(SAMPLE_RATE // 2, None)
        assert abs(_dominant_frequency(alice[steady]) - 440) < 15
        assert abs(_dominant_frequency(bruno[steady]) - 1000) < 15
        assert 0.1 < float(np.sqrt(np.mean(alice[steady] ** 2))) < 0.35  # a 0.3 sine: rms 0.21
        assert hub.figures().participants == 2
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_a_subscriber_in_the_room_receives_the_speakers_audio(two_workers: MediaHub) -> None:
    hub = two_workers
    speaker = await _publish(hub, "room-a", "alice", _tone(440, 6.0))
    listener = RTCPeerConnection()
    received: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    listener.on("track", received.set_result)
    try:
        listener.addTransceiver("audio", direction="recvonly")
        await listener.setLocalDescription(await listener.createOffer())
        answer = await hub.subscribe("room-a", "carla", "alice", listener.localDescription.sdp)
        await listener.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        track = await asyncio.wait_for(received, 10)
        tap = AudioTap()
        heard = [tap.convert(await asyncio.wait_for(track.recv(), 10)) for _ in range(60)]
        assert abs(_dominant_frequency(np.concatenate(heard[20:])) - 440) < 15
        assert hub.worker_of("room-a") is not None
        with pytest.raises(NegotiationError, match="not publishing"):
            await hub.subscribe("room-a", "carla", "nobody", listener.localDescription.sdp)
    finally:
        await asyncio.gather(speaker.close(), listener.close())


async def test_a_bad_offer_is_refused_and_the_worker_carries_on(two_workers: MediaHub) -> None:
    hub = two_workers
    with pytest.raises(NegotiationError, match="offer"):
        await hub.publish("room-a", "alice", "v=0\r\nthis is not an offer\r\n")
    with pytest.raises(NegotiationError):
        hub.listen("alice")  # nothing was published
    pc = await _publish(hub, "room-a", "alice", _tone(440, 2.0))
    try:
        assert len(await _collect(hub.listen("alice"), 0.5)) >= SAMPLE_RATE // 2
    finally:
        await pc.close()


async def test_a_worker_that_dies_is_reported_and_replaced() -> None:
    hub = MediaHub(MediaSettings(workers=1))
    await hub.start()
    lost: list[list[str]] = []
    hub.on_lost(lost.append)
    pc = await _publish(hub, "room-a", "alice", _tone(440, 30.0))
    try:
        audio = hub.listen("alice")
        await _collect(audio, 0.3)
        (pid,) = hub.worker_pids()
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(_drain(audio), 10)  # the speaker's audio ends; nobody waits forever
        assert lost == [["alice"]] and hub.worker_of("room-a") is None
        await hub.remove("alice")
        # The next publish waits for the replacement worker rather than failing.
        again = await _publish(hub, "room-a", "alice", _tone(440, 2.0))
        (replacement,) = hub.worker_pids()
        assert replacement != pid
        assert len(await _collect(hub.listen("alice"), 0.5)) >= SAMPLE_RATE // 2
        await again.close()
    finally:
        await pc.close()
        await hub.close()


async def test_a_worker_that_could_not_be_restarted_is_tried_again_when_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = MediaHub(MediaSettings(workers=1))
    await hub.start()
    real_spawn = asyncio.create_subprocess_exec
    refused = asyncio.Event()

    async def spawn_fails_once(*args: object, **kwargs: object) -> asyncio.subprocess.Process:
        if not refused.is_set():
            refused.set()
            raise OSError("Resource temporarily unavailable")
        return await real_spawn(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("media.hub.asyncio.create_subprocess_exec", spawn_fails_once)
    try:
        (pid,) = hub.worker_pids()
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(refused.wait(), 10)  # the automatic replacement failed to start
        for _ in range(10):
            await asyncio.sleep(0)
        assert hub.worker_pids() == []
        # A new call does not fail for good: it starts the worker again and waits for it.
        pc = await _publish(hub, "room-b", "bruno", _tone(440, 2.0))
        assert len(await _collect(hub.listen("bruno"), 0.5)) >= SAMPLE_RATE // 2
        await pc.close()
    finally:
        await hub.close()


async def _drain(audio: AsyncIterator[np.ndarray]) -> None:
    async for _ in audio:
        pass


async def test_audio_waiting_for_recognition_is_bounded_by_dropping_the_oldest() -> None:
    hub = MediaHub(MediaSettings(workers=1, max_buffered_audio_s=0.5))
    await hub.start()
    pc = await _publish(hub, "room-a", "alice", np.concatenate([_tone(440, 1.5), _tone(1000, 1.5)]))
    try:
        await asyncio.sleep(3.5)  # nobody reads: recognition has stalled
        figures = hub.figures()
        assert figures.buffered_audio_s <= 0.5 + 0.06 and figures.dropped_audio_s > 1.5
        kept = await _collect(hub.listen("alice"), 0.4)
        assert abs(_dominant_frequency(kept) - 1000) < 15  # the newest audio, not the oldest
    finally:
        await pc.close()
        await hub.close()


def _with_codec_first(offer_sdp: str, kind: str, codec: str) -> str:
    """The offer with `codec` first among its `kind` codecs, in the m-line and in the rtpmap lines
    (aiortc, as the answering side, goes by the latter)."""
    lines = offer_sdp.split("\r\n")
    section = next(i for i, line in enumerate(lines) if line.startswith(f"m={kind}"))
    following = [i for i, line in enumerate(lines) if line.startswith("m=") and i > section]
    section_end = following[0] if following else len(lines)
    rtpmaps = [i for i in range(section, section_end) if lines[i].startswith("a=rtpmap:")]
    chosen = next(i for i in rtpmaps if lines[i].split(" ", 1)[1].lower().startswith(codec.lower() + "/"))
    payload_type = lines[chosen].split(":", 1)[1].split()[0]
    head, types = lines[section].split()[:3], lines[section].split()[3:]
    lines[section] = " ".join([*head, payload_type, *[t for t in types if t != payload_type]])
    lines.insert(rtpmaps[0], lines.pop(chosen))
    return "\r\n".join(lines)


async def _publish_in_process(
    peers: PeerConnections, track: MediaStreamTrack
) -> tuple[RTCPeerConnection, Publication]:
    """A client publishing `track` as "alice" straight to one worker's peer connections."""
    speaker = RTCPeerConnection()
    speaker.addTransceiver(track, direction="sendonly")
    await speaker.setLocalDescription(await speaker.createOffer())
    answer, publication = await peers.publish("alice", speaker.localDescription.sdp)
    await speaker.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return speaker, publication


async def _subscribe_in_process(
    peers: PeerConnections, name: str, kind: str, codec: str, listeners: list[RTCPeerConnection]
) -> MediaStreamTrack:
    """A receive-only client `name` that offers `codec` first for `kind`; its track of alice's."""
    listener = RTCPeerConnection()
    listeners.append(listener)
    received: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    listener.on("track", received.set_result)
    listener.addTransceiver(kind, direction="recvonly")
    await listener.setLocalDescription(await listener.createOffer())
    offer = _with_codec_first(listener.localDescription.sdp, kind, codec)
    assert first_offered_codec(offer, kind) == codec.lower()
    answer = await peers.subscribe(name, "alice", offer)
    assert first_offered_codec(answer, kind) == codec.lower()  # what it will be sent
    await listener.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return await asyncio.wait_for(received, 10)


async def test_subscribers_get_the_microphone_encoded_once_or_in_the_codec_they_asked_for() -> None:
    """In one worker's peer connections: Opus-first subscribers share one encoding of the speaker;
    one that puts PCMU first still hears the speaker, encoded for it alone."""
    enable_loopback_candidates()
    peers = PeerConnections()
    speaker, publication = await _publish_in_process(peers, FileAudioTrack(_tone(440, 8.0)))
    assert publication.kinds == ["audio"]
    listeners: list[RTCPeerConnection] = []
    try:
        tracks = [
            await _subscribe_in_process(peers, name, "audio", codec, listeners)
            for name, codec in (("bruno", "opus"), ("carla", "opus"), ("dara", "PCMU"))
        ]

        async def hear(track: MediaStreamTrack) -> np.ndarray:
            tap = AudioTap()
            return np.concatenate(
                [tap.convert(await asyncio.wait_for(track.recv(), 10)) for _ in range(60)][20:]
            )

        for heard in await asyncio.gather(*(hear(track) for track in tracks)):
            assert abs(_dominant_frequency(heard) - 440) < 15
    finally:
        await asyncio.gather(speaker.close(), *(listener.close() for listener in listeners))
        await peers.close()
    assert first_offered_codec("v=0\r\nnot an offer\r\n", "audio") is None


async def test_subscribers_get_the_camera_encoded_once_or_in_the_codec_they_asked_for() -> None:
    """VP8-first subscribers share one encoding of the camera (a keyframe each when they join); one that
    puts H.264 first gets its own encoding. Each sees the picture that was sent."""
    enable_loopback_candidates()
    peers = PeerConnections()
    camera = PatternVideoTrack(fps=15)
    speaker, publication = await _publish_in_process(peers, camera)
    assert publication.kinds == ["video"]
    listeners: list[RTCPeerConnection] = []
    try:
        tracks = [
            await _subscribe_in_process(peers, name, "video", codec, listeners)
            for name, codec in (("bruno", "VP8"), ("carla", "VP8"), ("dara", "H264"))
        ]

        async def last_picture(track: MediaStreamTrack) -> np.ndarray:
            frames = [await asyncio.wait_for(track.recv(), 10) for _ in range(20)]
            return frames[-1].to_ndarray(format="rgb24")

        texture = camera.texture.astype(np.float64)
        for picture in await asyncio.gather(*(last_picture(track) for track in tracks)):
            assert picture.shape == texture.shape
            # The camera pans 3 pixels a frame: some shift of its texture is what arrived.
            best = max(
                np.corrcoef(np.roll(texture, shift, axis=1)[:, :, 1].ravel(), picture[:, :, 1].ravel())[0, 1]
                for shift in range(0, 640, 3)
            )
            assert best > 0.8
    finally:
        await asyncio.gather(speaker.close(), *(listener.close() for listener in listeners))
        await peers.close()
