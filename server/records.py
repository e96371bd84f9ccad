"""Consultation records: the words of a call, kept with everyone's consent, for as long as policy allows.

**Consent.** The room's host (or an administrator) starts a record in a live call. Everyone in the
call is asked (`record_state`, docs/protocol.md) and answers with `record_consent`; whoever starts it
from inside the call agrees by starting it. Words are kept only while everyone present has agreed:
someone who joins is asked, and until they answer nothing is kept (`asking`); anyone may decline or
withdraw at any time, which pauses the record (`paused`) until they agree or leave. An answer is the
member's for the life of the record: one who reconnects is not asked again, and sees it still
recorded. A record ends when the host (or an administrator) stops it, or when the call empties
(everyone left, the call was ended for everyone, or the server stopped): the next sitting needs a new
record, and new answers.

**What is kept.** The caption pipeline's own finals in the speaker's language, each replaced by the
settled caption that takes its place when one comes (server/captioning.py offers both): per line the
speaker (member id and name), when it was said, the spoken language and the text. Never audio,
partials or translations. A line is kept only if the whole utterance was spoken while the record was
recording: speech that began before the last person agreed, or ended after someone withdrew, is not.

**Storage.** SQLite (server/store.py); each line's words, speaker name and language are sealed with
AES-GCM (a fresh 96-bit nonce per line; the record, utterance and speaker ids as associated data, so a
line cannot be moved to another record or speaker) under a 256-bit key in a file of its own
(`record_key_file`, created 0600 at first start), so a copied database reveals no words.

**Access.** The members seated in the call while it was recording read it, and administrators; the
room's host and administrators stop and delete it. Every access is written to the audit log (ids and
times only). There are no share links.

**Retention.** Records are deleted `record_retention_days` after they started: at start-up and every
hour after. Deleted rows are zeroed in the database file and the write-ahead log is emptied.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol import CaptionEvent
from protocol.captions import CaptionKind
from protocol.errors import ErrorCode, ProtocolError
from protocol.privacy import describe_exception
from protocol.signalling import ConsentAnswer, RecordState, RecordStatus
from server.rooms import LiveRoom, Seat
from server.store import AuditEntry, Member, SealedLine, Store, StoredRecord

log = logging.getLogger(__name__)

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
_KEY_CHECK = (b"babelcall record key", b"key check")  # (plaintext, associated data)
# How long after a record ends the finals of what was said before it ended may still reach it: a
# speaker who leaves has their last words captioned in the background, for up to 30 s.
LATE_FINALS_S = 60.0
PURGE_INTERVAL_S = 3600.0
DAY_S = 86_400


class AuditEvent(StrEnum):
    CREATED = "created"
    CONSENTED = "consented"
    DECLINED = "declined"  # the first answer was no
    WITHDREW = "withdrew"  # no, after agreeing
    STOPPED = "stopped"
    VIEWED = "viewed"
    EXPORTED = "exported"
    DELETED = "deleted"


# Who acted, when no member did.
BY_SERVER = "server"  # the call emptied, or the server restarted
BY_RETENTION = "retention"
BY_CLI = "cli"


class RecordKeyError(RuntimeError):
    """The record key file cannot be used; the message says what to do. The server does not start."""


class RecordCipher:
    """AES-GCM with one key; each sealed value is its nonce followed by the ciphertext and tag."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a record key has {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def seal(self, data: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes:
        """The data; cryptography's InvalidTag when `sealed` was altered or sealed with another key."""
        return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)


async def load_record_cipher(path: Path, store: Store) -> RecordCipher:
    """The cipher with the key in `path`, made there (mode 0600) when neither it nor any record exists
    yet. RecordKeyError when the file is unreadable, malformed, missing while the database holds
    records, or not the key the database's records were sealed with."""
    check = await store.record_key_check()
    key = await asyncio.to_thread(_read_or_create_key, path, create=check is None)
    cipher = RecordCipher(key)
    if check is None:
        await store.set_record_key_check(cipher.seal(*_KEY_CHECK))
        return cipher
    try:
        cipher.open(check, _KEY_CHECK[1])
    except InvalidTag:
        raise RecordKeyError(
            f"record_key_file {path} is not the key this database's records were sealed with: "
            "point record_key_file at the right file"
        ) from None
    return cipher


def _read_or_create_key(path: Path, *, create: bool) -> bytes:
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise RecordKeyError(
                f"record_key_file {path} is missing, and the database holds records sealed with it: "
                "restore the file, or set record_key_file to where it is"
            ) from None
        return _create_key(path)
    except OSError as error:
        raise RecordKeyError(f"cannot read record_key_file {path}: {error.strerror}") from None
    if len(key) != KEY_BYTES:
        raise RecordKeyError(f"record_key_file {path} holds {len(key)} bytes; a record key has {KEY_BYTES}")
    if path.stat().st_mode & 0o077:
        log.warning("record_key_file %s can be read by other users: chmod 600 it", path)
    return key


