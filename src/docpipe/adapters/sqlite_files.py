"""What docpipe's two SQLite files, the documents' (``sqlite``) and the search index's (``sqlite_search``),
share: how one is opened (a writer connection and a few readers, in WAL mode, commits synced unless the
file holds derived data), and how SQLite's failures become domain errors."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiosqlite

from docpipe.domain.errors import StorageFull, StoreMissing, StoreRole, StoreUnavailable

BUSY_TIMEOUT_MS = 5000
"""How long a write waits for another process's write lock before it gives up (503)."""


class converted:  # noqa: N801 - used as the function it was: ``with converted(role, name):``
    """SQLite's failures as domain errors, of the store ``role`` called ``name`` in their messages.

    A full disk or database is ``StorageFull``; a write lock another process held past the busy
    timeout, an I/O error or a file that cannot be opened is ``StoreUnavailable``. Constraint and
    programming errors are docpipe's own mistakes and pass through. A class rather than a generator:
    every point read enters one, and a generator's context manager costs several times as much.
    """

    __slots__ = ("_name", "_role")

    def __init__(self, role: StoreRole, name: str) -> None:
        self._role = role
        self._name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> None:
        if not isinstance(error, sqlite3.Error) or isinstance(
            error, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
        ):
            return
        if error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL:
            raise StorageFull(self._role, f"{self._name}: {error}") from None
        raise StoreUnavailable(self._role, f"{self._name}: {error}") from None


@contextlib.asynccontextmanager
async def connections(
    path: Path,
    *,
    create_missing: bool,
    role: StoreRole,
    name: str,
    readers: int,
    prepare: Callable[[aiosqlite.Connection], Awaitable[None]],
    synced: bool = True,
) -> AsyncIterator[tuple[aiosqlite.Connection, list[aiosqlite.Connection]]]:
    """The writer and ``readers`` reader connections of the file at ``path``, closed on exit. Folder and
    file are created when missing, unless ``create_missing`` is false (``StoreMissing`` then); the writer
    runs ``prepare`` (the file's schema) before any reader connects. Every commit is synced to the disk
    unless ``synced`` is false (derived data: a commit then survives the process, not a lost power)."""
    if create_missing:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    elif not await asyncio.to_thread(path.is_file):
        raise StoreMissing(role, f"{name} {path}")
    async with contextlib.AsyncExitStack() as opened:
        with converted(role, name):
            writer = await _connect(path, synced=synced)
            opened.push_async_callback(writer.close)
            await writer.execute("PRAGMA journal_mode = WAL")
            await prepare(writer)
            connected = []
            for _ in range(readers):
                reader = await _connect(path)
                opened.push_async_callback(reader.close)
                connected.append(reader)
        yield writer, connected


async def _connect(path: Path, *, synced: bool = True) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await db.execute("PRAGMA foreign_keys = ON")
    await db.execute(f"PRAGMA synchronous = {'FULL' if synced else 'NORMAL'}")
    return db
