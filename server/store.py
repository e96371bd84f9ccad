"""Persistent state in SQLite: members (applications and approvals), sign-in sessions and rooms.

sqlite3 calls block, so every query runs on one dedicated thread; the event loop only awaits.
Transcripts and captions are deliberately not stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
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


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(candidate.hex(), digest)


def _token_hash(token: str) -> str:
    # Only a hash of each session token is stored, so a copied database cannot sign anyone in.
    return hashlib.sha256(token.encode()).hexdigest()


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

    async def apply(self, *, email: str, name: str, organisation: str, password: str) -> Member:
        """Record an application. The very first member becomes the approved administrator, so a new
        installation can be bootstrapped from its own sign-up page."""
        password_hash = await asyncio.to_thread(hash_password, password)

        def insert() -> Member:
            db = self._db
            first = db.execute("SELECT COUNT(*) FROM members").fetchone()[0] == 0
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
                        MemberStatus.APPROVED if first else MemberStatus.PENDING,
                        int(first),
                        now,
                        now if first else None,
                    ),
                )
            except sqlite3.IntegrityError as error:
                raise EmailTakenError(email) from error
            db.commit()
            return self._member_by("id", member_id)  # type: ignore[return-value]

        return await self._run(insert)

    def _member_by(self, column: str, value: str) -> Member | None:
        assert column in {"id", "email"}
        row = self._db.execute(f"SELECT * FROM members WHERE {column} = ?", (value,)).fetchone()
        return _member(row) if row else None

    async def member(self, member_id: str) -> Member | None:
        return await self._run(lambda: self._member_by("id", member_id))

    async def authenticate(self, email: str, password: str) -> Member | None:
        row = await self._run(
            lambda: self._db.execute("SELECT * FROM members WHERE email = ?", (email,)).fetchone()
        )
        if row is None:
            # Spend the same time as a real check so response times do not reveal which emails exist.
            await asyncio.to_thread(verify_password, password, hash_password("x"))
            return None
        ok = await asyncio.to_thread(verify_password, password, row["password_hash"])
        return _member(row) if ok else None

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
        Glossary.from_list(json.loads(row["glossary"])),
    )
