"""What the DynamoDB adapter must do beyond the repository contract, checked against a real moto server."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, cast

import aioboto3
import pytest
from types_aiobotocore_dynamodb.client import DynamoDBClient
from types_aiobotocore_dynamodb.type_defs import TransactWriteItemTypeDef

from docpipe.adapters import dynamodb
from docpipe.adapters.dynamodb import DynamoDbRepository, open_repository
from docpipe.adapters.memory import MemoryBlobStore
from docpipe.config import GIB, DynamoDbSettings
from docpipe.domain.errors import (
    ConcurrentUpdate,
    DocumentNotFound,
    PreconditionFailed,
    StoreMissing,
    StoreUnavailable,
)
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import Document, ListQuery
from docpipe.domain.service import DocumentService
from tests.contract.support import errors_naming, until_it_passes, until_logged
from tests.contract.test_repository_contract import OWNER, add_all, list_ids, make_document, renamed
from tests.moto_server import MotoServer, free_port, running_moto_server

opened_repository = contextlib.asynccontextmanager(open_repository)


def fresh_settings(endpoint_url: str) -> DynamoDbSettings:
    return DynamoDbSettings(table=f"docpipe-test-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint_url)


@contextlib.asynccontextmanager
async def repository_and_client(
    endpoint_url: str,
) -> AsyncIterator[tuple[DynamoDbRepository, DynamoDBClient, str]]:
    """A repository on a new table, and a plain client to look at what it wrote."""
    settings = fresh_settings(endpoint_url)
    session = aioboto3.Session()
    async with (
        opened_repository(session, settings) as repository,
        session.client("dynamodb", endpoint_url=endpoint_url) as client,
    ):
        yield repository, client, settings.table


async def stored_keys(client: DynamoDBClient, table: str) -> set[tuple[str, str]]:
    """Every (pk, sk) in the table but the outbox's events (``test_outbox_dynamodb`` checks those): a
    Scan, which only tests may use."""
    response = await client.scan(TableName=table, ProjectionExpression="pk, sk")
    keys = {(item["pk"]["S"], item["sk"]["S"]) for item in response["Items"]}
    return {(pk, sk) for pk, sk in keys if not pk.startswith("OUTBOX#")}


async def test_the_table_is_created_at_start_up(moto_server: MotoServer) -> None:
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        description = (await client.describe_table(TableName=table))["Table"]
        assert description["TableStatus"] == "ACTIVE"
        assert description["KeySchema"] == [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]
        assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        ttl = (await client.describe_time_to_live(TableName=table))["TimeToLiveDescription"]
        assert (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")) == ("ENABLED", "expires_at")
        assert description.get("GlobalSecondaryIndexes", []) == []  # listing entries live in the table itself
        await repository.check()


async def test_an_existing_table_is_reused(moto_server: MotoServer) -> None:
    settings = fresh_settings(moto_server.endpoint_url)
    document = make_document()
    async with opened_repository(aioboto3.Session(), settings) as repository:
        await repository.add(document)
    async with opened_repository(aioboto3.Session(), settings) as repository:
        assert await repository.get(OWNER, document.id) == document


async def test_concurrent_start_ups_share_the_table_one_of_them_creates(moto_server: MotoServer) -> None:
    settings = fresh_settings(moto_server.endpoint_url)
    async with contextlib.AsyncExitStack() as stack:
        first, second = await asyncio.gather(
            *(stack.enter_async_context(opened_repository(aioboto3.Session(), settings)) for _ in range(2))
        )
        document = make_document()
        await first.add(document)
        assert await second.get(OWNER, document.id) == document


async def test_listings_query_about_one_page_and_never_scan(moto_server: MotoServer) -> None:
    """Each single-filter listing is one Query reading ``limit + 1`` entries, whatever the table holds."""
    calls: list[str] = []
    scanned: list[int] = []

    def record_call(model: Any, **_: Any) -> None:
        calls.append(model.name)

    def record_query(parsed: dict[str, Any], **_: Any) -> None:
        scanned.append(parsed["ScannedCount"])

    settings = fresh_settings(moto_server.endpoint_url)
    async with aioboto3.Session().client("dynamodb", endpoint_url=moto_server.endpoint_url) as client:
        repository = DynamoDbRepository(client, settings.table)
        await repository.create_table_if_missing()
        await add_all(
            repository,
            [
                make_document(f"invoice-{n}.pdf", tags=("finance", f"n{n}"), content_type="application/pdf")
                for n in range(20)
            ],
        )
        client.meta.events.register("before-call.dynamodb", record_call)
        client.meta.events.register("after-call.dynamodb.Query", record_query)
        for query in (
            ListQuery(limit=2),
            ListQuery(limit=2, filename="invoice-3.pdf"),
            ListQuery(limit=2, prefix="invoice-1"),
            ListQuery(limit=2, tag="finance"),
            ListQuery(limit=2, content_type="application/pdf"),
        ):
            calls.clear()
            scanned.clear()
            page = await repository.list(OWNER, query)
            assert calls == ["Query", "BatchGetItem"], query
            assert scanned[0] <= 3, query
            assert len(page.documents) <= 2


async def test_a_rare_filter_combination_costs_a_bounded_number_of_queries_per_page(
    moto_server: MotoServer,
) -> None:
    """Combined filters read ever larger slices, so a page that finds little costs a few Queries, not
    one per ``limit + 1`` entries (it was 50 Queries for 100 documents)."""
    queries: list[int] = []

    def record_query(parsed: dict[str, Any], **_: Any) -> None:
        queries.append(parsed["ScannedCount"])

    settings = fresh_settings(moto_server.endpoint_url)
    async with aioboto3.Session().client("dynamodb", endpoint_url=moto_server.endpoint_url) as client:
        repository = DynamoDbRepository(client, settings.table)
        await repository.create_table_if_missing()
        oldest, *_ = await add_all(
            repository,
            [make_document("rare.pdf", tags=("x",))]
            + [make_document(f"inv-{n}.pdf", tags=("x",)) for n in range(1, 100)],
        )
        client.meta.events.register("after-call.dynamodb.Query", record_query)
        service = DocumentService(MemoryBlobStore(), repository, max_upload_bytes=GIB)
        listing = await service.list(OWNER, limit=1, tag="x", prefix="rare")
        assert [document.id for document in listing.documents] == [oldest.id]
        assert listing.next_cursor is None
        assert len(queries) <= 6
        assert sum(queries) <= 100


async def test_a_document_deleted_before_the_batch_get_shortens_the_page_but_never_ends_the_listing(
    moto_server: MotoServer,
) -> None:
    """The page's documents are read after its entries: one deleted in between leaves a short page,
    whose cursor still leads to the documents that remain."""
    settings = fresh_settings(moto_server.endpoint_url)
    async with aioboto3.Session().client("dynamodb", endpoint_url=moto_server.endpoint_url) as client:
        repository = DynamoDbRepository(client, settings.table)
        await repository.create_table_if_missing()
        older, newer = await add_all(repository, [make_document("a.txt"), make_document("b.txt")])
        deletions = [newer.id]

        async def delete_before_the_batch_get(**_: Any) -> None:
            while deletions:
                await repository.delete(OWNER, deletions.pop())

        # aiobotocore awaits a handler's coroutine before it sends the call.
        client.meta.events.register(
            "before-call.dynamodb.BatchGetItem", cast(Any, delete_before_the_batch_get)
        )
        service = DocumentService(MemoryBlobStore(), repository, max_upload_bytes=GIB)
        listed: list[str] = []
        cursor: str | None = None
        for _ in range(5):
            listing = await service.list(OWNER, limit=1, cursor=cursor)
            listed.extend(document.id for document in listing.documents)
            if (cursor := listing.next_cursor) is None:
                break
        assert not deletions
        assert listed == [older.id]


async def test_a_prefix_longer_than_its_entries_still_matches_exactly(moto_server: MotoServer) -> None:
    async with repository_and_client(moto_server.endpoint_url) as (repository, _, _):
        wanted, _, other = await add_all(
            repository,
            [
                make_document("2024-03-15 a.pdf"),
                make_document("2024-03-16 b.pdf"),
                make_document("2024-03-15 c.pdf"),
            ],
        )
        assert await list_ids(repository, ListQuery(prefix="2024-03-15")) == [other.id, wanted.id]
        assert await list_ids(repository, ListQuery(prefix="2024-03-15 c")) == [other.id]


async def test_a_page_larger_than_one_batch_get(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BatchGetItem takes 100 keys; a smaller batch shows the same chunking without adding 100 documents."""
    monkeypatch.setattr(dynamodb, "_BATCH_GET_MAX", 3)
    async with repository_and_client(moto_server.endpoint_url) as (repository, _, _):
        documents = await add_all(repository, [make_document(f"{n}.txt") for n in range(9)])
        page = await repository.list(OWNER, ListQuery(limit=8))
        assert [document.id for document in page.documents] == [d.id for d in reversed(documents)][:8]
        assert page.resume_after == documents[1].id


