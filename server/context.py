"""Everything a request handler needs, built once per server: the wiring of the stages."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from aiohttp import web

from asr import SpeechRecognizer
from media import MediaHub
from mt import TranslationEngine
from protocol.errors import ErrorCode
from server.captioning import MissingModelReporter, SpeakerPipeline
from server.config import Config
from server.errors import ApiError
from server.metrics import LiveFigures, Metrics
from server.passwords import PasswordWork
from server.rooms import LiveRoom, Participant, RoomRegistry
from server.signin_limits import AttemptLimiter
from server.store import Member, MemberStatus, Store

MEMBER_KEY: web.RequestKey[Member | None] = web.RequestKey("member")


@dataclass
class AppContext:
    KEY: ClassVar[web.AppKey[AppContext]] = web.AppKey("babelcall")

    config: Config
    store: Store
    hub: MediaHub
    recognizer: SpeechRecognizer
    engine: TranslationEngine
    rooms: RoomRegistry
    passwords: PasswordWork
    pipelines: dict[str, SpeakerPipeline] = field(default_factory=dict)
    missing_models: MissingModelReporter = field(init=False)
    metrics: Metrics = field(default_factory=Metrics)
    signin_limits: AttemptLimiter = field(init=False)  # failed sign-ins
    application_limits: AttemptLimiter = field(init=False)
    # The one-time setup link's token while no administrator exists: `babelcall serve` prints it.
    setup_token: str | None = None

    def __post_init__(self) -> None:
        self.signin_limits = AttemptLimiter(
            {
                "email": self.config.signin_failures_per_email,
                "address": self.config.signin_failures_per_address,
            },
            self.config.signin_window_s,
        )
        self.application_limits = AttemptLimiter(
            {"address": self.config.applications_per_address}, self.config.applications_window_s
        )
        self.missing_models = MissingModelReporter(self.engine)
        self.metrics.watch(self.live_figures)
        self.hub.on_lost(self.media_lost)
        self._notices: set[asyncio.Task[None]] = set()

    def live_figures(self) -> LiveFigures:
        return LiveFigures(
            rooms=len(self.rooms.rooms),
            participants=sum(len(room.participants) for room in self.rooms.rooms),
            speakers=len(self.pipelines),
            recognizer=dataclasses.asdict(self.recognizer.stats()),
            translation_pending=self.engine.pending,
            media=dataclasses.asdict(self.hub.figures()),
            models={
                "asr": {
                    "model": str(self.config.whisper_model),
                    "device": self.config.asr_device,
                    "compute_type": self.config.asr_compute_type,
                },
                "mt": {
                    "model": ",".join(self.engine.model_names) or "none",
                    "device": self.config.mt_device,
                    "compute_type": self.config.mt_compute_type,
                },
            },
        )

    def require_member(self, request: web.Request) -> Member:
        """The signed-in, approved member making this request, or a 401/403."""
        member: Member | None = request.get(MEMBER_KEY)
        if member is None:
            raise ApiError(401, ErrorCode.NOT_SIGNED_IN, "sign in first")
        if member.status is not MemberStatus.APPROVED:
            raise ApiError(
                403,
                ErrorCode.NOT_APPROVED,
                f"membership {member.status.value}: an administrator must approve it",
            )
        return member

    def require_admin(self, request: web.Request) -> Member:
        member = self.require_member(request)
        if not member.is_admin:
            raise ApiError(403, ErrorCode.NOT_ADMIN, "administrators only")
        return member

    def start_speech(self, room: LiveRoom, participant: Participant) -> SpeakerPipeline:
        pipeline = SpeakerPipeline(
            room,
            participant,
            self.hub.listen(participant.id),
            self.recognizer,
            self.engine,
            self.missing_models,
            self.metrics,
        )
        self.pipelines[participant.id] = pipeline
        return pipeline

    def media_lost(self, participant_ids: list[str]) -> None:
        """Their media worker died: their peer connections are gone, so tell them to join again."""
        lost = set(participant_ids)
        notice = {
            "type": "error",
            "code": "media_lost",
            "message": "the server's media process for this call failed; leave and join again",
        }
        for room in self.rooms.rooms:
            for participant in room.participants.values():
                if participant.id in lost:
                    task = asyncio.create_task(participant.send(notice))
                    self._notices.add(task)
                    task.add_done_callback(self._notices.discard)

    def room_changed(self, room: LiveRoom) -> None:
        for participant_id in room.participants:
            pipeline = self.pipelines.get(participant_id)
            if pipeline is not None:
                pipeline.room_changed()
