"""The peer connections of one media worker process (media/worker.py): one WebRTC peer connection per
direction, each participant publishing once and subscribing once per other participant.

Every connection is negotiated exactly once, always offered by the client. aiortc's renegotiation
support is partial, and a fresh receive-only connection per remote participant is simple, robust and
lets a participant join or leave without disturbing anyone else's media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.shared_encoding import SharedEncoding, first_offered_codec

log = logging.getLogger(__name__)


class NegotiationError(ValueError):
    """The remote description was unusable (malformed SDP, nothing to publish, unknown publisher)."""


@dataclass
class Publication:
    participant_id: str
    audio: MediaStreamTrack | None = None
    video: MediaStreamTrack | None = None

    @property
    def kinds(self) -> list[str]:
        return [kind for kind, track in (("audio", self.audio), ("video", self.video)) if track is not None]


@dataclass
class _Participant:
    publication: Publication | None = None
    connections: list[RTCPeerConnection] = field(default_factory=list)
    # This participant's receive-only connections, by the publisher they receive: closed when that
    # publication ends, so the subscriber's tracks end too instead of going silent.
    subscriptions: dict[str, list[RTCPeerConnection]] = field(default_factory=dict)
    drains: list[asyncio.Task[None]] = field(default_factory=list)
    # Its microphone and camera, each encoded once for every subscriber (media/shared_encoding.py).
    shared: dict[str, SharedEncoding] = field(default_factory=dict)
    # Copies of others' tracks sent to this participant. aiortc stops them when a sender ends, but a
    # connection that never started sending would keep them registered with their source.
    outgoing: list[MediaStreamTrack] = field(default_factory=list)


class PeerConnections:
    """Owns every peer connection of one worker and forwards published tracks to subscribers.

    Rooms are pinned to a worker (media/hub.py), so a publisher and its subscribers always meet here."""

    def __init__(self, ice_servers: list[str] | None = None) -> None:
        self._configuration = RTCConfiguration(
            iceServers=[RTCIceServer(urls=url) for url in ice_servers or []]
        )
        self._relay = MediaRelay()
        self._participants: dict[str, _Participant] = {}

    def publication(self, participant_id: str) -> Publication | None:
        entry = self._participants.get(participant_id)
        return entry.publication if entry else None

    async def publish(self, participant_id: str, offer_sdp: str) -> tuple[str, Publication]:
        """Accept a participant's camera and microphone; return the SDP answer and what was published."""
        entry = self._participants.setdefault(participant_id, _Participant())
        if entry.publication is not None:
            raise NegotiationError("already publishing; leave and join again to change devices")
        publication = Publication(participant_id)
        pc = self._new_connection(entry)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and publication.audio is None:
                publication.audio = track
            elif track.kind == "video" and publication.video is None:
                publication.video = track

        answer = await self._answer(pc, offer_sdp)
        if not publication.kinds:
            await pc.close()
            entry.connections.remove(pc)
            raise NegotiationError("the offer sends no audio or video track")
        if publication.video is not None:
            # aiortc queues every received frame until someone reads it; with no subscriber yet the
            # queue would grow without bound, so a drain always reads the latest frame.
            entry.drains.append(
                asyncio.create_task(_drain(self._relay.subscribe(publication.video, buffered=False)))
            )
        entry.publication = publication
        return answer, publication

    def listen(self, participant_id: str) -> MediaStreamTrack:
        """A private copy of a participant's published audio, for the audio tap."""
        publication = self.publication(participant_id)
        if publication is None or publication.audio is None:
            raise NegotiationError(f"participant {participant_id} publishes no audio")
        return self._relay.subscribe(publication.audio)

    async def subscribe(self, subscriber_id: str, publisher_id: str, offer_sdp: str) -> str:
        """Answer a receive-only offer with relayed copies of `publisher_id`'s tracks."""
        publication = self.publication(publisher_id)
        if publication is None:
            raise NegotiationError(f"participant {publisher_id} is not publishing")
        entry = self._participants.setdefault(subscriber_id, _Participant())
        pc = self._new_connection(entry)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            copies = [
                self._copy_for_subscriber(publisher_id, track, offer_sdp)
                for track in (publication.audio, publication.video)
                if track is not None
            ]
            for track in copies:
                entry.outgoing.append(track)
                pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as error:
            await self._discard(entry, pc)
            raise NegotiationError(f"cannot use the offer: {error}") from error
        entry.subscriptions.setdefault(publisher_id, []).append(pc)
        return pc.localDescription.sdp

    def _copy_for_subscriber(
        self, publisher_id: str, track: MediaStreamTrack, offer_sdp: str
    ) -> MediaStreamTrack:
        publisher = self._participants[publisher_id]
        shared = publisher.shared.get(track.kind)
        if shared is None:
            # Unbuffered: should encoding ever fall behind, skip frames rather than queue them.
            shared = SharedEncoding.for_track(self._relay.subscribe(track, buffered=False))
            publisher.shared[track.kind] = shared
        if first_offered_codec(offer_sdp, track.kind) == shared.codec:
            return shared.subscribe()
        # Another codec first (Safari offers H.264): this subscriber's sender encodes for it alone.
        return self._relay.subscribe(track)

    async def remove(self, participant_id: str) -> None:
        entry = self._participants.pop(participant_id, None)
        if entry is None:
            return
        for task in entry.drains:
            task.cancel()
        for shared in entry.shared.values():
            shared.stop()
        for track in entry.outgoing:
            track.stop()
        receiving = [
            pc for other in self._participants.values() for pc in other.subscriptions.pop(participant_id, [])
        ]
        for other in self._participants.values():
            other.connections = [pc for pc in other.connections if pc not in receiving]
        await asyncio.gather(*(pc.close() for pc in [*entry.connections, *receiving]), return_exceptions=True)

    async def close(self) -> None:
        await asyncio.gather(*(self.remove(pid) for pid in list(self._participants)))

    def _new_connection(self, entry: _Participant) -> RTCPeerConnection:
        pc = RTCPeerConnection(self._configuration)
        entry.connections.append(pc)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.debug("peer connection %s: %s", id(pc), pc.connectionState)
            if pc.connectionState == "failed":
                await pc.close()

        return pc

    async def _answer(self, pc: RTCPeerConnection, offer_sdp: str) -> str:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as error:
            # aiortc raises assorted ValueError/KeyError/InvalidStateError on bad SDP.
            await pc.close()
            raise NegotiationError(f"cannot use the offer: {error}") from error
        return pc.localDescription.sdp

    async def _discard(self, entry: _Participant, pc: RTCPeerConnection) -> None:
        with contextlib.suppress(ValueError):
            entry.connections.remove(pc)
        await pc.close()


async def _drain(track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            await track.recv()