@pytest.mark.parametrize(
    ("owner", "prefix", "registry"),
    [(DEFAULT_OWNER, "", set()), (OWNER, f"O#{OWNER}#", {("OWNERS", OWNER)})],
)
async def test_replace_and_delete_leave_no_stale_entries(
    moto_server: MotoServer, owner: str, prefix: str, registry: set[tuple[str, str]]
) -> None:
    """Owner ``default``'s items are laid out as before owners existed; every other owner's partitions
    carry its prefix, and the owner stays registered."""
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        (document,) = await add_all(repository, [make_document("ab.pdf", owner=owner, tags=("x", "y"))])
        await repository.update(owner, document.id, renamed("c", tags=("y", "z")))
        assert await stored_keys(client, table) == {
            (f"{prefix}DOC#{document.id}", "DOC"),
            *(
                (prefix + partition, document.id)
                for partition in ("ALL", "FILENAME#c", "TYPE#application/pdf", "TAG#y", "TAG#z", "PREFIX#c")
            ),
            *registry,
        }
        await repository.delete(owner, document.id)
        assert await stored_keys(client, table) == registry


async def test_of_concurrent_updates_of_one_version_exactly_one_wins(moto_server: MotoServer) -> None:
    """Each loser re-reads, finds version 2 and refuses, as an If-Match on version 1 would."""
    async with repository_and_client(moto_server.endpoint_url) as (repository, _, _):
        (document,) = await add_all(repository, [make_document()])

        def of_version_1(change: Callable[[Document], Document]) -> Callable[[Document], Document]:
            def guarded(current: Document) -> Document:
                if current.version != 1:
                    raise PreconditionFailed
                return change(current)

            return guarded

        candidates = [renamed(f"{n}.pdf", tags=(f"t{n}",)) for n in range(5)]
        outcomes = await asyncio.gather(
            *(repository.update(OWNER, document.id, of_version_1(candidate)) for candidate in candidates),
            return_exceptions=True,
        )
        winners = [outcome for outcome in outcomes if isinstance(outcome, Document)]
        assert len(winners) == 1
        assert all(isinstance(outcome, (Document, PreconditionFailed)) for outcome in outcomes)
        (winner,) = winners
        assert await repository.get(OWNER, document.id) == winner
        assert await list_ids(repository, ListQuery(tag=winner.tags[0])) == [document.id]
        assert await list_ids(repository, ListQuery(filename=winner.filename)) == [document.id]
        for n in range(5):
            if f"t{n}" != winner.tags[0]:
                assert await list_ids(repository, ListQuery(tag=f"t{n}")) == []


