"""Webhooks: every event posted to one receiver, at least once, in commit order per document.

The relay hands each event to ``WebhookQueuing``, which only queues it (``ports.WebhookQueue``, in the
documents' store) and returns: a receiver that fails or hangs never holds up processing or indexing.
A ``WebhookDispatcher`` posts the queued webhooks (``ports.WebhookSender``), several documents at once
and each document's in order. A document whose webhook fails waits ``RETRY_SCHEDULE`` (as Standard
Webhooks' reference service, Svix, does: about a day in all) while other documents' go on; after the
last try the webhook is given up, with a log line, and the document's next one follows.

While webhooks are being posted the dispatcher renews the queue's lease, however long the receiver takes
to answer (as the relay does during a batch); a dispatcher that loses it nonetheless posts no further
webhook of the documents it was posting, since the lease's new holder (a replica) posts them now.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import msgspec

from docpipe.domain.errors import WebhookNotDelivered
from docpipe.domain.events import Event
from docpipe.domain.outbox import RENEW_SECONDS
from docpipe.domain.relay import backoff

if TYPE_CHECKING:
    from docpipe.domain.ports import WebhookQueue, WebhookSender

logger = logging.getLogger(__name__)

RETRY_SCHEDULE: tuple[float, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
"""Seconds between a failed try and the next: the first try is at once, the last about 27.6 hours later."""
BATCH_SIZE = 100
"""Deliveries read from the queue at a time."""
POLL_SECONDS = 1.0
"""How often an idle dispatcher looks for webhooks other processes queued, or that came due."""
CONCURRENCY = 8
"""Documents whose webhooks are being posted at once."""
RELEASE_SECONDS = 5.0
"""How long a stopping dispatcher tries to release its lease; after that, the lease lapses by itself."""
STORE_BACKOFF_SECONDS = 0.5
STORE_BACKOFF_CAP_SECONDS = 30.0
"""The pause after the queue could not be read doubles from the first to the second."""


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A queued webhook: the event it posts (whose id is the ``webhook-id``, the same on every try), and
    how many tries failed so far."""

    event: Event
    attempts: int = 0


class WebhookQueuing:
    """The relay's webhook consumer: queues the event's webhook, durably, and returns."""

    def __init__(self, queue: WebhookQueue) -> None:
        self._queue = queue

    async def handle(self, event: Event) -> None:
        await self._queue.add(event)


