"""Persistent state in SQLite: members (applications and approvals), sign-in sessions, rooms and the
one-time setup link.

sqlite3 calls block, so every query runs on one dedicated thread; the event loop only awaits.
Transcripts and captions are deliberately not stored, nor are passwords (only their hashes, made by
server/passwords.py), session tokens or setup tokens (only a SHA-256 of each).
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
