"""The relay over the in-memory outbox: nothing lost when consumers or the outbox fail, each document's
events in order and each only after the previous one was acknowledged, woken by commits, one relay at a
time per store, and a clean stop that hands the events over at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from docpipe.adapters.memory import MemoryOutbox, MemoryRepository
from docpipe.domain.errors import StoreRole, StoreUnavailable
from docpipe.domain.events import Event, EventType
from docpipe.domain.relay import Relay, backoff
from tests.contract.test_repository_contract import OWNER, make_document, renamed
from tests.relay_support import PATIENCE_SECONDS, Acknowledged, Recorder, Watched, quick_relay, running


async def changes(
    repository: MemoryRepository, documents: int, updates: int
) -> dict[str, list[tuple[EventType, int]]]:
    """Adds ``documents``, updates each ``updates`` times, deletes the first: what each one's events are."""
    added = [make_document(f"{n}.pdf") for n in range(documents)]
    for document in added:
        await repository.add(document)
    for n in range(updates):
        for document in added:
            await repository.update(OWNER, document.id, renamed(f"{n}.txt"))
    await repository.delete(OWNER, added[0].id)
    expected = {
        document.id: [(EventType.CREATED, 1)] + [(EventType.UPDATED, 2 + n) for n in range(updates)]
        for document in added
    }
    expected[added[0].id].append((EventType.DELETED, updates + 2))
    return expected


async def assert_drained(repository: MemoryRepository) -> None:
    assert await repository.outbox().pending(1000) == []


@pytest.mark.parametrize("failures", [1, 3, 10])
async def test_a_consumer_failing_then_succeeding_loses_nothing_and_keeps_order(failures: int) -> None:
    repository = MemoryRepository()
    expected = await changes(repository, documents=3, updates=2)
    consumer = Recorder(failures)
    outbox = Watched(repository.outbox())
    async with running(quick_relay(outbox, [consumer])):
        await outbox.until_acknowledged(10)
    assert consumer.per_document() == expected
    assert consumer.calls == 10 + failures
    await assert_drained(repository)


async def test_a_documents_next_event_waits_for_the_previous_ones_acknowledgement() -> None:
    repository = MemoryRepository()
    await changes(repository, documents=4, updates=3)
    outbox = Watched(repository.outbox())
    consumer = Recorder(failures=2)
    async with running(quick_relay(outbox, [outbox, consumer])):
        await outbox.until_acknowledged(17)
    assert outbox.early == []
    assert len(consumer.handled) == len(outbox.acknowledged.seen) == 17


async def test_every_consumer_gets_every_event_even_when_another_fails() -> None:
    repository = MemoryRepository()
    expected = await changes(repository, documents=2, updates=1)
    steady, flaky = Recorder(), Recorder(failures=3)
    async with running(quick_relay(repository.outbox(), [steady, flaky])):
        await flaky.until_handled(5)
    assert flaky.per_document() == expected
    for document_id, events in steady.per_document().items():  # duplicates of events the other failed
        assert sorted(set(events), key=lambda kind: kind[1]) == expected[document_id]
        assert events == sorted(events, key=lambda kind: kind[1])


class FailingFirst:
    """An outbox whose store fails its first ``reads`` reads and its first ``acknowledgements``
    acknowledgements."""

    def __init__(self, inner: MemoryOutbox, reads: int, acknowledgements: int) -> None:
        self._inner = inner
        self._reads = reads
        self._acknowledgements = acknowledgements

    async def pending(self, limit: int) -> list[Event]:
        if self._reads > 0:
            self._reads -= 1
            raise StoreUnavailable(StoreRole.REPOSITORY, "down for the test")
        return await self._inner.pending(limit)

    async def acknowledge(self, events: Sequence[Event]) -> None:
        if self._acknowledgements > 0:
            self._acknowledgements -= 1
            raise StoreUnavailable(StoreRole.REPOSITORY, "down for the test")
        await self._inner.acknowledge(events)

    async def renew(self) -> bool:
        return await self._inner.renew()

    async def release(self) -> None:
        await self._inner.release()

    def next_commit(self) -> asyncio.Event:
        return self._inner.next_commit()