class WebhookDispatcher:
    """Posts queued webhooks until cancelled; then releases the queue's lease."""

    def __init__(
        self,
        queue: WebhookQueue,
        sender: WebhookSender,
        *,
        schedule: Sequence[float] = RETRY_SCHEDULE,
        batch_size: int = BATCH_SIZE,
        poll_seconds: float = POLL_SECONDS,
        concurrency: int = CONCURRENCY,
        clock: Callable[[], float] = time.time,
        renew_seconds: float = RENEW_SECONDS,
    ) -> None:
        self._queue = queue
        self._sender = sender
        self._schedule = tuple(schedule)
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._concurrency = concurrency
        self._clock = clock
        self._renew_seconds = renew_seconds
        self._lost = asyncio.Event()
        """Set when a renewal found the lease lost: the posting started under it goes no further."""
        self._posting: dict[tuple[str, str], asyncio.Task[None]] = {}
        """The task posting each document's webhooks, by (owner, document id)."""
        self._wake_at: float | None = None
        """When the first webhook this dispatcher postponed comes due, if before the next poll."""

    async def run(self) -> None:
        """Each round reads the due deliveries and starts posting those of documents not being posted
        already, up to ``concurrency`` documents; then waits for a document to finish, a webhook to be
        queued by this process, a webhook it postponed to come due, or the next poll."""
        failing_reads = 0
        renewing = asyncio.create_task(self._renew())
        try:
            while True:
                added = self._queue.next_addition()
                try:
                    deliveries = await self._queue.pending(self._batch_size, self._clock())
                except Exception as error:
                    failing_reads += 1
                    logger.warning("the webhook queue could not be read: %r", error)
                    await asyncio.sleep(
                        backoff(failing_reads, STORE_BACKOFF_SECONDS, STORE_BACKOFF_CAP_SECONDS)
                    )
                    continue
                failing_reads = 0
                self._start(deliveries)
                await self._wait(added)
        finally:
            renewing.cancel()
            await asyncio.wait([renewing])
            await self._stop()

    async def _renew(self) -> None:
        """Renew the queue's lease every ``renew_seconds`` while webhooks are being posted, until
        cancelled; set ``_lost`` if it was lost. A renewal that fails (the store) is tried again at the
        next turn, while the lease still runs."""
        while True:
            await asyncio.sleep(self._renew_seconds)
            if not self._posting:
                continue
            try:
                if not await self._queue.renew():
                    logger.warning("the webhook queue's lease was lost while posting; the rest is left")
                    self._lost.set()
            except Exception as error:
                logger.warning("the webhook queue's lease could not be renewed: %r", error)

    def _start(self, deliveries: Sequence[Delivery]) -> None:
        if self._lost.is_set():  # these deliveries were handed out under a lease taken since
            self._lost = asyncio.Event()
        by_document: dict[tuple[str, str], list[Delivery]] = {}
        for delivery in deliveries:
            key = (delivery.event.owner, delivery.event.document_id)
            if key not in self._posting:
                by_document.setdefault(key, []).append(delivery)
        for key, queued in by_document.items():
            if len(self._posting) >= self._concurrency:
                return
            self._posting[key] = asyncio.create_task(self._post_in_order(queued, self._lost))

    async def _wait(self, added: asyncio.Event) -> None:
        timeout = self._poll_seconds
        if self._wake_at is not None:
            timeout = max(0.0, min(timeout, self._wake_at - self._clock()))
        waiting = asyncio.create_task(added.wait())
        try:
            await asyncio.wait(
                [waiting, *self._posting.values()], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiting.cancel()
        if self._wake_at is not None and self._wake_at <= self._clock():
            self._wake_at = None
        for key, task in list(self._posting.items()):
            if task.done():
                del self._posting[key]
                if not task.cancelled() and task.exception() is not None:
                    logger.warning("the webhook queue could not be updated: %r", task.exception())

    async def _post_in_order(self, deliveries: Sequence[Delivery], lost: asyncio.Event) -> None:
        """Post one document's webhooks in order, until one fails and is postponed, or the lease they
        were handed out under is ``lost``."""
        for delivery in deliveries:
            if lost.is_set() or not await self._posted(delivery):
                return

    async def _posted(self, delivery: Delivery) -> bool:
        """Post ``delivery``; whether the document's next webhook may follow (this one was delivered or
        given up)."""
        event = delivery.event
        try:
            await self._sender.send(event)
        except WebhookNotDelivered as error:
            attempts = delivery.attempts + 1
            if attempts > len(self._schedule):
                logger.error(
                    "webhook %s (%s of document %s) given up after %d tries: %s",
                    event.id,
                    event.type,
                    event.document_id,
                    attempts,
                    error,
                )
                await self._queue.remove(event)
                return True
            logger.warning(
                "webhook %s (%s of document %s) not delivered (try %d), retried in %g s: %s",
                event.id,
                event.type,
                event.document_id,
                attempts,
                self._schedule[attempts - 1],
                error,
            )
            until = self._clock() + self._schedule[attempts - 1]
            await self._queue.postpone(event, attempts, until)
            self._wake_at = until if self._wake_at is None else min(self._wake_at, until)
            return False
        await self._queue.remove(event)
        return True

    async def _stop(self) -> None:
        """Stop posting (a webhook cut short is posted again later: at least once), and release the lease."""
        for task in self._posting.values():
            task.cancel()
        await asyncio.gather(*self._posting.values(), return_exceptions=True)
        self._posting.clear()
        try:
            async with asyncio.timeout(RELEASE_SECONDS):
                await self._queue.release()
        except Exception:
            logger.warning("the webhook queue's lease could not be released; it lapses by itself")
