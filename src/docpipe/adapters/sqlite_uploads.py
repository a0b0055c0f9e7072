"""Resumable upload sessions in the documents' SQLite file: an ``upload_sessions`` table.

Like the key repository (``sqlite_keys``), it reads and writes through the document repository's
connections (``SqliteRepository.uploads``). Every compare-and-set is one conditional ``UPDATE``, a
transaction of its own, which SQLite serialises across processes sharing the file: of two PATCHes
taking one upload's lease, in one process or in two, the second finds the first one's lease. What a
PATCH writes (its lease, then its offset) thus costs one trip to SQLite's thread each.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import msgspec

from docpipe.adapters.sqlite_keys import Read, Transaction
from docpipe.domain.errors import UploadBusy, UploadNotFound
from docpipe.domain.uploads.session import Lease, UploadSession, refuse_lease

SCHEMA = """
CREATE TABLE IF NOT EXISTS upload_sessions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    blob_key TEXT NOT NULL UNIQUE,
    length INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT,
    tags TEXT NOT NULL,  -- a JSON array
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    lease_token TEXT,
    lease_until REAL,
    document_id TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS upload_sessions_by_expiry ON upload_sessions (expires_at);
"""

_COLUMN_NAMES = (
    "id",
    "owner",
    "blob_key",
    "length",
    '"offset"',
    "filename",
    "content_type",
    "tags",
    "created_at",
    "expires_at",
    "lease_token",
    "lease_until",
    "document_id",
)
_COLUMNS = ", ".join(_COLUMN_NAMES)
_SELECT = f"SELECT {_COLUMNS} FROM upload_sessions"  # noqa: S608
_TAKE_LEASE = (
    "UPDATE upload_sessions SET lease_token = ?, lease_until = ? "  # noqa: S608
    'WHERE id = ? AND owner = ? AND expires_at > ? AND document_id IS NULL AND "offset" = ? '
    f"AND (lease_until IS NULL OR lease_until <= ? OR lease_token = ?) RETURNING {_COLUMNS}"
)
_INSERT = f"INSERT INTO upload_sessions ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMN_NAMES))})"  # noqa: S608


WriteAlone = Read
"""One writing statement as a transaction of its own, on the writer connection, its rows fetched."""


class SqliteUploadRepository:
    """The ``upload_sessions`` table, through the connections of the document repository in the same file."""

    def __init__(self, read: Read, transaction: Transaction, write_alone: WriteAlone) -> None:
        self._read = read
        self._transaction = transaction
        self._write_alone = write_alone

    async def create(self, session: UploadSession) -> None:
        async with self._transaction() as db:
            await db.execute(_INSERT, _row(session))

    async def get(self, owner: str, upload_id: str) -> UploadSession:
        rows = await self._read(f"{_SELECT} WHERE id = ? AND owner = ?", (upload_id, owner))
        if not rows:
            raise UploadNotFound(upload_id)
        return _session(rows[0])

    async def take_lease(
        self, owner: str, upload_id: str, offset: int, lease: Lease, now: datetime
    ) -> UploadSession:
        """One conditional update, the port's rule (``refuse_lease``) as its WHERE clause, which the
        refused row is then run through to say which part of it failed: a PATCH's lease costs one
        statement, not a read and a write."""
        moment = now.timestamp()
        taken = await self._write_alone(
            _TAKE_LEASE,
            (lease.token, lease.until.timestamp(), upload_id, owner, moment, offset, moment, lease.token),
        )
        if not taken:
            refuse_lease(await self.get(owner, upload_id), offset, lease.token, now)
            raise UploadBusy(upload_id)  # the rule and the condition disagree, the row changed since
        return _session(taken[0])

    async def advance(
        self,
        owner: str,
        upload_id: str,
        token: str,
        offset: int,
        lease_until: datetime | None,
        expires_at: datetime,
    ) -> None:
        await self._held_write(
            owner,
            upload_id,
            token,
            'UPDATE upload_sessions SET "offset" = ?, expires_at = ?, lease_token = ?, lease_until = ?',
            (
                offset,
                expires_at.timestamp(),
                None if lease_until is None else token,
                None if lease_until is None else lease_until.timestamp(),
            ),
        )

    async def complete(
        self, owner: str, upload_id: str, token: str, document_id: str, expires_at: datetime
    ) -> None:
        await self._held_write(
            owner,
            upload_id,
            token,
            'UPDATE upload_sessions SET "offset" = length, document_id = ?, expires_at = ?, '
            "lease_token = NULL, lease_until = NULL",
            (document_id, expires_at.timestamp()),
        )

    async def delete(self, owner: str, upload_id: str, now: datetime) -> UploadSession:
        async with self._transaction() as db:
            session = await _current(db, owner, upload_id)
            if session.leased(now):
                raise UploadBusy(upload_id)
            await db.execute("DELETE FROM upload_sessions WHERE id = ?", (upload_id,))
        return session

    async def expired(self, now: datetime, limit: int) -> list[UploadSession]:
        moment = now.timestamp()
        rows = await self._read(
            f"{_SELECT} WHERE expires_at <= ? AND (lease_until IS NULL OR lease_until <= ?) "
            "ORDER BY expires_at LIMIT ?",
            (moment, moment, limit),
        )
        return [_session(row) for row in rows]

    async def holding(self, blob_key: str) -> UploadSession | None:
        rows = await self._read(f"{_SELECT} WHERE blob_key = ?", (blob_key,))
        return _session(rows[0]) if rows else None

    async def _held_write(
        self, owner: str, upload_id: str, token: str, update: str, parameters: tuple[Any, ...]
    ) -> None:
        """``update`` (a statement without its WHERE) on the session, if ``token`` holds its lease."""
        written = await self._write_alone(
            f"{update} WHERE id = ? AND owner = ? AND lease_token = ? RETURNING id",
            (*parameters, upload_id, owner, token),
        )
        if not written:
            await self.get(owner, upload_id)  # UploadNotFound when it is gone
            raise UploadBusy(upload_id)


async def _current(db: aiosqlite.Connection, owner: str, upload_id: str) -> UploadSession:
    async with db.execute(f"{_SELECT} WHERE id = ? AND owner = ?", (upload_id, owner)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise UploadNotFound(upload_id)
    return _session(row)


def _row(session: UploadSession) -> tuple[Any, ...]:
    return (
        session.id,
        session.owner,
        session.blob_key,
        session.length,
        session.offset,
        session.filename,
        session.content_type,
        msgspec.json.encode(session.tags).decode(),
        session.created_at.timestamp(),
        session.expires_at.timestamp(),
        session.lease_token,
        None if session.lease_until is None else session.lease_until.timestamp(),
        session.document_id,
    )


def _session(row: sqlite3.Row | tuple[Any, ...]) -> UploadSession:
    return UploadSession(
        id=row[0],
        owner=row[1],
        blob_key=row[2],
        length=row[3],
        offset=row[4],
        filename=row[5],
        content_type=row[6],
        tags=tuple(msgspec.json.decode(row[7], type=list[str])),
        created_at=_moment(row[8]),
        expires_at=_moment(row[9]),
        lease_token=row[10],
        lease_until=None if row[11] is None else _moment(row[11]),
        document_id=row[12],
    )


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
