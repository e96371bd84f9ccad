"""Everything a request handler needs, built once per server: the wiring of the stages."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from aiohttp import web

from asr import SpeechRecognizer
from media import MediaHub
from mt import TranslationEngine
from protocol.errors import ErrorCode
from server.calls import Calls
from server.captioning import MissingModelReporter, SpeakerPipeline
from server.chat import ChatRelay
from server.config import Config
from server.errors import ApiError
from server.metrics import LiveFigures, Metrics
from server.passwords import PasswordWork
from server.records import RecordCipher, RecordKeeper
from server.rooms import LiveRoom, Seat
from server.signin_limits import AttemptLimiter
from server.store import Member, MemberStatus, RoomRecord, Store

MEMBER_KEY: web.RequestKey[Member | None] = web.RequestKey("member")


@dataclass
class AppContext:
    KEY: ClassVar[web.AppKey[AppContext]] = web.AppKey("babelcall")

    config: Config
    store: Store
    hub: MediaHub
    recognizer: SpeechRecognizer
    engine: TranslationEngine
    passwords: PasswordWork
    record_cipher: RecordCipher
    # What consultation records stamp and retention counts by (tests move it forward).
    clock: Callable[[], float] = time.time
    records: RecordKeeper = field(init=False)
    calls: Calls = field(init=False)
    chat: ChatRelay = field(init=False)
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
        self.records = RecordKeeper(
            self.store,
            self.record_cipher,
            retention_days=self.config.record_retention_days,
            clock=self.clock,
        )
        self.calls = Calls(
            store=self.store,
            hub=self.hub,
            start_captions=self.start_captions,
            records=self.records,
            max_review_participants=self.config.max_review_participants,
        )
        self.chat = ChatRelay(self.engine)
        self.metrics.watch(self.live_figures)

    def live_figures(self) -> LiveFigures:
        seats = self.calls.seats()
        return LiveFigures(
            rooms=len(self.calls.rooms),
            participants=len(seats),
            speakers=sum(seat.pipeline is not None for seat in seats),
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

    async def require_host(self, request: web.Request, action: str) -> tuple[Member, RoomRecord]:
        """The member asking and the room in the path, if they are its host or an administrator;
        `action` completes "only the room's host or an administrator ..." in the refusal."""
        member = self.require_member(request)
        room = await self.store.room(request.match_info["room_id"])
        if room is None:
            raise ApiError(404, ErrorCode.NO_ROOM, "no such room")
        if member.id != room.created_by and not member.is_admin:
            raise ApiError(403, ErrorCode.NOT_HOST, f"only the room's host or an administrator {action}")
        return member, room

    def start_captions(self, room: LiveRoom, seat: Seat, audio: AsyncIterator[np.ndarray]) -> SpeakerPipeline:
        return SpeakerPipeline(
            room,
            seat,
            audio,
            self.recognizer,
            self.engine,
            self.missing_models,
            self.metrics,
            recorder=self.records,
        )
