"""What every repository does with events, whatever the technology behind it: each change writes exactly
its event in the same commit, a change that fails writes none, and the outbox hands events out oldest
first, in commit order per document, to one relay at a time, until they are acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import msgspec
import pytest

from docpipe.config import Settings
from docpipe.container import Container, close
from docpipe.domain.errors import DocumentNotFound, DuplicateDocument, IdempotencyKeyInUse, PreconditionFailed
from docpipe.domain.events import Event, EventType
from docpipe.domain.idempotency import new_claim
from docpipe.domain.model import Document, ListQuery, Processing, ProcessingState, utc_now
from docpipe.domain.outbox import LEASE_SECONDS
from docpipe.domain.ports import DocumentRepository, Outbox
from tests.adapters_under_test import REPOSITORIES, needs_aws, settings_for
from tests.contract.support import PATIENCE_SECONDS
from tests.contract.test_repository_contract import OWNER, make_document, renamed

DRAIN_LIMIT = 1000
DONE = Processing(state=ProcessingState.DONE, pages=3, characters=1200, title="Q3", processor="pdf/1")


class RepositoryWithOutbox(DocumentRepository, Protocol):
    """A repository adapter together with its outbox, as each adapter offers it."""

    def outbox(self, lease_seconds: float = LEASE_SECONDS) -> Outbox: ...


Opener = Callable[[], contextlib.AbstractAsyncContextManager[RepositoryWithOutbox]]


def opener(request: pytest.FixtureRequest, kind: str, data_dir: Path) -> Opener:
    """Opens the adapter ``kind`` on the same store (folder, table) each time, through the container."""
    endpoint = request.getfixturevalue("moto_server").endpoint_url if needs_aws(kind) else None
    settings = settings_for(repository=kind, data_dir=data_dir, aws_endpoint_url=endpoint)
    return lambda: _opened(settings)


@contextlib.asynccontextmanager
async def _opened(settings: Settings) -> AsyncIterator[RepositoryWithOutbox]:
    container = Container(settings=settings)
    try:
        repository: RepositoryWithOutbox = await container.repository()
        yield repository
    finally:
        await close(container)


@pytest.fixture(params=REPOSITORIES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RepositoryWithOutbox]:
    async with opener(request, request.param, tmp_path)() as repository:
        yield repository


async def drained(outbox: Outbox) -> list[Event]:
    """Every pending event, oldest first, acknowledged."""
    events = await outbox.pending(DRAIN_LIMIT)
    await outbox.acknowledge(events)
    return events


async def handed_at_last(outbox: Outbox, count: int) -> list[Event]:
    """The pending events once ``outbox`` is handed at least ``count``; fails after ``PATIENCE_SECONDS``."""
    async with asyncio.timeout(PATIENCE_SECONDS):
        while True:
            events = await outbox.pending(DRAIN_LIMIT)
            if len(events) >= count:
                return events
            await asyncio.sleep(0.05)


def kinds(events: list[Event]) -> list[tuple[EventType, str, int]]:
    return [(event.type, event.document_id, event.sequence) for event in events]


async def test_add_writes_created_with_the_document(store: RepositoryWithOutbox) -> None:
    document = make_document(tags=("a",))
    await store.add(document)
    (event,) = await drained(store.outbox())
    assert (event.type, event.owner, event.document_id, event.sequence) == (
        EventType.CREATED,
        OWNER,
        document.id,
        1,
    )
    assert event.document == document
    assert event.id.startswith("evt_")
    assert event.occurred_at.utcoffset() is not None


async def test_update_writes_updated_with_the_document_after(store: RepositoryWithOutbox) -> None:
    document = make_document()
    await store.add(document)
    outbox = store.outbox()
    await drained(outbox)
    updated = await store.update(OWNER, document.id, renamed("b.pdf", tags=("t",)))
    (event,) = await drained(outbox)
    assert (event.type, event.sequence, event.document) == (EventType.UPDATED, 2, updated)


async def test_delete_writes_deleted_with_the_document_before(store: RepositoryWithOutbox) -> None:
    document = make_document()
    await store.add(document)
    updated = await store.update(OWNER, document.id, renamed("b.pdf"))
    await store.delete(OWNER, document.id)
    events = await drained(store.outbox())
    assert kinds(events) == [
        (EventType.CREATED, document.id, 1),
        (EventType.UPDATED, document.id, 2),
        (EventType.DELETED, document.id, 3),
    ]
    assert events[-1].document == updated


async def test_a_new_document_is_pending_and_its_processing_is_stored(store: RepositoryWithOutbox) -> None:
    document = make_document()
    await store.add(document)
    assert (await store.get(OWNER, document.id)).processing == Processing()
    assert document.processing.state is ProcessingState.PENDING

    recorded = await store.record_processing(OWNER, document.id, document.sha256, DONE)
    assert (recorded.processing, recorded.version) == (DONE, 2)
    assert await store.get(OWNER, document.id) == recorded
    assert (await store.list(OWNER, ListQuery())).documents == [recorded]
    _, event = await drained(store.outbox())
    assert (event.type, event.sequence, event.document) == (EventType.PROCESSED, 2, recorded)


async def test_processing_is_kept_through_updates(store: RepositoryWithOutbox) -> None:
    document = make_document()
    await store.add(document)
    await store.record_processing(OWNER, document.id, document.sha256, DONE)
    updated = await store.update(OWNER, document.id, renamed("b.pdf"))
    assert updated.processing == DONE
    assert await store.get(OWNER, document.id) == updated


async def test_a_stale_result_changes_nothing_and_emits_nothing(store: RepositoryWithOutbox) -> None:
    document = make_document()
    await store.add(document)
    outbox = store.outbox()
    await drained(outbox)
    returned = await store.record_processing(OWNER, document.id, "cd" * 32, DONE)
    assert returned == document
    assert await store.get(OWNER, document.id) == document
    assert await outbox.pending(DRAIN_LIMIT) == []


@pytest.mark.parametrize("owner", [OWNER, "tenant-b"])
async def test_recording_for_a_missing_or_foreign_document_is_not_found(
    store: RepositoryWithOutbox, owner: str
) -> None:
    document = make_document(owner="tenant-b" if owner == OWNER else OWNER)
    await store.add(document)
    outbox = store.outbox()
    await drained(outbox)
    other_id = document.id if owner == OWNER else make_document().id
    with pytest.raises(DocumentNotFound):
        await store.record_processing(owner, other_id, document.sha256, DONE)
    assert await outbox.pending(DRAIN_LIMIT) == []
    assert await store.get(document.owner, document.id) == document


async def test_failed_or_refused_changes_write_no_event(store: RepositoryWithOutbox) -> None:
    document = make_document()
    await store.add(document)
    outbox = store.outbox()
    await drained(outbox)

    with pytest.raises(DuplicateDocument):
        await store.add(document)
    with pytest.raises(IdempotencyKeyInUse):  # a claim never made: the conditional write is refused
        await store.add(make_document(), new_claim(OWNER, "never-claimed", utc_now()))

    def refused(current: Document) -> Document:
        raise PreconditionFailed

    with pytest.raises(PreconditionFailed):
        await store.update(OWNER, document.id, refused)
    for owner, document_id in (("tenant-b", document.id), (OWNER, make_document().id)):
        with pytest.raises(DocumentNotFound):
            await store.update(owner, document_id, renamed("x.pdf"))
        with pytest.raises(DocumentNotFound):
            await store.delete(owner, document_id)
    assert await outbox.pending(DRAIN_LIMIT) == []
    assert await store.get(OWNER, document.id) == document


async def test_every_event_names_its_owner(store: RepositoryWithOutbox) -> None:
    mine, theirs = make_document(), make_document(owner="tenant-b")
    for document in (mine, theirs):
        await store.add(document)
        await store.update(document.owner, document.id, renamed("b.pdf"))
        await store.record_processing(document.owner, document.id, document.sha256, DONE)
        await store.delete(document.owner, document.id)
    events = await drained(store.outbox())
    assert len(events) == 8
    for event in events:
        assert event.owner == event.document.owner
        assert (event.owner, event.document_id) in {(mine.owner, mine.id), (theirs.owner, theirs.id)}


async def test_events_come_oldest_first_in_commit_order_per_document(store: RepositoryWithOutbox) -> None:
    first, second = make_document("a.pdf"), make_document("b.pdf")
    await store.add(first)
    await store.add(second)
    for n in range(3):
        for document in (second, first):
            await store.update(OWNER, document.id, renamed(f"{n}.pdf"))
    events = await drained(store.outbox())
    for document in (first, second):
        assert [e.sequence for e in events if e.document_id == document.id] == [1, 2, 3, 4]
        assert [e.type for e in events if e.document_id == document.id] == [EventType.CREATED] + [
            EventType.UPDATED
        ] * 3
    assert len({event.id for event in events}) == len(events) == 8


async def test_pending_is_bounded_and_acknowledged_events_are_gone(store: RepositoryWithOutbox) -> None:
    documents = [make_document(f"{n}.pdf") for n in range(5)]
    for document in documents:
        await store.add(document)
    outbox = store.outbox()
    page = await outbox.pending(2)
    assert len(page) == 2
    await outbox.acknowledge(page)
    await outbox.acknowledge(page)  # twice is not an error
    rest = await outbox.pending(DRAIN_LIMIT)
    assert {e.document_id for e in page + rest} == {d.id for d in documents}
    assert not {e.id for e in page} & {e.id for e in rest}


async def test_one_relay_at_a_time_holds_the_events(store: RepositoryWithOutbox) -> None:
    document = make_document()
    await store.add(document)
    first, second = store.outbox(), store.outbox()
    assert kinds(await first.pending(DRAIN_LIMIT)) == [(EventType.CREATED, document.id, 1)]
    await store.update(OWNER, document.id, renamed("b.pdf"))
    assert await second.pending(DRAIN_LIMIT) == []
    await first.release()
    events = await second.pending(DRAIN_LIMIT)
    assert [event.sequence for event in events] == [1, 2]
    assert await first.pending(DRAIN_LIMIT) == []


async def test_a_lapsed_lease_is_taken_over(store: RepositoryWithOutbox) -> None:
    document = make_document()
    await store.add(document)
    lapsing, patient = store.outbox(lease_seconds=0.2), store.outbox()
    assert len(await lapsing.pending(DRAIN_LIMIT)) == 1
    events = await handed_at_last(patient, 1)
    assert kinds(events) == [(EventType.CREATED, document.id, 1)]
    assert await lapsing.pending(DRAIN_LIMIT) == []


async def test_a_renewed_lease_runs_on_past_its_first_term(store: RepositoryWithOutbox) -> None:
    """A relay whose consumers take longer than a lease keeps its events by renewing: also once the
    lease ran out, as long as no other relay asked for the events meanwhile."""
    await store.add(make_document())
    slow, rival = store.outbox(lease_seconds=1), store.outbox(lease_seconds=1)
    assert len(await slow.pending(DRAIN_LIMIT)) == 1
    assert await slow.renew()
    await asyncio.sleep(1.1)  # past the lease taken by pending: a renewal that did not write lets it lapse
    assert await slow.renew()
    assert await rival.pending(DRAIN_LIMIT) == []


async def test_a_lease_taken_over_or_released_is_not_renewed(store: RepositoryWithOutbox) -> None:
    document = make_document()
    await store.add(document)
    lapsing, patient = store.outbox(lease_seconds=0.2), store.outbox()
    assert len(await lapsing.pending(DRAIN_LIMIT)) == 1
    assert kinds(await handed_at_last(patient, 1)) == [(EventType.CREATED, document.id, 1)]
    assert not await lapsing.renew()
    assert await lapsing.pending(DRAIN_LIMIT) == []
    await patient.release()
    assert not await patient.renew()


async def test_a_commit_rings_the_outbox(store: RepositoryWithOutbox) -> None:
    outbox = store.outbox()
    commit = outbox.next_commit()
    assert not commit.is_set()
    await store.add(make_document())
    assert commit.is_set()
    assert not outbox.next_commit().is_set()


@pytest.mark.parametrize("kind", [kind for kind in REPOSITORIES if kind != "memory"])
async def test_events_survive_closing_and_reopening_the_store(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    open_store = opener(request, kind, tmp_path)
    document = make_document()
    async with open_store() as repository:
        await repository.add(document)
        await repository.update(OWNER, document.id, renamed("b.pdf"))
        dying = repository.outbox(lease_seconds=1)
        handed_out = await dying.pending(DRAIN_LIMIT)  # and its relay dies without acknowledging them
    async with open_store() as repository:
        await repository.delete(OWNER, document.id)
        events = await handed_at_last(repository.outbox(), 3)  # once the dead relay's lease lapses
    assert events[:2] == handed_out
    assert kinds(events) == [
        (EventType.CREATED, document.id, 1),
        (EventType.UPDATED, document.id, 2),
        (EventType.DELETED, document.id, 3),
    ]


async def test_the_event_is_the_document_as_stored(store: RepositoryWithOutbox) -> None:
    """What a consumer reads in the event is what a reader of the repository gets."""
    document = make_document("Q3 réport ☃.pdf", tags=("finance",), metadata={"ünï": "cödé"})
    await store.add(document)
    updated = await store.update(
        OWNER, document.id, lambda current: msgspec.structs.replace(current, version=2, links_epoch=1)
    )
    events = await drained(store.outbox())
    assert [event.document for event in events] == [document, updated]
