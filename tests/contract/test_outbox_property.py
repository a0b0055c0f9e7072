"""Random sequences of creates, updates, deletes and processing results, committed while a relay runs
and its consumer fails now and then: every document's events arrive complete, once each and in commit
order. 1,000 sequences on memory and 1,000 on SQLite; fewer on DynamoDB, whose moto stand-in is slow."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aioboto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docpipe.adapters import dynamodb, sqlite
from docpipe.adapters.memory import MemoryRepository
from docpipe.config import DynamoDbSettings
from docpipe.domain.events import EventType
from docpipe.domain.model import Document, Processing, ProcessingState
from tests.contract.test_outbox_contract import DRAIN_LIMIT, RepositoryWithOutbox
from tests.contract.test_repository_contract import OWNER, make_document, renamed
from tests.moto_server import MotoServer
from tests.relay_support import Recorder, Watched, quick_relay, running

opened_sqlite = contextlib.asynccontextmanager(sqlite.open_repository)
opened_dynamodb = contextlib.asynccontextmanager(dynamodb.open_repository)

CREATE, UPDATE, DELETE, PROCESS, STALE = "create", "update", "delete", "process", "stale"
"""A new document; a rename of one; its deletion; a processing result of its bytes, or of other bytes."""
Operation = tuple[str, int]
"""What to do, and to which of the documents that exist (an index, modulo their number)."""

_operations = st.lists(
    st.tuples(st.sampled_from([CREATE, CREATE, UPDATE, UPDATE, DELETE, PROCESS, STALE]), st.integers(0, 7)),
    min_size=1,
    max_size=24,
)
_failures = st.integers(min_value=0, max_value=6)
"""How many of its first calls the consumer fails."""

Expected = dict[str, list[tuple[EventType, int]]]


async def commit(repository: RepositoryWithOutbox, operations: list[Operation]) -> Expected:
    """Apply ``operations`` and return the events each document's changes must have written."""
    expected: Expected = {}
    live: list[Document] = []
    for kind, index in operations:
        if kind == CREATE:
            document = make_document(f"{len(expected)}.pdf")
            await repository.add(document)
            live.append(document)
            expected[document.id] = [(EventType.CREATED, 1)]
        elif live:
            document = live[index % len(live)]
            if kind == UPDATE:
                changed = await repository.update(OWNER, document.id, renamed(f"{index}.txt"))
                expected[document.id].append((EventType.UPDATED, changed.version))
            elif kind == DELETE:
                await repository.delete(OWNER, document.id)
                expected[document.id].append((EventType.DELETED, document.version + 1))
                live.remove(document)
                continue
            else:
                sha256 = document.sha256 if kind == PROCESS else "cd" * 32
                changed = await repository.record_processing(
                    OWNER, document.id, sha256, Processing(state=ProcessingState.DONE, characters=index)
                )
                if kind == PROCESS:
                    expected[document.id].append((EventType.PROCESSED, changed.version))
            live[live.index(document)] = changed
        await asyncio.sleep(0)  # the relay gets a turn between commits
    return expected


async def check_relayed(repository: RepositoryWithOutbox, operations: list[Operation], failures: int) -> None:
    consumer = Recorder(failures)
    outbox = Watched(repository.outbox())
    async with running(quick_relay(outbox, [consumer])):
        expected = await commit(repository, operations)
        await outbox.until_acknowledged(sum(len(events) for events in expected.values()))
    assert consumer.per_document() == expected
    afterwards = repository.outbox()
    assert await afterwards.pending(DRAIN_LIMIT) == []
    await afterwards.release()  # for the next example's relay


@pytest.fixture
async def sqlite_repository(tmp_path: Path) -> AsyncIterator[RepositoryWithOutbox]:
    async with opened_sqlite(tmp_path) as repository:
        yield repository


@settings(max_examples=1000)
@given(_operations, _failures)
async def test_memory_relays_every_event_in_order(operations: list[Operation], failures: int) -> None:
    await check_relayed(MemoryRepository(), operations, failures)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=_operations, failures=_failures)
async def test_sqlite_relays_every_event_in_order(
    sqlite_repository: RepositoryWithOutbox, operations: list[Operation], failures: int
) -> None:
    """One file for every example, as opening one takes longer than many an example: each example
    leaves the outbox empty and its lease free, or fails."""
    await check_relayed(sqlite_repository, operations, failures)


@pytest.fixture
async def dynamodb_repository(moto_server: MotoServer) -> AsyncIterator[RepositoryWithOutbox]:
    table = DynamoDbSettings(
        table=f"docpipe-test-{uuid.uuid4().hex[:12]}", endpoint_url=moto_server.endpoint_url
    )
    async with opened_dynamodb(aioboto3.Session(), table) as repository:
        yield repository


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=_operations, failures=_failures)
async def test_dynamodb_relays_every_event_in_order(
    dynamodb_repository: RepositoryWithOutbox, operations: list[Operation], failures: int
) -> None:
    """One table for every example, as for SQLite."""
    await check_relayed(dynamodb_repository, operations, failures)
