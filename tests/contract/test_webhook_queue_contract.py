"""What every webhook queue does, whatever store holds it: webhooks come out once each, in order per
document, to one dispatcher at a time; a document whose first webhook is postponed waits, others do not;
the queue outlives the process that filled it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import pytest

from docpipe.config import Settings
from docpipe.container import Container, close
from docpipe.domain.events import Event, EventType, event_of
from docpipe.domain.outbox import LEASE_SECONDS
from docpipe.domain.ports import WebhookQueue
from docpipe.domain.webhooks import Delivery
from tests.adapters_under_test import REPOSITORIES, needs_aws, settings_for
from tests.contract.test_repository_contract import make_document

LIMIT = 1000
DURABLE_REPOSITORIES = ["sqlite", "dynamodb"]


class QueueFactory(Protocol):
    def __call__(self, lease_seconds: float = LEASE_SECONDS) -> WebhookQueue: ...


Opener = Callable[[], contextlib.AbstractAsyncContextManager[QueueFactory]]


def opener(request: pytest.FixtureRequest, kind: str, data_dir: Path) -> Opener:
    """Opens the repository ``kind`` on the same store (folder, table) each time, through the container,
    and hands out webhook queues of it."""
    endpoint = request.getfixturevalue("moto_server").endpoint_url if needs_aws(kind) else None
    settings = settings_for(repository=kind, data_dir=data_dir, aws_endpoint_url=endpoint)
    return lambda: _opened(settings)


@contextlib.asynccontextmanager
async def _opened(settings: Settings) -> AsyncIterator[QueueFactory]:
    container = Container(settings=settings)
    try:
        repository = await container.repository()
        yield repository.webhook_queue
    finally:
        await close(container)


@pytest.fixture(params=REPOSITORIES)
async def queues(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueFactory]:
    async with opener(request, request.param, tmp_path)() as factory:
        yield factory


def history(count: int) -> list[Event]:
    """``count`` events of one new document, in commit order."""
    document = make_document()
    events = [event_of(EventType.CREATED, document)]
    while len(events) < count:
        events.append(event_of(EventType.UPDATED, document, after=events[-1].id))
    return events


def by_document(deliveries: list[Delivery]) -> dict[str, list[tuple[str, int]]]:
    found: dict[str, list[tuple[str, int]]] = {}
    for delivery in deliveries:
        found.setdefault(delivery.event.document_id, []).append((delivery.event.id, delivery.attempts))
    return found


async def test_webhooks_come_out_once_each_in_order_per_document(queues: QueueFactory) -> None:
    queue = queues()
    first, second = history(3), history(2)
    for event in (first[0], second[0], first[1], second[1], first[2], first[0]):
        await queue.add(event)
    pending = await queue.pending(LIMIT, time.time())
    assert by_document(pending) == {
        first[0].document_id: [(event.id, 0) for event in first],
        second[0].document_id: [(event.id, 0) for event in second],
    }
    assert pending[0].event == first[0]
    assert len(await queue.pending(2, time.time())) == 2


async def test_a_postponed_document_waits_while_the_others_go_on(queues: QueueFactory) -> None:
    queue = queues()
    refused, other = history(2), history(1)
    for event in (*refused, *other):
        await queue.add(event)
    now = time.time()
    await queue.postpone(refused[0], 2, now + 60)

    assert by_document(await queue.pending(LIMIT, now)) == {other[0].document_id: [(other[0].id, 0)]}
    assert by_document(await queue.pending(1, now)) == {other[0].document_id: [(other[0].id, 0)]}
    assert by_document(await queue.pending(LIMIT, now + 61)) == {
        refused[0].document_id: [(refused[0].id, 2), (refused[1].id, 0)],
        other[0].document_id: [(other[0].id, 0)],
    }


async def test_removed_webhooks_are_gone_for_good(queues: QueueFactory) -> None:
    queue = queues()
    events = history(2)
    for event in events:
        await queue.add(event)
    await queue.remove(events[0])
    await queue.remove(events[0])
    await queue.postpone(events[0], 1, time.time() + 60)
    assert [delivery.event for delivery in await queue.pending(LIMIT, time.time())] == [events[1]]
    await queue.remove(events[1])
    assert await queue.pending(LIMIT, time.time()) == []


async def test_one_dispatcher_at_a_time_until_it_releases(queues: QueueFactory) -> None:
    holder, other = queues(), queues()
    (event,) = history(1)
    await holder.add(event)
    assert [delivery.event for delivery in await holder.pending(LIMIT, time.time())] == [event]
    assert await other.pending(LIMIT, time.time()) == []
    await holder.release()
    assert [delivery.event for delivery in await other.pending(LIMIT, time.time())] == [event]


async def test_a_lapsed_lease_passes_to_another_dispatcher(queues: QueueFactory) -> None:
    holder, other = queues(lease_seconds=0.2), queues()
    (event,) = history(1)
    await holder.add(event)
    assert await holder.pending(LIMIT, time.time()) != []
    await asyncio.sleep(0.3)  # the lease lapses; while it runs, others get nothing (the test above)
    assert [delivery.event for delivery in await other.pending(LIMIT, time.time())] == [event]


async def test_a_renewed_lease_runs_on_until_released(queues: QueueFactory) -> None:
    """A dispatcher whose receiver takes longer than a lease keeps its webhooks by renewing, also once
    the lease ran out, as long as no other dispatcher asked meanwhile; a lease given up is not renewed."""
    slow, rival = queues(lease_seconds=0.5), queues()
    (event,) = history(1)
    await slow.add(event)
    assert await slow.pending(LIMIT, time.time()) != []
    assert await slow.renew()
    await asyncio.sleep(0.55)  # past the lease taken by pending: a renewal that did not write lets it lapse
    assert await slow.renew()
    assert await rival.pending(LIMIT, time.time()) == []
    await slow.release()
    assert [delivery.event for delivery in await rival.pending(LIMIT, time.time())] == [event]
    assert not await slow.renew()


async def test_an_addition_wakes_the_dispatcher(queues: QueueFactory) -> None:
    queue = queues()
    added = queue.next_addition()
    assert not added.is_set()
    await queue.add(history(1)[0])
    assert added.is_set()


@pytest.mark.parametrize("kind", DURABLE_REPOSITORIES)
async def test_the_queue_and_its_retries_outlive_the_process(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    open_store = opener(request, kind, tmp_path)
    events = history(2)
    now = time.time()
    async with open_store() as queues:
        queue = queues()
        for event in events:
            await queue.add(event)
        await queue.pending(LIMIT, now)
        await queue.postpone(events[0], 3, now + 60)
        await queue.release()
    async with open_store() as queues:
        queue = queues()
        assert await queue.pending(LIMIT, now) == []
        assert by_document(await queue.pending(LIMIT, now + 61)) == {
            events[0].document_id: [(events[0].id, 3), (events[1].id, 0)]
        }
