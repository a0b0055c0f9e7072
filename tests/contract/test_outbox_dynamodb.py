"""What the DynamoDB outbox does beyond the outbox contract, against a real moto server: the event rides in
the change's transaction within DynamoDB's 100 items, a refused transaction writes none, pending events
are found by Query (never a Scan) in each document's commit order even when writers' clocks disagree,
and items written before the outbox and processing existed still work."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aioboto3
import msgspec

from docpipe.adapters.dynamodb import DynamoDbRepository
from docpipe.adapters.dynamodb_outbox import OUTBOX_SHARDS
from docpipe.domain.errors import PreconditionFailed
from docpipe.domain.events import EventType
from docpipe.domain.fields import MAX_TAGS
from docpipe.domain.idempotency import completed, new_claim
from docpipe.domain.listing import PREFIX_ENTRY_LENGTH
from docpipe.domain.model import Document, Processing, first_id_at, utc_now
from tests.contract.test_dynamodb_specifics import fresh_settings, repository_and_client
from tests.contract.test_outbox_contract import DRAIN_LIMIT, drained, kinds
from tests.contract.test_repository_contract import OWNER, make_document, renamed
from tests.moto_server import MotoServer

TRANSACTION_ITEMS_MAX = 100
"""What one TransactWriteItems may hold."""


@contextlib.asynccontextmanager
async def watched_repository(
    moto_server: MotoServer, event_name: str, handler: Callable[..., None]
) -> AsyncIterator[DynamoDbRepository]:
    """A repository on a new table whose client calls ``handler`` on botocore's ``event_name``."""
    settings = fresh_settings(moto_server.endpoint_url)
    async with aioboto3.Session().client("dynamodb", endpoint_url=moto_server.endpoint_url) as client:
        repository = DynamoDbRepository(client, settings.table)
        await repository.create_table_if_missing()
        client.meta.events.register(event_name, handler)
        yield repository


async def test_the_largest_change_and_its_event_fit_one_transaction(moto_server: MotoServer) -> None:
    """An update that moves every listing entry (filename, content type, all tags) puts each new entry
    and deletes each old one but ``ALL`` (rewritten in place), besides the document item and the event."""
    sizes: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params["TransactItems"]))

    async with watched_repository(
        moto_server, "provide-client-params.dynamodb.TransactWriteItems", record
    ) as (repository):
        claim = new_claim(OWNER, "largest", utc_now())
        await repository.claim(claim, utc_now())
        document = make_document(
            "abcdefghij.pdf", tags=tuple(f"old-{n}" for n in range(MAX_TAGS)), content_type="application/pdf"
        )
        await repository.add(document, completed(claim, utc_now()))

        def everything_changes(current: Document) -> Document:
            return msgspec.structs.replace(
                current,
                filename="zyxwvutsrq.txt",
                content_type="text/plain",
                tags=tuple(f"new-{n}" for n in range(MAX_TAGS)),
                version=current.version + 1,
            )

        await repository.update(OWNER, document.id, everything_changes)
        await repository.delete(OWNER, document.id)
        entries = 3 + MAX_TAGS + PREFIX_ENTRY_LENGTH  # ALL, FILENAME, TYPE, the tags, the prefixes
        largest = 1 + entries + (entries - 1) + 1
        assert sizes == [1 + entries + 1 + 1, largest, 1 + entries + 1]  # the add completes its key too
        assert largest == 87 <= TRANSACTION_ITEMS_MAX
        events = await drained(repository.outbox())
        assert [event.type for event in events] == [EventType.CREATED, EventType.UPDATED, EventType.DELETED]


async def test_pending_events_are_queried_never_scanned(moto_server: MotoServer) -> None:
    calls: list[str] = []
    recording = False

    def record_call(model: Any, **_: Any) -> None:
        if recording:
            calls.append(model.name)

    async with watched_repository(moto_server, "before-call.dynamodb", record_call) as repository:
        documents = [make_document(f"{n}.pdf") for n in range(8)]
        for document in documents:
            await repository.add(document)
        outbox = repository.outbox()
        recording = True
        events = await outbox.pending(DRAIN_LIMIT)
        await outbox.acknowledge(events)
        assert {event.document_id for event in events} == {document.id for document in documents}
        assert "Scan" not in calls
        assert calls.count("Query") == 1 + OUTBOX_SHARDS  # the leases, then each shard
        calls.clear()
        assert await outbox.pending(DRAIN_LIMIT) == []
        assert calls == ["Query"] * OUTBOX_SHARDS  # leases fresh: no lease work at all


