"""The webhook queue in the documents' SQLite file (see ``ports.WebhookQueue``): a ``webhooks`` table in
``position`` order, which is the order the relay added them in, and the one lease on it
(``webhook_lease``, as ``outbox_lease`` is the relay's).

Only a document's first webhook is ever tried, so only it is ever postponed (``not_before``): a webhook
is due when no webhook of its document, itself included, is postponed past now.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from docpipe.adapters.sqlite_keys import Read, Transaction
from docpipe.adapters.sqlite_outbox import SqliteLease
from docpipe.domain.events import Event
from docpipe.domain.outbox import Commits
from docpipe.domain.webhooks import Delivery

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    position INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    document_id TEXT NOT NULL,
    event TEXT NOT NULL,  -- the Event as msgspec JSON
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS webhooks_postponed ON webhooks (owner, document_id, not_before);
CREATE TABLE IF NOT EXISTS webhook_lease (
    only INTEGER PRIMARY KEY CHECK (only = 0),
    holder TEXT NOT NULL,
    lease_until REAL NOT NULL
);
"""

_DUE = """
SELECT w.event, w.attempts FROM webhooks AS w
WHERE NOT EXISTS (
    SELECT 1 FROM webhooks AS p
    WHERE p.owner = w.owner AND p.document_id = w.document_id AND p.not_before > ?
)
ORDER BY w.position LIMIT ?
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


class SqliteWebhookQueue:
    """One dispatcher's view of the webhook queue, through the document repository's connections (see
    ``SqliteRepository.webhook_queue``)."""

    def __init__(self, read: Read, transaction: Transaction, lease_seconds: float) -> None:
        self._read = read
        self._transaction = transaction
        self._lease = SqliteLease(read, transaction, "webhook_lease", lease_seconds)
        self._additions = Commits()

    async def add(self, event: Event) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO webhooks (id, owner, document_id, event) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING",
                (event.id, event.owner, event.document_id, _encoder.encode(event).decode()),
            )
        self._additions.ring()

    async def pending(self, limit: int, now: float) -> list[Delivery]:
        if not await self._lease.held(time.time()):
            return []
        rows = await self._read(_DUE, (now, limit))
        return [Delivery(event=_decoder.decode(row[0]), attempts=row[1]) for row in rows]

    async def remove(self, event: Event) -> None:
        async with self._transaction() as db:
            await db.execute("DELETE FROM webhooks WHERE id = ?", (event.id,))

    async def postpone(self, event: Event, attempts: int, until: float) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE webhooks SET attempts = ?, not_before = ? WHERE id = ?", (attempts, until, event.id)
            )

    async def renew(self) -> bool:
        return await self._lease.renew(time.time())

    async def release(self) -> None:
        await self._lease.release()

    def next_addition(self) -> asyncio.Event:
        return self._additions.next()