def _create_key(path: Path) -> bytes:
    key = os.urandom(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: never overwrite a key another process (a CLI beside the server) has just made.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_or_create_key(path, create=False)
    except OSError as error:
        raise RecordKeyError(f"cannot create record_key_file {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(key)
        file.flush()
        os.fsync(file.fileno())
    log.info("record key created at %s", path)
    return key


@dataclass(frozen=True)
class RecordLine:
    """One kept line, opened."""

    utterance_id: str
    speaker_id: str  # member id
    speaker_name: str
    language: str  # what the speaker spoke
    text: str
    kind: CaptionKind  # FINAL, or SETTLED once the second pass replaced it
    start_at: float  # wall clock (Unix seconds)
    end_at: float


def may_read(member: Member, record: StoredRecord) -> bool:
    return member.is_admin or member.id in record.members


def may_manage(member: Member, record: StoredRecord) -> bool:
    """Stop or delete: the room's host, or an administrator."""
    return member.is_admin or member.id == record.room_host


@dataclass(eq=False)
class _LiveRecord:
    """A record running in a live call: the answers given, and when it was recording."""

    id: str
    room: LiveRoom
    started_by: str
    started_at: float
    answers: dict[str, bool] = field(default_factory=dict)  # member id -> agreed
    members: set[str] = field(default_factory=set)  # seated while it was recording: its readers
    # Wall-clock spans during which it was recording; the last one open (inf) while it still is.
    spans: list[list[float]] = field(default_factory=list)
    status: RecordStatus = RecordStatus.ASKING

    def update(self, now: float) -> set[str]:
        """The status from who is present and what they answered; the members who just became readers."""
        present = {seat.member.id for seat in self.room.seats.values()}
        answers = [self.answers.get(member_id) for member_id in present]
        if False in answers:
            status = RecordStatus.PAUSED
        elif None in answers or not present:
            status = RecordStatus.ASKING
        else:
            status = RecordStatus.RECORDING
        self._become(status, now)
        if status is not RecordStatus.RECORDING:
            return set()
        newly = present - self.members
        self.members |= newly
        return newly

    def end(self, now: float) -> None:
        self._become(RecordStatus.OFF, now)

    def _become(self, status: RecordStatus, now: float) -> None:
        if status is RecordStatus.RECORDING and self.status is not RecordStatus.RECORDING:
            self.spans.append([now, math.inf])
        elif status is not RecordStatus.RECORDING and self.status is RecordStatus.RECORDING:
            self.spans[-1][1] = now
        self.status = status

    def covers(self, start: float, end: float) -> bool:
        """Whether speech from `start` to `end` was all said while it was recording, in one span."""
        return any(begin <= start and end <= finish for begin, finish in self.spans)

    def state(self) -> RecordState:
        consent = {}
        for seat in self.room.seats.values():
            answer = self.answers.get(seat.member.id)
            consent[seat.id] = (
                ConsentAnswer.ASKED
                if answer is None
                else ConsentAnswer.AGREED
                if answer
                else ConsentAnswer.DECLINED
            )
        return RecordState(self.status, self.id, self.started_by, self.started_at, consent)


class RecordKeeper:
    """Every record: the ones running in live calls (consent, what is kept) and the stored ones (who
    reads them, the audit log, retention).

    `clock` stamps what the keeper stores (a record's start and end, the audit log) and decides
    retention; consent is timed with the captions' own wall clock, `time.time`."""

    def __init__(
        self,
        store: Store,
        cipher: RecordCipher,
        *,
        retention_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._cipher = cipher
        self._retention_s = retention_days * DAY_S
        self._clock = clock
        self._live: dict[str, _LiveRecord] = {}  # room id -> its running record
        self._ended: dict[str, tuple[_LiveRecord, float]] = {}  # record id -> (record, until when)
        self._writes: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ live calls

    async def start(self, room: LiveRoom, by: Member) -> StoredRecord:
        """Start recording the call in `room`: everyone is asked. ProtocolError(record_running) when it
        already is, ProtocolError(no_call) when nobody is in it."""
        if room.id in self._live:
            raise ProtocolError(ErrorCode.RECORD_RUNNING, "this call already has a record running")
        if not room.seats:
            raise ProtocolError(ErrorCode.NO_CALL, "nobody is in this call")
        live = _LiveRecord(secrets.token_hex(16), room, by.id, self._clock())
        starter_present = room.seat_of(by.id) is not None
        if starter_present:
            live.answers[by.id] = True
        self._live[room.id] = live
        await self._store.create_record(live.id, room.id, by.id, live.started_at)
        await self._audit(live.id, by.id, AuditEvent.CREATED)
        if starter_present:
            await self._audit(live.id, by.id, AuditEvent.CONSENTED)
        log.info("record %s started in room %s by member %s", live.id, room.id, by.id)
        await self._changed(live)
        stored = await self._store.stored_record(live.id)
        assert stored is not None
        return stored

    async def stop(self, room_id: str, by: Member) -> StoredRecord:
        """Stop the record running in the room's call; ProtocolError(no_record) when none is."""
        live = self._live.get(room_id)
        if live is None:
            raise ProtocolError(ErrorCode.NO_RECORD, "no record is running in this call")
        await self._end(live, by.id)
        stored = await self._store.stored_record(live.id)
        assert stored is not None
        return stored

    async def seated(self, seat: Seat) -> None:
        """Someone joined the call: while a record runs they are asked, and it keeps nothing until they
        answer (unless they already agreed to this record before reconnecting)."""
        live = self._live_in(seat.room)
        if live is not None:
            await self._changed(live)

    async def left(self, seat: Seat) -> None:
        """Someone left: the record may resume (they were the one who had not agreed), or end (the call
        emptied)."""
        live = self._live_in(seat.room)
        if live is not None:
            await self._changed(live)

    async def answer(self, seat: Seat, agree: bool) -> None:
        """A participant's `record_consent`."""
        live = self._live_in(seat.room)
        if live is None:
            raise ProtocolError(ErrorCode.NO_RECORD, "no record is running in this call")
        member_id = seat.member.id
        before = live.answers.get(member_id)
        if before is agree:
            await seat.send(live.state())  # the page may have missed the change it is repeating
            return
        live.answers[member_id] = agree
        event = AuditEvent.CONSENTED if agree else AuditEvent.WITHDREW if before else AuditEvent.DECLINED
        await self._audit(live.id, member_id, event)
        await self._changed(live)

    def offer(self, room: LiveRoom, speaker: Seat, caption: CaptionEvent) -> None:
        """A final or settled caption in the speaker's own language, from the caption pipeline: kept if
        the room's record was recording all the while it was said. Never blocks: the write is queued."""
        if caption.kind is CaptionKind.PARTIAL:
            return
        live = self._record_for(room)
        if live is None:
            return
        start_at, end_at = room.opened_at + caption.start_s, room.opened_at + caption.end_s
        if not live.covers(start_at, end_at) or speaker.member.id not in live.members:
            log.debug(
                "utterance %s not kept in record %s: not all said while recording",
                caption.utterance_id,
                live.id,
            )
            return
        line = RecordLine(
            caption.utterance_id,
            speaker.member.id,
            speaker.name,
            caption.source_language,
            caption.text,
            caption.kind,
            start_at,
            end_at,
        )
        if caption.kind is CaptionKind.FINAL:
            self._write(self._keep(live.id, line))
        else:
            replaces = caption.replaces or (caption.utterance_id,)
            self._write(self._settle(live.id, replaces, line))

    async def flush(self) -> None:
        """Wait until every line offered so far is written."""
        await asyncio.gather(*list(self._writes), return_exceptions=True)

    def _live_in(self, room: LiveRoom) -> _LiveRecord | None:
        live = self._live.get(room.id)
        return live if live is not None and live.room is room else None

    def _record_for(self, room: LiveRoom) -> _LiveRecord | None:
        """The room's running record, or one that ended moments ago (late finals of what was said)."""
        live = self._live_in(room)
        if live is not None:
            return live
        now = time.monotonic()
        return next(
            (ended for ended, until in self._ended.values() if ended.room is room and until >= now), None
        )

    async def _changed(self, live: _LiveRecord) -> None:
        """Who is present or what they answered changed: the record's status follows, and everyone in
        the call is told."""
        if self._live.get(live.room.id) is not live:
            return  # it ended meanwhile
        if not live.room.seats:
            await self._end(live, BY_SERVER)
            return
        newly = live.update(time.time())
        if newly:
            await self._store.add_record_members(live.id, newly)
        await live.room.broadcast(live.state())

    async def _end(self, live: _LiveRecord, actor: str) -> None:
        if self._live.get(live.room.id) is not live:
            return
        del self._live[live.room.id]
        live.end(time.time())
        now = time.monotonic()
        self._ended = {key: value for key, value in self._ended.items() if value[1] >= now}
        self._ended[live.id] = (live, now + LATE_FINALS_S)
        await self._store.end_record(live.id, self._clock())
        await self._audit(live.id, actor, AuditEvent.STOPPED)
        log.info("record %s in room %s stopped", live.id, live.room.id)
        await live.room.broadcast(RecordState(RecordStatus.OFF))

    # ------------------------------------------------------------ sealing

    def _seal(self, record_id: str, line: RecordLine) -> SealedLine:
        words = json.dumps(
            {
                "speaker_name": line.speaker_name,
                "language": line.language,
                "text": line.text,
                "kind": line.kind,
            },
            ensure_ascii=False,
        ).encode()
        sealed = self._cipher.seal(words, _associated(record_id, line.utterance_id, line.speaker_id))
        return SealedLine(line.utterance_id, line.speaker_id, line.start_at, line.end_at, sealed)

    def _open(self, record_id: str, sealed: SealedLine) -> RecordLine | None:
        try:
            words = json.loads(
                self._cipher.open(
                    sealed.sealed, _associated(record_id, sealed.utterance_id, sealed.speaker_id)
                )
            )
        except InvalidTag:
            log.error(
                "record %s: line %s fails authentication (altered?); left out", record_id, sealed.utterance_id
            )
            return None
        return RecordLine(
            sealed.utterance_id,
            sealed.speaker_id,
            words["speaker_name"],
            words["language"],
            words["text"],
            CaptionKind(words["kind"]),
            sealed.start_at,
            sealed.end_at,
        )

    async def _keep(self, record_id: str, line: RecordLine) -> None:
        if not await self._store.put_record_line(record_id, self._seal(record_id, line)):
            log.info("line %s not kept: record %s was deleted", line.utterance_id, record_id)

    async def _settle(self, record_id: str, replaces: tuple[str, ...], line: RecordLine) -> None:
        sealed = self._seal(record_id, line) if line.text.strip() else None
        if not await self._store.settle_record_lines(record_id, replaces, sealed):
            log.debug(
                "settled %s not kept in record %s: it covers lines not kept", line.utterance_id, record_id
            )

    def _write(self, work: Coroutine[Any, Any, None]) -> None:
        # Tasks start in the order they are made, and the store runs its queries one at a time in the
        # order they come: lines are written in the order they were offered.
        task = asyncio.create_task(work, name="record-write")
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("a record line was not written: %s", describe_exception(error))

    # ------------------------------------------------------------ stored records

    async def record(self, record_id: str) -> StoredRecord | None:
        return await self._store.stored_record(record_id)

    async def visible_to(self, member: Member) -> list[StoredRecord]:
        """Administrators see every record; a member those they are in or whose room they host."""
        return await self._store.stored_records(None if member.is_admin else member.id)

    async def all_records(self) -> list[StoredRecord]:
        return await self._store.stored_records(None)

    def expires_at(self, record: StoredRecord) -> float:
        return record.started_at + self._retention_s

    async def read(
        self, record: StoredRecord, actor: str, event: AuditEvent, detail: str = ""
    ) -> list[RecordLine]:
        """The record's lines, in the order they were said; the access is audited first."""
        await self._audit(record.id, actor, event, detail)
        await self.flush()
        sealed = await self._store.record_lines(record.id)
        opened = await asyncio.to_thread(lambda: [self._open(record.id, line) for line in sealed])
        return [line for line in opened if line is not None]

    async def delete(self, record: StoredRecord, actor: str) -> None:
        """Delete a record now (stopping it first if it is running)."""
        live = next((live for live in self._live.values() if live.id == record.id), None)
        if live is not None:
            await self._end(live, actor)
        await self._delete([record.id], actor)

    async def audit_log(self, record_id: str) -> list[AuditEntry]:
        return await self._store.record_audit(record_id)

    async def open(self) -> None:
        """At start-up: records the last run left running are ended, and expired ones deleted."""
        for record_id in await self._store.end_open_records(self._clock()):
            await self._audit(record_id, BY_SERVER, AuditEvent.STOPPED, "server restarted")
        await self.purge_expired()

    async def purge_expired(self) -> int:
        """Delete every record that started more than `record_retention_days` ago; how many."""
        running = {live.id for live in self._live.values()}
        cutoff = self._clock() - self._retention_s
        expired = [
            record_id
            for record_id in await self._store.records_started_before(cutoff)
            if record_id not in running
        ]
        if expired:
            await self._delete(expired, BY_RETENTION)
            log.info("retention: %d record(s) deleted", len(expired))
        return len(expired)

    async def keep_purging(self, interval_s: float = PURGE_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.purge_expired()
            except Exception as error:
                log.error("retention purge failed: %s", describe_exception(error))

    async def close(self) -> None:
        await self.flush()

    async def _delete(self, record_ids: list[str], actor: str) -> None:
        await self.flush()
        await self._store.delete_records(record_ids)
        for record_id in record_ids:
            self._ended.pop(record_id, None)
            await self._audit(record_id, actor, AuditEvent.DELETED)

    async def _audit(self, record_id: str, actor: str, event: AuditEvent, detail: str = "") -> None:
        await self._store.add_record_audit(AuditEntry(record_id, actor, event.value, detail, self._clock()))


def _associated(record_id: str, utterance_id: str, speaker_id: str) -> bytes:
    return f"{record_id}\n{utterance_id}\n{speaker_id}".encode()
