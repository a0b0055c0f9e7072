"""The relay: delivers the outbox's events to their consumers after the commits that wrote them.

Delivery is at least once: an event is acknowledged (removed from the outbox) only once every consumer
handled it, so a crash, a failing consumer or a lease taken over by another relay means the event is
handed out again. Consumers therefore tolerate duplicates; an event's ``sequence`` tells a late
duplicate from news. Each document's events are handed out in commit order, and a document's next
event only once its previous one is acknowledged: a batch goes out in rounds, the first pending event
of every document, then the second, and so on, each round acknowledged before the next one starts.
While a batch is being delivered its lease is renewed, however long its consumers take (a slow
extraction); a relay that loses it nonetheless (a store unreachable for longer than a lease) starts no
further round of the batch, since another relay may now be delivering its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from typing import Protocol

from docpipe.domain.errors import StoreFailure
from docpipe.domain.events import Event
from docpipe.domain.outbox import RENEW_SECONDS
from docpipe.domain.ports import Outbox

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
"""Events read from the outbox at a time."""
POLL_SECONDS = 1.0
"""How often an idle relay looks for events that other processes committed; this process's own
commits wake it at once."""
BACKOFF_SECONDS = 0.5
"""The first pause after a batch that could not all be delivered; it doubles with each failing batch..."""
BACKOFF_CAP_SECONDS = 30.0
"""... up to this (the actual pause is between half of it and all of it, at random)."""
CONCURRENCY = 8
"""Events (of distinct documents) handed to the consumers at once."""
RELEASE_SECONDS = 5.0
"""How long a stopping relay tries to release its lease; after that, the lease lapses by itself."""


class EventConsumer(Protocol):
    """Something that acts on events: indexes a document, processes it, posts a webhook."""

    async def handle(self, event: Event) -> None:
        """Act on ``event``; return only once what it caused is done or durably queued. Raising means
        "not handled": the event comes back, after a pause, until the consumer handles it. The same
        event may come more than once (see the module docstring)."""
        ...


class Relay:
    """Reads the outbox, hands each event to every consumer and acknowledges it, until cancelled."""

    def __init__(
        self,
        outbox: Outbox,
        consumers: Sequence[EventConsumer],
        *,
        batch_size: int = BATCH_SIZE,
        poll_seconds: float = POLL_SECONDS,
        backoff_seconds: float = BACKOFF_SECONDS,
        backoff_cap_seconds: float = BACKOFF_CAP_SECONDS,
        concurrency: int = CONCURRENCY,
        renew_seconds: float = RENEW_SECONDS,
    ) -> None:
        self._outbox = outbox
        self._consumers = tuple(consumers)
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._backoff_seconds = backoff_seconds
        self._backoff_cap_seconds = backoff_cap_seconds
        self._concurrency = asyncio.Semaphore(concurrency)
        self._renew_seconds = renew_seconds

    async def run(self) -> None:
        """Deliver until cancelled; then release the outbox's lease, so another relay (or this one,
        restarted) takes over at once. A full batch is followed by the next at once; a short one by a
        wait for a commit of this process or the next poll; a failure of the outbox or of a consumer
        by a pause that grows with each failing batch."""
        failing_batches = 0
        try:
            while True:
                commit = self._outbox.next_commit()
                try:
                    events = await self._outbox.pending(self._batch_size)
                    delivered = await self._deliver_renewing(events)
                except StoreFailure as error:
                    logger.warning("the event outbox could not be read or acknowledged: %s", error)
                    delivered = False
                except Exception:
                    logger.exception("the event outbox could not be read or acknowledged")
                    delivered = False
                if not delivered:
                    failing_batches += 1
                    await asyncio.sleep(
                        backoff(failing_batches, self._backoff_seconds, self._backoff_cap_seconds)
                    )
                    continue
                failing_batches = 0
                if len(events) < self._batch_size:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll_seconds):
                            await commit.wait()
        finally:
            await self._release()

    async def _deliver_renewing(self, events: Sequence[Event]) -> bool:
        """``_deliver`` while a task renews the outbox's lease."""
        if not events:
            return True
        lost = asyncio.Event()
        renewing = asyncio.create_task(self._renew(lost))
        try:
            return await self._deliver(events, lost)
        finally:
            renewing.cancel()
            await asyncio.wait([renewing])

    async def _renew(self, lost: asyncio.Event) -> None:
        """Renew the lease every ``renew_seconds`` until cancelled; set ``lost`` if it was lost. A renewal
        that fails (the store) is tried again at the next turn, while the lease still runs."""
        while True:
            await asyncio.sleep(self._renew_seconds)
            try:
                if not await self._outbox.renew():
                    logger.warning("the event outbox's lease was lost during a batch; its rest is left")
                    lost.set()
                    return
            except StoreFailure as error:
                logger.warning("the event outbox's lease could not be renewed: %s", error)
            except Exception:
                logger.exception("the event outbox's lease could not be renewed")

    async def _deliver(self, events: Sequence[Event], lost: asyncio.Event) -> bool:
        """Deliver ``events`` (oldest first) in rounds, acknowledging each round's delivered events before
        the next round; a document whose event failed is left out of later rounds, and every round once
        the lease is ``lost``. Whether all went."""
        by_document: dict[tuple[str, str], list[Event]] = {}
        for event in events:
            by_document.setdefault((event.owner, event.document_id), []).append(event)
        queues = list(by_document.values())
        complete = True
        while queues:
            if lost.is_set():
                return False
            round_ = [queue.pop(0) for queue in queues]
            handled = await asyncio.gather(*(self._handled(event) for event in round_))
            delivered = [event for event, ok in zip(round_, handled, strict=True) if ok]
            if delivered:
                await self._outbox.acknowledge(delivered)
            complete = complete and all(handled)
            queues = [queue for queue, ok in zip(queues, handled, strict=True) if ok and queue]
        return complete

    async def _handled(self, event: Event) -> bool:
        """Whether every consumer handled ``event``; they all get it, side by side, even when one fails."""
        async with self._concurrency:
            outcomes = await asyncio.gather(
                *(consumer.handle(event) for consumer in self._consumers), return_exceptions=True
            )
        for consumer, outcome in zip(self._consumers, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                logger.warning(
                    "%s of document %s (%s) not handled by %s; it will be retried: %r",
                    event.type,
                    event.document_id,
                    event.id,
                    type(consumer).__name__,
                    outcome,
                )
        return not any(isinstance(outcome, BaseException) for outcome in outcomes)

    async def _release(self) -> None:
        try:
            async with asyncio.timeout(RELEASE_SECONDS):
                await self._outbox.release()
        except Exception:
            logger.warning("the event outbox's lease could not be released; it lapses by itself")


def backoff(failing_batches: int, first: float, cap: float) -> float:
    """The pause after ``failing_batches`` failing batches in a row: ``first``, doubling with each one up
    to ``cap``, and jittered (between half of that and all of it) so that relays, and the services their
    consumers call, are not retried in lockstep."""
    ceiling = min(cap, first * 2 ** min(failing_batches - 1, 32))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)
