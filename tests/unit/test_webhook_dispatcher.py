"""The webhook dispatcher's lease on the queue: kept while a receiver takes longer than a lease to answer,
so that no other dispatcher (a replica) posts the same document's webhooks meanwhile; and once lost, no
further webhook of the documents being posted is posted, since the lease's new holder posts them."""

from __future__ import annotations

import asyncio

from docpipe.adapters.memory import MemoryRepository
from docpipe.domain.errors import StoreRole, StoreUnavailable
from docpipe.domain.events import Event
from docpipe.domain.ports import WebhookQueue
from docpipe.domain.webhooks import Delivery, WebhookDispatcher
from tests.contract.test_webhook_queue_contract import history
from tests.relay_support import PATIENCE_SECONDS, running


class SlowReceiver:
    """A webhook sender whose every POST takes ``seconds`` (or until ``go`` is set); it notes every POST
    that began while another of the same document was under way."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds
        self.go = asyncio.Event()
        self.started = asyncio.Event()
        self.posted: list[Event] = []
        self.overlapping: list[Event] = []
        self._posting: dict[str, int] = {}
        self._changed = asyncio.Event()

    async def send(self, event: Event) -> None:
        self.posted.append(event)
        self.started.set()
        if self._posting.get(event.document_id):
            self.overlapping.append(event)
        self._posting[event.document_id] = self._posting.get(event.document_id, 0) + 1
        try:
            if self.seconds is None:
                await self.go.wait()
            else:
                await asyncio.sleep(self.seconds)
        finally:
            self._posting[event.document_id] -= 1
            self._changed.set()

    async def until_answered(self, count: int) -> None:
        async with asyncio.timeout(PATIENCE_SECONDS):
            while len(self.posted) - sum(self._posting.values()) < count:
                self._changed.clear()
                await self._changed.wait()


class ReadsFailing:
    """A webhook queue whose reads fail after the first: the dispatcher backs off, for longer than a short
    lease, while its POSTs and the queue's other calls go on."""

    def __init__(self, inner: WebhookQueue) -> None:
        self._inner = inner
        self._reads = 0

    async def add(self, event: Event) -> None:
        await self._inner.add(event)

    async def pending(self, limit: int, now: float) -> list[Delivery]:
        self._reads += 1
        if self._reads > 1:
            raise StoreUnavailable(StoreRole.REPOSITORY, "reads failing for the test")
        return await self._inner.pending(limit, now)

    async def remove(self, event: Event) -> None:
        await self._inner.remove(event)

    async def postpone(self, event: Event, attempts: int, until: float) -> None:
        await self._inner.postpone(event, attempts, until)

    async def renew(self) -> bool:
        return await self._inner.renew()

    async def release(self) -> None:
        await self._inner.release()

    def next_addition(self) -> asyncio.Event:
        return self._inner.next_addition()


class Losing(ReadsFailing):
    """A webhook queue that loses its lease at the first renewal: another dispatcher took it over, so
    nothing is handed out to this one any more."""

    def __init__(self, inner: WebhookQueue) -> None:
        super().__init__(inner)
        self.lost = asyncio.Event()

    async def pending(self, limit: int, now: float) -> list[Delivery]:
        return [] if self.lost.is_set() else await self._inner.pending(limit, now)

    async def renew(self) -> bool:
        self.lost.set()
        return False


async def test_a_dispatcher_keeps_its_lease_while_a_receiver_outlasts_it() -> None:
    lease = 0.1
    repository = MemoryRepository()
    events = history(2)
    for event in events:
        await repository.webhook_queue().add(event)
    receiver = SlowReceiver(seconds=3 * lease)
    slow = WebhookDispatcher(
        ReadsFailing(repository.webhook_queue(lease_seconds=lease)), receiver, renew_seconds=lease / 10
    )
    rival = WebhookDispatcher(
        repository.webhook_queue(lease_seconds=lease),
        receiver,
        poll_seconds=lease / 10,
        renew_seconds=lease / 10,
    )
    async with running(slow):
        async with asyncio.timeout(PATIENCE_SECONDS):
            await receiver.started.wait()
        async with running(rival):
            await receiver.until_answered(2)
            await asyncio.sleep(lease)  # a rival holding the lease would post again meanwhile
    assert receiver.overlapping == []
    assert receiver.posted == events


async def test_a_dispatcher_that_lost_its_lease_posts_no_further_webhook_of_the_document() -> None:
    repository = MemoryRepository()
    events = history(2)
    queue = Losing(repository.webhook_queue())
    for event in events:
        await queue.add(event)
    receiver = SlowReceiver()
    async with running(WebhookDispatcher(queue, receiver, poll_seconds=0.01, renew_seconds=0.01)):
        async with asyncio.timeout(PATIENCE_SECONDS):
            await queue.lost.wait()
        receiver.go.set()
        await receiver.until_answered(1)
        await asyncio.sleep(0.05)  # the document's next webhook would follow at once
    assert receiver.posted == events[:1]
