"""Persistent state in SQLite: members (applications and approvals), sign-in sessions, rooms, the
one-time setup link and consultation records.

sqlite3 calls block, so every query runs on one dedicated thread; the event loop only awaits.
Captions are not stored, except in a consultation record everyone in the call agreed to
(server/records.py), and then sealed: this module only ever sees a record's words encrypted. Nor are
passwords (only their hashes, made by server/passwords.py), session tokens or setup tokens (only a
SHA-256 of each). `secure_delete` is on, so deleted rows are overwritten with zeros rather than left
in free pages.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from protocol import Glossary

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    organisation TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    decided_at REAL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('consultation', 'review')),
    created_by TEXT NOT NULL REFERENCES members(id),
    created_at REAL NOT NULL,
    glossary TEXT NOT NULL DEFAULT '[]',
    deleted_at REAL
);
-- Members the host (or an administrator) removed from a room: kept out until the call is ended for
-- everyone, restarts included.
CREATE TABLE IF NOT EXISTS room_removals (
    room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    removed_at REAL NOT NULL,
    PRIMARY KEY (room_id, member_id)
);
CREATE TABLE IF NOT EXISTS setup_tokens (
    token_hash TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
-- Consultation records (server/records.py). Ids and times are in the clear, for access, order and
-- retention; a line's words (and its speaker's name and language) only sealed, with a key kept
-- outside this file.
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES rooms(id),
    started_by TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL
);
CREATE INDEX IF NOT EXISTS records_by_start ON records(started_at);
-- Who may read a record: the members seated in the call while it was recording.
CREATE TABLE IF NOT EXISTS record_members (
    record_id TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    PRIMARY KEY (record_id, member_id)
);
CREATE TABLE IF NOT EXISTS record_lines (
    record_id TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,
    utterance_id TEXT NOT NULL,
    speaker_id TEXT NOT NULL,
    start_at REAL NOT NULL,
    end_at REAL NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (record_id, utterance_id)
);
-- Who did what to which record, and when; no foreign key: the trail outlives the record.
CREATE TABLE IF NOT EXISTS record_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS record_audit_by_record ON record_audit(record_id);
-- A constant sealed with the record key: tells at start-up whether the key file is the right one.
CREATE TABLE IF NOT EXISTS record_key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sealed BLOB NOT NULL
);
"""

# Columns added after a table was first created, applied to older databases at start-up.
_MIGRATIONS = (
    ("rooms", "glossary", "TEXT NOT NULL DEFAULT '[]'"),
    # A deleted room keeps its row, so what refers to it stays whole, but no link reaches it any more.
    ("rooms", "deleted_at", "REAL"),
)


class MemberStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class RoomKind(StrEnum):
    CONSULTATION = "consultation"  # one-to-one
    REVIEW = "review"  # group case review


@dataclass(frozen=True)
class Member:
    id: str
    email: str
    name: str
    organisation: str
    status: MemberStatus
    is_admin: bool
    created_at: float

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "organisation": self.organisation,
            "status": self.status.value,
            "is_admin": self.is_admin,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class RoomRecord:
    id: str
    title: str
    kind: RoomKind
    created_by: str
    created_at: float
    glossary: Glossary = field(default_factory=Glossary)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind.value,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "glossary": self.glossary.to_list(),
        }


@dataclass(frozen=True)
class StoredRecord:
    """A consultation record's metadata (no words)."""

    id: str
    room_id: str
    room_title: str
    room_host: str  # the room's creator: may stop and delete its records
    started_by: str
    started_at: float
    ended_at: float | None
    members: frozenset[str]  # who may read it (with administrators)
    lines: int

    def public(self) -> dict[str, Any]:
        """What the API, the CLI and an export say of a record (no words)."""
        return {
            "id": self.id,
            "room_id": self.room_id,
            "room_title": self.room_title,
            "started_by": self.started_by,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "lines": self.lines,
            "participants": sorted(self.members),
        }


@dataclass(frozen=True)
class SealedLine:
    """One line of a record as stored: its words only as `sealed` (server/records.py opens them)."""

    utterance_id: str
    speaker_id: str  # member id
    start_at: float  # wall clock (Unix seconds)
    end_at: float
    sealed: bytes