async def test_an_outbox_that_fails_is_read_again_and_nothing_is_lost() -> None:
    """An acknowledgement that failed means the events come again: duplicates, still in order."""
    repository = MemoryRepository()
    expected = await changes(repository, documents=2, updates=2)
    consumer = Recorder()
    outbox = Watched(FailingFirst(repository.outbox(), reads=3, acknowledgements=1))
    async with running(quick_relay(outbox, [consumer])):
        await outbox.until_acknowledged(7)
        await repository.add(document := make_document())
        await outbox.until_acknowledged(8)
    handled = consumer.per_document()
    assert handled.pop(document.id) == [(EventType.CREATED, 1)]
    for document_id, events in handled.items():
        assert events[0] == events[1] == (EventType.CREATED, 1)
        assert events[1:] == expected[document_id]
    await assert_drained(repository)


async def test_a_commit_wakes_the_relay_before_its_next_poll() -> None:
    repository = MemoryRepository()
    consumer = Recorder()
    async with running(Relay(repository.outbox(), [consumer], poll_seconds=3600)):
        await asyncio.sleep(0.05)  # let it find the outbox empty and wait
        for n in range(3):
            await repository.add(make_document(f"{n}.pdf"))
            await consumer.until_handled(n + 1)


async def test_a_cancelled_relay_stops_and_hands_its_events_over_at_once() -> None:
    repository = MemoryRepository()
    outbox = Watched(repository.outbox())
    async with running(quick_relay(outbox, [Recorder()])) as task:
        await repository.add(make_document())
        await outbox.until_acknowledged(1)
    assert task.cancelled()
    document = make_document()
    await repository.add(document)
    (event,) = await repository.outbox().pending(10)  # no lease to wait out
    assert event.document_id == document.id


async def test_relays_sharing_a_store_do_not_deliver_the_same_events() -> None:
    repository = MemoryRepository()
    consumer = Recorder()
    acknowledged = Acknowledged()
    relays = [quick_relay(Watched(repository.outbox(), acknowledged), [consumer]) for _ in range(3)]
    async with running(relays[0]), running(relays[1]), running(relays[2]):
        expected = await changes(repository, documents=5, updates=3)
        await acknowledged.until(21)
    assert consumer.per_document() == expected
    await assert_drained(repository)


class Holding:
    """A consumer that holds each event until the test lets it go: a slow extraction."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.go = asyncio.Event()

    async def handle(self, event: Event) -> None:
        self.started.set()
        await self.go.wait()


async def test_a_relay_keeps_its_lease_while_a_consumer_outlasts_it() -> None:
    lease = 0.2
    repository = MemoryRepository()
    await repository.add(make_document())
    consumer = Holding()
    outbox = Watched(repository.outbox(lease_seconds=lease))
    rival = repository.outbox(lease_seconds=lease)
    relay = Relay(outbox, [consumer], poll_seconds=0.01, renew_seconds=lease / 10)
    async with running(relay):
        async with asyncio.timeout(PATIENCE_SECONDS):
            await consumer.started.wait()
        for _ in range(30):  # three leases
            assert await rival.pending(10) == []
            await asyncio.sleep(lease / 10)
        consumer.go.set()
        await outbox.until_acknowledged(1)
    assert await rival.pending(10) == []


class Losing(Watched):
    """An outbox that loses its lease at the first renewal."""

    def __init__(self, inner: MemoryOutbox) -> None:
        super().__init__(inner)
        self.lost = asyncio.Event()

    async def renew(self) -> bool:
        self.lost.set()
        return False


async def test_a_relay_that_lost_its_lease_starts_no_further_round_of_the_batch() -> None:
    repository = MemoryRepository()
    document = make_document()
    await repository.add(document)
    await repository.update(OWNER, document.id, renamed("b.pdf"))
    outbox = Losing(repository.outbox())
    consumer = Recorder()
    holding = Holding()
    relay = Relay(outbox, [consumer, holding], backoff_seconds=3600, renew_seconds=0.01)
    async with running(relay):
        async with asyncio.timeout(PATIENCE_SECONDS):
            await outbox.lost.wait()
        holding.go.set()
        await outbox.until_acknowledged(1)
        await asyncio.sleep(0.05)  # a second round would start at once
    assert consumer.per_document() == {document.id: [(EventType.CREATED, 1)]}


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    for failing in range(1, 40):
        ceiling = min(30.0, 0.5 * 2 ** (failing - 1))
        pauses = {backoff(failing, 0.5, 30.0) for _ in range(20)}
        assert all(ceiling / 2 <= pause <= ceiling for pause in pauses)
        assert len(pauses) > 1
    assert backoff(10_000, 0.5, 30.0) <= 30.0