class _AlwaysOvertaken(DynamoDbRepository):
    """Every write finds that another writer got in first."""

    async def _transact(self, writes: Sequence[TransactWriteItemTypeDef]) -> bool:
        return False


async def test_an_update_always_overtaken_retries_then_gives_up(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dynamodb, "UPDATE_BUDGET_SECONDS", 3)  # room for a retry on a busy machine
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        (document,) = await add_all(repository, [make_document()])
        overtaken = _AlwaysOvertaken(client, table)
        calls = 0

        def change(current: Document) -> Document:
            nonlocal calls
            calls += 1
            return renamed("b")(current)

        with pytest.raises(ConcurrentUpdate):
            await overtaken.update(OWNER, document.id, change)
        assert calls > 1
        assert await repository.get(OWNER, document.id) == document


async def test_the_wait_for_a_turn_counts_in_an_updates_budget(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update queued behind a slow one of the same document gives up when its budget is spent,
    rather than starting a full budget of its own once its turn comes."""
    monkeypatch.setattr(dynamodb, "UPDATE_BUDGET_SECONDS", 0.5)
    async with repository_and_client(moto_server.endpoint_url) as (_, client, table):
        repository = DynamoDbRepository(client, table)
        (document,) = await add_all(repository, [make_document()])
        writing = asyncio.Event()

        async def slow_write(**_: Any) -> None:
            writing.set()
            await asyncio.sleep(2)

        client.meta.events.register("before-call.dynamodb.TransactWriteItems", cast(Any, slow_write))
        first = asyncio.create_task(repository.update(OWNER, document.id, renamed("first")))
        await writing.wait()
        with pytest.raises(ConcurrentUpdate):
            await repository.update(OWNER, document.id, renamed("second"))
        assert (await first).filename == "first"


async def test_concurrent_deletes_remove_once(moto_server: MotoServer) -> None:
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        (document,) = await add_all(repository, [make_document(tags=("t",))])
        outcomes = await asyncio.gather(
            *(repository.delete(OWNER, document.id) for _ in range(3)), return_exceptions=True
        )
        assert sum(outcome is None for outcome in outcomes) == 1
        assert all(outcome is None or isinstance(outcome, DocumentNotFound) for outcome in outcomes)
        assert await stored_keys(client, table) == {("OWNERS", OWNER)}


async def test_start_up_against_an_unreachable_endpoint_fails_fast_with_one_line() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    settings = fresh_settings(endpoint)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        async with opened_repository(aioboto3.Session(), settings):
            pass
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"DynamoDB table {settings.table!r} is unreachable: ")
    assert endpoint in message
    assert caught.value.__suppress_context__


async def test_check_reports_an_endpoint_that_went_away() -> None:
    with running_moto_server() as server:
        async with opened_repository(aioboto3.Session(), fresh_settings(server.endpoint_url)) as repository:
            await repository.check()
            server.stop()
            # Together: each fails only after the client's retries, which take seconds.
            outcomes = await asyncio.gather(
                repository.check(), repository.list(OWNER, ListQuery()), return_exceptions=True
            )
            assert [type(outcome) for outcome in outcomes] == [StoreUnavailable, StoreUnavailable]


async def test_a_table_deleted_at_run_time_is_recreated_once(
    moto_server: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        await client.delete_table(TableName=table)
        outcomes = await asyncio.gather(
            *(repository.add(make_document()) for _ in range(5)), return_exceptions=True
        )
        assert isinstance(outcomes[0], StoreUnavailable)
        assert all(outcome is None or isinstance(outcome, StoreUnavailable) for outcome in outcomes)
        await until_it_passes(repository.check)
        document = make_document()
        await repository.add(document)
        assert await repository.get(OWNER, document.id) == document
        await until_logged(caplog, table)
    recreated = errors_naming(caplog, table)
    assert len(recreated) == 1, recreated
    assert "recreated" in recreated[0]


async def test_without_create_missing_a_missing_table_is_reported_and_never_created(
    moto_server: MotoServer,
) -> None:
    settings = fresh_settings(moto_server.endpoint_url)
    session = aioboto3.Session()
    with pytest.raises(StoreMissing, match=settings.table):
        async with opened_repository(session, settings, create_missing=False):
            pass
    async with (
        opened_repository(session, settings) as creator,
        opened_repository(session, settings, create_missing=False) as repository,
        session.client("dynamodb", endpoint_url=moto_server.endpoint_url) as client,
    ):
        await creator.check()
        await client.delete_table(TableName=settings.table)
        for _ in range(2):
            with pytest.raises(StoreMissing, match=settings.table):
                await repository.add(make_document())
            with pytest.raises(StoreMissing):
                await repository.check()
            await asyncio.sleep(1)
        assert settings.table not in (await client.list_tables())["TableNames"]
