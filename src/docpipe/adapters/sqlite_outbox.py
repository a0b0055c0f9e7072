"""The outbox in the documents' SQLite file: an ``outbox`` table the document repository appends each
change's event to, inside the change's transaction, and the one lease on it (``outbox_lease``).

Events are read in ``position`` order, which is commit order: every write transaction appends under the
file's write lock, and a new row's position is above every row still there. Processes sharing the file
(the server's workers) share one lease, so one relay at a time delivers the events: a relay's throughput
is bounded by its consumers, not by SQLite, whose writes go one at a time anyway.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import aiosqlite
import msgspec

from docpipe.adapters.sqlite_keys import Read, Transaction
from docpipe.domain.events import Event
from docpipe.domain.outbox import Commits, needs_renewal

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    position INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL  -- the Event as msgspec JSON
);
CREATE TABLE IF NOT EXISTS outbox_lease (
    only INTEGER PRIMARY KEY CHECK (only = 0),
    holder TEXT NOT NULL,
    lease_until REAL NOT NULL
);
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


async def write_event(db: aiosqlite.Connection, event: Event) -> None:
    """Append ``event`` inside the caller's write transaction: it commits, or vanishes, with the change."""
    encoded = _encoder.encode(event).decode()
    await db.execute("INSERT INTO outbox (id, event) VALUES (?, ?)", (event.id, encoded))


class SqliteOutbox:
    """One relay's view of the outbox, through the document repository's connections (see
    ``SqliteRepository.outbox``)."""

    def __init__(self, read: Read, transaction: Transaction, commits: Commits, lease_seconds: float) -> None:
        self._read = read
        self._transaction = transaction
        self._commits = commits
        self._lease = SqliteLease(read, transaction, "outbox_lease", lease_seconds)

    async def pending(self, limit: int) -> list[Event]:
        if not await self._lease.held(time.time()):
            return []
        rows = await self._read("SELECT event FROM outbox ORDER BY position LIMIT ?", (limit,))
        return [_decoder.decode(row[0]) for row in rows]

    async def acknowledge(self, events: Sequence[Event]) -> None:
        async with self._transaction() as db:
            await db.executemany("DELETE FROM outbox WHERE id = ?", [(event.id,) for event in events])

    async def renew(self) -> bool:
        return await self._lease.renew(time.time())

    async def release(self) -> None:
        await self._lease.release()

    def next_commit(self) -> asyncio.Event:
        return self._commits.next()


class SqliteLease:
    """The one lease of a table of the shape of ``outbox_lease``. It remembers until when it holds the
    lease, as it wrote it: no other holder can take the lease before then."""

    def __init__(self, read: Read, transaction: Transaction, table: str, lease_seconds: float) -> None:
        self._read = read
        self._transaction = transaction
        self._table = table
        self._lease_seconds = lease_seconds
        self._holder = uuid.uuid4().hex
        self._held_until = 0.0

    async def held(self, now: float) -> bool:
        """Whether this holder has the lease at ``now``, renewing or taking it when needed."""
        return not needs_renewal(self._held_until, now, self._lease_seconds) or await self._take(now)

    async def renew(self, now: float) -> bool:
        """Whether this holder still has the lease at ``now``, renewing it when needed; a lease another
        holder took, or this one released, is not taken back."""
        if not needs_renewal(self._held_until, now, self._lease_seconds):
            return True
        until = now + self._lease_seconds
        async with self._transaction() as db:
            renewed = await db.execute(
                f"UPDATE {self._table} SET lease_until = ? WHERE holder = ?",  # noqa: S608
                (until, self._holder),
            )
            if renewed.rowcount == 0:
                self._held_until = 0.0
                return False
        self._held_until = until
        return True

    async def release(self) -> None:
        self._held_until = 0.0
        async with self._transaction() as db:
            await db.execute(f"DELETE FROM {self._table} WHERE holder = ?", (self._holder,))  # noqa: S608

    async def _take(self, now: float) -> bool:
        """Take or renew the lease, unless another holder's runs: read first, so that a relay waiting
        for another's lease to lapse does not take the write lock at every poll."""
        held = await self._read(f"SELECT holder, lease_until FROM {self._table}", ())  # noqa: S608
        if held and held[0][0] != self._holder and held[0][1] > now:
            return False
        until = now + self._lease_seconds
        async with self._transaction() as db:
            taken = await db.execute(
                f"INSERT INTO {self._table} (only, holder, lease_until) VALUES (0, ?, ?) "  # noqa: S608
                "ON CONFLICT (only) DO UPDATE "
                "SET holder = excluded.holder, lease_until = excluded.lease_until "
                "WHERE holder = excluded.holder OR lease_until <= ?",
                (self._holder, until, now),
            )
            if taken.rowcount == 0:
                return False
        self._held_until = until
        return True