@dataclass(frozen=True)
class AuditEntry:
    record_id: str
    actor: str  # a member id, or what acted for nobody: "cli", "retention", "server"
    event: str
    detail: str  # ids, codes and counts only, never words
    at: float

    def public(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "actor": self.actor,
            "event": self.event,
            "detail": self.detail,
            "at": self.at,
        }


class EmailTakenError(ValueError):
    pass


def _token_hash(token: str) -> str:
    # Only a hash of each session or setup token is stored, so a copied database cannot sign anyone in.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Store:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._connection: sqlite3.Connection | None = None

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self._path)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA secure_delete = ON")
        connection.executescript(_SCHEMA)
        for table, column, declaration in _MIGRATIONS:
            existing = {row["name"] for row in connection.execute(f"PRAGMA table_info({table})")}
            if column not in existing:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        connection.commit()
        self._connection = connection

    async def close(self) -> None:
        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await self._run(close)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("store is not open")
        return self._connection

    # Members -----------------------------------------------------------------------------------

    async def create_member(
        self,
        *,
        email: str,
        name: str,
        organisation: str,
        password_hash: str,
        status: MemberStatus = MemberStatus.PENDING,
        is_admin: bool = False,
    ) -> Member:
        """Record an application (pending), or an approved member such as an administrator; raises
        EmailTakenError if the email has one already."""

        def insert() -> Member:
            member = self._insert_member(email, name, organisation, password_hash, status, is_admin)
            self._db.commit()
            return member

        return await self._run(insert)

    def _insert_member(
        self,
        email: str,
        name: str,
        organisation: str,
        password_hash: str,
        status: MemberStatus,
        is_admin: bool,
    ) -> Member:
        db = self._db
        member_id = secrets.token_hex(8)
        now = time.time()
        try:
            db.execute(
                "INSERT INTO members (id, email, name, organisation, password_hash, status, is_admin,"
                " created_at, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    member_id,
                    email,
                    name,
                    organisation,
                    password_hash,
                    status.value,
                    int(is_admin),
                    now,
                    None if status is MemberStatus.PENDING else now,
                ),
            )
        except sqlite3.IntegrityError as error:
            db.rollback()
            raise EmailTakenError(email) from error
        return self._member_by("id", member_id)  # type: ignore[return-value]

    def _member_by(self, column: str, value: str) -> Member | None:
        assert column in {"id", "email"}
        row = self._db.execute(f"SELECT * FROM members WHERE {column} = ?", (value,)).fetchone()
        return _member(row) if row else None

    async def member(self, member_id: str) -> Member | None:
        return await self._run(lambda: self._member_by("id", member_id))

    async def credentials(self, email: str) -> tuple[Member, str] | None:
        """The member with this email and their password hash, or None."""

        def select() -> tuple[Member, str] | None:
            row = self._db.execute("SELECT * FROM members WHERE email = ?", (email,)).fetchone()
            return (_member(row), row["password_hash"]) if row else None

        return await self._run(select)

    async def set_password_hash(self, member_id: str, password_hash: str) -> None:
        def update() -> None:
            self._db.execute("UPDATE members SET password_hash = ? WHERE id = ?", (password_hash, member_id))
            self._db.commit()

        await self._run(update)

    def _has_admin(self) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM members WHERE is_admin = 1 AND status = ? LIMIT 1", (MemberStatus.APPROVED.value,)
        ).fetchone()
        return row is not None

    async def has_admin(self) -> bool:
        return await self._run(self._has_admin)

    async def members(self, status: MemberStatus | None = None) -> list[Member]:
        def select() -> list[Member]:
            if status is None:
                rows = self._db.execute("SELECT * FROM members ORDER BY created_at").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM members WHERE status = ? ORDER BY created_at", (status.value,)
                ).fetchall()
            return [_member(row) for row in rows]

        return await self._run(select)

    async def decide(self, member_id: str, status: MemberStatus) -> Member | None:
        def update() -> Member | None:
            self._db.execute(
                "UPDATE members SET status = ?, decided_at = ? WHERE id = ?",
                (status.value, time.time(), member_id),
            )
            if status is not MemberStatus.APPROVED:
                self._db.execute("DELETE FROM sessions WHERE member_id = ?", (member_id,))
            self._db.commit()
            return self._member_by("id", member_id)

        return await self._run(update)

    # Sessions ----------------------------------------------------------------------------------

    async def start_session(self, member_id: str, days: int) -> str:
        token = secrets.token_urlsafe(32)

        def insert() -> None:
            self._db.execute(
                "INSERT INTO sessions (token_hash, member_id, expires_at) VALUES (?, ?, ?)",
                (_token_hash(token), member_id, time.time() + days * 86_400),
            )
            self._db.commit()

        await self._run(insert)
        return token

    async def session_member(self, token: str) -> Member | None:
        def select() -> Member | None:
            row = self._db.execute(
                "SELECT m.* FROM sessions s JOIN members m ON m.id = s.member_id"
                " WHERE s.token_hash = ? AND s.expires_at > ?",
                (_token_hash(token), time.time()),
            ).fetchone()
            return _member(row) if row else None

        return await self._run(select)

    async def end_session(self, token: str) -> None:
        def delete() -> None:
            self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))
            self._db.commit()

        await self._run(delete)

    # The setup link -----------------------------------------------------------------------------

    async def new_setup_token(self, valid_s: float) -> str:
        """A token for creating the first administrator; it replaces any earlier one."""
        token = secrets.token_urlsafe(32)

        def replace() -> None:
            self._db.execute("DELETE FROM setup_tokens")
            self._db.execute(
                "INSERT INTO setup_tokens (token_hash, expires_at) VALUES (?, ?)",
                (_token_hash(token), time.time() + valid_s),
            )
            self._db.commit()

        await self._run(replace)
        return token

    def _setup_token_valid(self, token: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM setup_tokens WHERE token_hash = ? AND expires_at > ?",
            (_token_hash(token), time.time()),
        ).fetchone()
        return row is not None

    async def setup_token_valid(self, token: str) -> bool:
        return await self._run(lambda: self._setup_token_valid(token))

    async def complete_setup(
        self, token: str, *, email: str, name: str, organisation: str, password_hash: str
    ) -> Member | None:
        """The first administrator, made with a valid setup token, which is used up; None if the token
        is unknown, expired or used, or an administrator exists already (made by `babelcall admin
        create` meanwhile); EmailTakenError if the email has an application already."""

        def create() -> Member | None:
            if not self._setup_token_valid(token) or self._has_admin():
                return None
            member = self._insert_member(
                email, name, organisation, password_hash, MemberStatus.APPROVED, True
            )
            self._db.execute("DELETE FROM setup_tokens")
            self._db.commit()
            return member

        return await self._run(create)

    # Rooms -------------------------------------------------------------------------------------

    async def create_room(self, *, title: str, kind: RoomKind, created_by: str) -> RoomRecord:
        room = RoomRecord(secrets.token_urlsafe(9), title, kind, created_by, time.time())

        def insert() -> None:
            self._db.execute(
                "INSERT INTO rooms (id, title, kind, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
                (room.id, room.title, room.kind.value, room.created_by, room.created_at),
            )
            self._db.commit()

        await self._run(insert)
        return room

    async def room(self, room_id: str) -> RoomRecord | None:
        def select() -> RoomRecord | None:
            row = self._db.execute(
                "SELECT * FROM rooms WHERE id = ? AND deleted_at IS NULL", (room_id,)
            ).fetchone()
            return _room(row) if row else None

        return await self._run(select)

    async def set_glossary(self, room_id: str, glossary: Glossary) -> None:
        def update() -> None:
            self._db.execute(
                "UPDATE rooms SET glossary = ? WHERE id = ?", (json.dumps(glossary.to_list()), room_id)
            )
            self._db.commit()

        await self._run(update)

    async def delete_room(self, room_id: str) -> None:
        def update() -> None:
            self._db.execute(
                "UPDATE rooms SET deleted_at = ?, glossary = '[]' WHERE id = ?", (time.time(), room_id)
            )
            self._db.execute("DELETE FROM room_removals WHERE room_id = ?", (room_id,))
            self._db.commit()

        await self._run(update)

    async def add_removal(self, room_id: str, member_id: str) -> None:
        def insert() -> None:
            self._db.execute(
                "INSERT OR IGNORE INTO room_removals (room_id, member_id, removed_at) VALUES (?, ?, ?)",
                (room_id, member_id, time.time()),
            )
            self._db.commit()

        await self._run(insert)

    async def is_removed(self, room_id: str, member_id: str) -> bool:
        def select() -> bool:
            row = self._db.execute(
                "SELECT 1 FROM room_removals WHERE room_id = ? AND member_id = ?", (room_id, member_id)
            ).fetchone()
            return row is not None

        return await self._run(select)

    async def clear_removals(self, room_id: str) -> None:
        def delete() -> None:
            self._db.execute("DELETE FROM room_removals WHERE room_id = ?", (room_id,))
            self._db.commit()

        await self._run(delete)

    async def rooms_created_by(self, member_id: str) -> list[RoomRecord]:
        def select() -> list[RoomRecord]:
            rows = self._db.execute(
                "SELECT * FROM rooms WHERE created_by = ? AND deleted_at IS NULL ORDER BY created_at DESC",
                (member_id,),
            ).fetchall()
            return [_room(row) for row in rows]

        return await self._run(select)

    # Consultation records ------------------------------------------------------------------------

    async def create_record(self, record_id: str, room_id: str, started_by: str, started_at: float) -> None:
        def insert() -> None:
            self._db.execute(
                "INSERT INTO records (id, room_id, started_by, started_at) VALUES (?, ?, ?, ?)",
                (record_id, room_id, started_by, started_at),
            )
            self._db.commit()

        await self._run(insert)

    async def end_record(self, record_id: str, ended_at: float) -> None:
        def update() -> None:
            self._db.execute(
                "UPDATE records SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (ended_at, record_id)
            )
            self._db.commit()

        await self._run(update)

    async def end_open_records(self, ended_at: float) -> list[str]:
        """Records a stopped server left running: ended now; their ids."""

        def update() -> list[str]:
            rows = self._db.execute("SELECT id FROM records WHERE ended_at IS NULL").fetchall()
            self._db.execute("UPDATE records SET ended_at = ? WHERE ended_at IS NULL", (ended_at,))
            self._db.commit()
            return [row["id"] for row in rows]

        return await self._run(update)

    async def add_record_members(self, record_id: str, member_ids: set[str]) -> None:
        def insert() -> None:
            self._db.executemany(
                "INSERT OR IGNORE INTO record_members (record_id, member_id) VALUES (?, ?)",
                [(record_id, member_id) for member_id in sorted(member_ids)],
            )
            self._db.commit()

        await self._run(insert)

    async def put_record_line(self, record_id: str, line: SealedLine) -> bool:
        """Keep (or replace) one line; False when the record is gone (deleted meanwhile)."""

        def insert() -> bool:
            try:
                self._insert_line(record_id, line)
            except sqlite3.IntegrityError:
                self._db.rollback()
                return False
            self._db.commit()
            return True

        return await self._run(insert)

    async def settle_record_lines(
        self, record_id: str, replaces: tuple[str, ...], line: SealedLine | None
    ) -> bool:
        """Replace the lines `replaces` names with `line` (none: remove them), in one transaction, only if
        every one of them is in the record: a settled text that covers speech the record did not keep
        is not kept either. Whether it was applied."""

        def replace() -> bool:
            wanted = sorted(set(replaces))
            marks = ",".join("?" * len(wanted))
            found = self._db.execute(
                f"SELECT COUNT(*) FROM record_lines WHERE record_id = ? AND utterance_id IN ({marks})",
                (record_id, *wanted),
            ).fetchone()[0]
            if found != len(wanted) or not wanted:
                return False
            self._db.execute(
                f"DELETE FROM record_lines WHERE record_id = ? AND utterance_id IN ({marks})",
                (record_id, *wanted),
            )
            if line is not None:
                self._insert_line(record_id, line)
            self._db.commit()
            return True

        return await self._run(replace)

    def _insert_line(self, record_id: str, line: SealedLine) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO record_lines"
            " (record_id, utterance_id, speaker_id, start_at, end_at, sealed) VALUES (?, ?, ?, ?, ?, ?)",
            (record_id, line.utterance_id, line.speaker_id, line.start_at, line.end_at, line.sealed),
        )

    async def stored_record(self, record_id: str) -> StoredRecord | None:
        def select() -> StoredRecord | None:
            rows = self._records_where("r.id = ?", (record_id,))
            return rows[0] if rows else None

        return await self._run(select)

    async def stored_records(self, member_id: str | None) -> list[StoredRecord]:
        """Every record (`member_id` None: an administrator's view), or those the member was in or hosts."""
        if member_id is None:
            return await self._run(lambda: self._records_where("1", ()))
        return await self._run(
            lambda: self._records_where(
                "(rm.member_id IS NOT NULL OR rooms.created_by = ?)", (member_id,), member_id
            )
        )

    def _records_where(
        self, where: str, args: tuple[Any, ...], member_id: str | None = None
    ) -> list[StoredRecord]:
        rows = self._db.execute(
            "SELECT r.*, rooms.title AS room_title, rooms.created_by AS room_host,"
            " (SELECT group_concat(member_id) FROM record_members WHERE record_id = r.id) AS members,"
            " (SELECT COUNT(*) FROM record_lines WHERE record_id = r.id) AS lines"
            " FROM records r JOIN rooms ON rooms.id = r.room_id"
            " LEFT JOIN record_members rm ON rm.record_id = r.id AND rm.member_id = ?"
            f" WHERE {where} ORDER BY r.started_at DESC",
            (member_id, *args),
        ).fetchall()
        return [
            StoredRecord(
                id=row["id"],
                room_id=row["room_id"],
                room_title=row["room_title"],
                room_host=row["room_host"],
                started_by=row["started_by"],
                started_at=row["started_at"],
                ended_at=row["ended_at"],
                members=frozenset(row["members"].split(",")) if row["members"] else frozenset(),
                lines=row["lines"],
            )
            for row in rows
        ]

    async def record_lines(self, record_id: str) -> list[SealedLine]:
        def select() -> list[SealedLine]:
            rows = self._db.execute(
                "SELECT * FROM record_lines WHERE record_id = ? ORDER BY start_at, utterance_id", (record_id,)
            ).fetchall()
            return [
                SealedLine(
                    row["utterance_id"], row["speaker_id"], row["start_at"], row["end_at"], row["sealed"]
                )
                for row in rows
            ]

        return await self._run(select)

    async def records_started_before(self, cutoff: float) -> list[str]:
        def select() -> list[str]:
            rows = self._db.execute("SELECT id FROM records WHERE started_at < ?", (cutoff,)).fetchall()
            return [row["id"] for row in rows]

        return await self._run(select)

    async def delete_records(self, record_ids: list[str]) -> None:
        """Delete records with their lines and members. With `secure_delete` their pages are zeroed, and
        the checkpoint empties the write-ahead log, which still held the pages as they were."""

        def delete() -> None:
            self._db.executemany(
                "DELETE FROM records WHERE id = ?", [(record_id,) for record_id in record_ids]
            )
            self._db.commit()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await self._run(delete)

    async def add_record_audit(self, entry: AuditEntry) -> None:
        def insert() -> None:
            self._db.execute(
                "INSERT INTO record_audit (record_id, actor, event, detail, at) VALUES (?, ?, ?, ?, ?)",
                (entry.record_id, entry.actor, entry.event, entry.detail, entry.at),
            )
            self._db.commit()

        await self._run(insert)

    async def record_audit(self, record_id: str) -> list[AuditEntry]:
        def select() -> list[AuditEntry]:
            rows = self._db.execute(
                "SELECT * FROM record_audit WHERE record_id = ? ORDER BY id", (record_id,)
            ).fetchall()
            return [
                AuditEntry(row["record_id"], row["actor"], row["event"], row["detail"], row["at"])
                for row in rows
            ]

        return await self._run(select)

    async def record_key_check(self) -> bytes | None:
        def select() -> bytes | None:
            row = self._db.execute("SELECT sealed FROM record_key_check WHERE id = 1").fetchone()
            return bytes(row["sealed"]) if row else None

        return await self._run(select)

    async def set_record_key_check(self, sealed: bytes) -> None:
        def insert() -> None:
            self._db.execute("INSERT INTO record_key_check (id, sealed) VALUES (1, ?)", (sealed,))
            self._db.commit()

        await self._run(insert)


def _member(row: sqlite3.Row) -> Member:
    return Member(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        organisation=row["organisation"],
        status=MemberStatus(row["status"]),
        is_admin=bool(row["is_admin"]),
        created_at=row["created_at"],
    )


def _room(row: sqlite3.Row) -> RoomRecord:
    return RoomRecord(
        row["id"],
        row["title"],
        RoomKind(row["kind"]),
        row["created_by"],
        row["created_at"],
        Glossary.from_stored(json.loads(row["glossary"])),
    )