class _ReadingTogether(DynamoDbRepository):
    """A writer whose first read of a document waits until ``readers`` writers have read it: they all
    read the same version, then race to write it."""

    def __init__(self, *args: Any, barrier: asyncio.Barrier, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._barrier: asyncio.Barrier | None = barrier

    async def _stored(self, owner: str, document_id: str) -> tuple[Document, str | None]:
        stored = await super()._stored(owner, document_id)
        if self._barrier is not None:
            barrier, self._barrier = self._barrier, None
            await barrier.wait()
        return stored


async def test_a_transaction_refused_by_a_version_conflict_writes_no_event(moto_server: MotoServer) -> None:
    """Two processes update version 1 at once: the one whose condition fails re-reads, finds version 2
    and refuses, as an If-Match on version 1 would. Only the winner's event exists."""
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        document = make_document()
        await repository.add(document)
        outbox = repository.outbox()
        await drained(outbox)
        barrier = asyncio.Barrier(2)
        writers = [_ReadingTogether(client, table, barrier=barrier) for _ in range(2)]

        def of_version_1(filename: str) -> Any:
            def change(current: Document) -> Document:
                if current.version != 1:
                    raise PreconditionFailed
                return renamed(filename)(current)

            return change

        outcomes = await asyncio.gather(
            *(
                writer.update(OWNER, document.id, of_version_1(f"{n}.pdf"))
                for n, writer in enumerate(writers)
            ),
            return_exceptions=True,
        )
        (winner,) = [outcome for outcome in outcomes if isinstance(outcome, Document)]
        assert sum(isinstance(outcome, PreconditionFailed) for outcome in outcomes) == 1
        (event,) = await drained(outbox)
        assert (event.type, event.sequence, event.document) == (EventType.UPDATED, 2, winner)


def _event_id_at(hours_ahead: float) -> str:
    """An event id minted by a writer whose clock runs ``hours_ahead`` of ours."""
    return "evt_" + uuid.UUID(first_id_at(utc_now() + timedelta(hours=hours_ahead))).hex


async def test_a_documents_events_stay_in_commit_order_when_writer_clocks_disagree(
    moto_server: MotoServer,
) -> None:
    """The last change came from a writer an hour ahead: the next event of the document still sorts
    after it, so the relay hands them out in commit order."""
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        document = make_document()
        await repository.add(document)
        outbox = repository.outbox()
        ahead = _event_id_at(hours_ahead=1)
        key = {"pk": {"S": f"O#{OWNER}#DOC#{document.id}"}, "sk": {"S": "DOC"}}
        await client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET last_event = :ahead",
            ExpressionAttributeValues={":ahead": {"S": ahead}},
        )
        await repository.update(OWNER, document.id, renamed("b.pdf"))
        await repository.record_processing(OWNER, document.id, document.sha256, Processing())
        await repository.delete(OWNER, document.id)
        events = await drained(outbox)
        assert kinds(events) == [
            (EventType.CREATED, document.id, 1),
            (EventType.UPDATED, document.id, 2),
            (EventType.PROCESSED, document.id, 3),
            (EventType.DELETED, document.id, 4),
        ]
        assert ahead < events[1].id < events[2].id < events[3].id


async def test_a_document_item_from_before_processing_and_the_outbox_reads_pending_and_changes(
    moto_server: MotoServer,
) -> None:
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        document = make_document()
        await repository.add(document)
        outbox = repository.outbox()
        await drained(outbox)
        fields = msgspec.json.decode(msgspec.json.encode(document))
        del fields["processing"]
        await client.put_item(
            TableName=table,
            Item={
                "pk": {"S": f"O#{OWNER}#DOC#{document.id}"},
                "sk": {"S": "DOC"},
                "version": {"N": "1"},
                "document": {"S": msgspec.json.encode(fields).decode()},
            },
        )
        assert await repository.get(OWNER, document.id) == document
        updated = await repository.update(OWNER, document.id, renamed("b.pdf"))
        assert updated.processing == Processing()
        assert kinds(await drained(outbox)) == [(EventType.UPDATED, document.id, 2)]


async def test_one_relay_holds_every_shard_and_another_waits(moto_server: MotoServer) -> None:
    documents = 2 * OUTBOX_SHARDS
    settings = fresh_settings(moto_server.endpoint_url)
    async with aioboto3.Session().client("dynamodb", endpoint_url=moto_server.endpoint_url) as client:
        first_process = DynamoDbRepository(client, settings.table)
        await first_process.create_table_if_missing()
        second_process = DynamoDbRepository(client, settings.table)
        added = [make_document(f"{n}.pdf") for n in range(documents)]
        for document in added:
            await first_process.add(document)
        first, second = first_process.outbox(), second_process.outbox()
        assert {event.document_id for event in await first.pending(DRAIN_LIMIT)} == {d.id for d in added}
        assert await second.pending(DRAIN_LIMIT) == []
        await first.release()
        assert len(await second.pending(DRAIN_LIMIT)) == documents
