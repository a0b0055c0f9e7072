"""API keys in the documents' SQLite file: an ``api_keys`` table, created with the documents' schema.

The key repository has no connections of its own: it reads and writes through the document repository's
(``SqliteRepository.api_keys``), so its writes take turns with the documents' under one lock and its
failures become domain errors where the documents' do. A revoked key's row is deleted.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import aiosqlite
import msgspec

from docpipe.domain.errors import DuplicateKey, KeyNotFound
from docpipe.domain.identity import Scope
from docpipe.domain.keys import ApiKey

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    scopes TEXT NOT NULL,  -- a JSON array of scope names
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT
) WITHOUT ROWID;
"""

_COLUMN_NAMES = ("id", "secret_hash", "owner", "scopes", "name", "created_at", "expires_at", "last_used_at")
_COLUMNS = ", ".join(_COLUMN_NAMES)
_SELECT = f"SELECT {_COLUMNS} FROM api_keys"  # noqa: S608
_INSERT = f"INSERT INTO api_keys ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMN_NAMES))})"  # noqa: S608

Read = Callable[[str, Sequence[Any]], Awaitable[list[sqlite3.Row]]]
"""One statement on a reader connection, its rows fetched, SQLite's failures converted."""
Transaction = Callable[[], contextlib.AbstractAsyncContextManager[aiosqlite.Connection]]
"""A write transaction on the writer connection, SQLite's failures converted."""


class SqliteKeyRepository:
    """The ``api_keys`` table, through the connections of the document repository in the same file."""

    def __init__(self, read: Read, transaction: Transaction, check: Callable[[], Awaitable[None]]) -> None:
        self._read = read
        self._transaction = transaction
        self._check = check

    async def add(self, key: ApiKey) -> None:
        async with self._transaction() as db:
            try:
                await db.execute(_INSERT, _row(key))
            except sqlite3.IntegrityError:
                raise DuplicateKey(key.id) from None

    async def find(self, secret_hash: str) -> ApiKey | None:
        rows = await self._read(f"{_SELECT} WHERE secret_hash = ?", (secret_hash,))
        return _key(rows[0]) if rows else None

    async def list(self) -> list[ApiKey]:
        return [_key(row) for row in await self._read(f"{_SELECT} ORDER BY id", ())]

    async def revoke(self, key_id: str) -> None:
        async with self._transaction() as db:
            deleted = await db.execute("DELETE FROM api_keys WHERE id = ?", (key_id,))
            if deleted.rowcount == 0:
                raise KeyNotFound(key_id)

    async def touch(self, key_id: str, when: datetime) -> None:
        async with self._transaction() as db:
            await db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (when.isoformat(), key_id))

    async def check(self) -> None:
        await self._check()


def _row(key: ApiKey) -> tuple[Any, ...]:
    return (
        key.id,
        key.secret_hash,
        key.owner,
        msgspec.json.encode(sorted(key.scopes)).decode(),
        key.name,
        key.created_at.isoformat(),
        _moment(key.expires_at),
        _moment(key.last_used_at),
    )


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row[0],
        secret_hash=row[1],
        owner=row[2],
        scopes=msgspec.json.decode(row[3], type=frozenset[Scope]),
        name=row[4],
        created_at=datetime.fromisoformat(row[5]),
        expires_at=_parsed(row[6]),
        last_used_at=_parsed(row[7]),
    )


def _moment(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parsed(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
