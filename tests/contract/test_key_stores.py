"""What the SQLite and DynamoDB key repositories must do beyond the contract: live beside the documents,
never hold a secret in clear, never scan, and fail the way the document repository fails."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from types_aiobotocore_dynamodb.client import DynamoDBClient

from docpipe.adapters import dynamodb, sqlite
from docpipe.adapters.dynamodb_keys import DynamoDbKeyRepository
from docpipe.adapters.sqlite_keys import SqliteKeyRepository
from docpipe.config import DynamoDbSettings
from docpipe.domain.errors import StoreUnavailable
from docpipe.domain.identity import ALL_SCOPES, DEFAULT_OWNER
from docpipe.domain.key_service import KeyService
from docpipe.domain.keys import hash_secret
from docpipe.domain.model import utc_now
from tests.contract.support import until_it_passes, until_logged
from tests.contract.test_key_repository_contract import make_key
from tests.contract.test_repository_contract import make_document
from tests.moto_server import MotoServer, running_moto_server

opened_sqlite = contextlib.asynccontextmanager(sqlite.open_repository)
opened_dynamodb = contextlib.asynccontextmanager(dynamodb.open_repository)


@contextlib.asynccontextmanager
async def sqlite_keys(folder: Path) -> AsyncIterator[SqliteKeyRepository]:
    async with opened_sqlite(folder) as repository:
        yield repository.api_keys()


def fresh_table(endpoint_url: str) -> DynamoDbSettings:
    return DynamoDbSettings(table=f"docpipe-test-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint_url)


@contextlib.asynccontextmanager
async def dynamodb_keys(
    settings: DynamoDbSettings,
) -> AsyncIterator[tuple[DynamoDbKeyRepository, DynamoDBClient]]:
    """Keys on a new table, and a plain client to look at what they wrote."""
    session = aioboto3.Session()
    async with (
        opened_dynamodb(session, settings) as repository,
        session.client("dynamodb", endpoint_url=settings.endpoint_url) as client,
    ):
        yield repository.api_keys(), client


async def every_item(client: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    """A Scan, which only tests may use."""
    return list((await client.scan(TableName=table))["Items"])


@contextlib.contextmanager
def write_lock_held_elsewhere(path: Path) -> Iterator[None]:
    """Another connection, as another process would, holding the database's write lock."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


async def test_sqlite_keys_live_in_the_documents_file_and_outlast_the_process(tmp_path: Path) -> None:
    key = make_key()
    async with opened_sqlite(tmp_path) as repository:
        document = make_document()
        await repository.add(document)
        await repository.api_keys().add(key)
    assert [path.name for path in tmp_path.glob("*.sqlite3")] == [sqlite.DATABASE_NAME]  # noqa: ASYNC240
    async with opened_sqlite(tmp_path) as repository:
        assert await repository.api_keys().find(key.secret_hash) == key
        assert await repository.get(document.owner, document.id) == document


async def test_a_sqlite_file_from_before_keys_gets_its_table_at_start_up(tmp_path: Path) -> None:
    async with opened_sqlite(tmp_path) as repository:
        document = make_document()
        await repository.add(document)
    with contextlib.closing(sqlite3.connect(tmp_path / sqlite.DATABASE_NAME)) as db:
        db.execute("DROP TABLE api_keys")
        db.commit()
    async with opened_sqlite(tmp_path) as repository:
        key = make_key()
        await repository.api_keys().add(key)
        assert await repository.api_keys().list() == [key]
        assert await repository.get(document.owner, document.id) == document


@pytest.mark.usefixtures("short_sqlite_busy_timeout")
async def test_a_sqlite_write_lock_held_elsewhere_makes_key_writes_unavailable_and_spares_finds(
    tmp_path: Path,
) -> None:
    async with sqlite_keys(tmp_path) as keys:
        key = make_key()
        await keys.add(key)
        with write_lock_held_elsewhere(tmp_path / sqlite.DATABASE_NAME):
            with pytest.raises(StoreUnavailable, match="locked"):
                await keys.add(make_key())
            with pytest.raises(StoreUnavailable, match="locked"):
                await keys.touch(key.id, utc_now())
            with pytest.raises(StoreUnavailable, match="locked"):
                await keys.revoke(key.id)
            assert await keys.find(key.secret_hash) == key
            assert await keys.list() == [key]
        await keys.revoke(key.id)
        assert await keys.list() == []


async def test_sqlite_never_holds_a_secret_in_clear(tmp_path: Path) -> None:
    async with sqlite_keys(tmp_path) as keys:
        issued = await KeyService(keys).create("alice", ["read"])
        assert await keys.find(hash_secret(issued.secret)) == issued.key
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("docpipe.sqlite3*"))  # noqa: ASYNC240
    assert issued.secret.encode() not in stored
    assert issued.key.secret_hash.encode() in stored


async def test_dynamodb_never_holds_a_secret_in_clear(moto_server: MotoServer) -> None:
    settings = fresh_table(moto_server.endpoint_url)
    async with dynamodb_keys(settings) as (keys, client):
        issued = await KeyService(keys).create("alice", ["read"])
        await keys.touch(issued.key.id, utc_now())
        items = repr(await every_item(client, settings.table))
    assert issued.secret not in items
    assert issued.key.secret_hash in items


async def test_dynamodb_keys_share_the_documents_table_and_nothing_scans_it(moto_server: MotoServer) -> None:
    calls: list[str] = []

    def record_call(model: Any, **_: Any) -> None:
        calls.append(model.name)

    settings = fresh_table(moto_server.endpoint_url)
    session = aioboto3.Session()
    async with session.client("dynamodb", endpoint_url=settings.endpoint_url) as client:
        repository = dynamodb.DynamoDbRepository(client, settings.table)
        await repository.create_table_if_missing()
        keys = repository.api_keys()
        for _ in range(3):
            await keys.add(make_key())
        key = make_key()
        await keys.add(key)
        await repository.add(make_document(owner=DEFAULT_OWNER))  # whose document item is DOC#<id>
        client.meta.events.register("before-call.dynamodb", record_call)
        operations = {
            "find": (keys.find(key.secret_hash), ["GetItem"]),
            "list": (keys.list(), ["Query"]),
            "touch": (keys.touch(key.id, utc_now()), ["UpdateItem", "UpdateItem"]),
            "revoke": (keys.revoke(key.id), ["GetItem", "DeleteItem", "DeleteItem"]),
        }
        for name, (operation, expected) in operations.items():
            calls.clear()
            await operation
            assert calls == expected, name
        items = await every_item(client, settings.table)
    assert sum(item["pk"]["S"] == "APIKEYS" for item in items) == 3
    assert sum(item["pk"]["S"].startswith("DOC#") for item in items) == 1


async def test_a_dynamodb_revocation_cut_short_refuses_the_key_and_a_second_one_finishes(
    moto_server: MotoServer,
) -> None:
    settings = fresh_table(moto_server.endpoint_url)
    async with dynamodb_keys(settings) as (keys, client):
        key = make_key()
        await keys.add(key)
        await client.delete_item(
            TableName=settings.table,
            Key={"pk": {"S": f"APIKEY#{key.secret_hash}"}, "sk": {"S": "APIKEY"}},
        )
        assert await keys.find(key.secret_hash) is None
        await keys.touch(key.id, utc_now())
        assert await keys.find(key.secret_hash) is None
        await keys.revoke(key.id)
        assert await keys.list() == []
        assert await every_item(client, settings.table) == []


async def test_dynamodb_key_operations_on_an_endpoint_that_went_away_are_unavailable() -> None:
    with running_moto_server() as server:
        async with dynamodb_keys(fresh_table(server.endpoint_url)) as (keys, _):
            key = make_key()
            await keys.add(key)
            server.stop()
            failing: list[Callable[[], Awaitable[object]]] = [
                lambda: keys.add(make_key()),
                lambda: keys.find(key.secret_hash),
                keys.list,
                lambda: keys.revoke(key.id),
                lambda: keys.touch(key.id, utc_now()),
                keys.check,
            ]
            # Together: each fails only after the client's retries, which take seconds.
            outcomes = await asyncio.gather(*(operation() for operation in failing), return_exceptions=True)
            assert [type(outcome) for outcome in outcomes] == [StoreUnavailable] * len(failing)


async def test_a_dynamodb_table_deleted_at_run_time_is_recreated_for_the_keys_too(
    moto_server: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = fresh_table(moto_server.endpoint_url)
    async with dynamodb_keys(settings) as (keys, client):
        await client.delete_table(TableName=settings.table)
        with pytest.raises(StoreUnavailable):
            await keys.find(hash_secret("anything"))
        await until_it_passes(keys.check)
        key = make_key(scopes=ALL_SCOPES)
        await keys.add(key)
        assert await keys.find(key.secret_hash) == key
        await until_logged(caplog, settings.table)


async def test_a_sqlite_revocation_is_seen_by_another_process_at_its_next_find(tmp_path: Path) -> None:
    """Two repositories on one file stand for two replicas: nothing caches a key between them."""
    async with sqlite_keys(tmp_path) as first, sqlite_keys(tmp_path) as second:
        key = make_key()
        await first.add(key)
        assert await second.find(key.secret_hash) == key
        await first.revoke(key.id)
        assert await second.find(key.secret_hash) is None
        assert await second.list() == []


async def test_a_dynamodb_revocation_is_seen_by_another_replica_at_its_next_find(
    moto_server: MotoServer,
) -> None:
    settings = fresh_table(moto_server.endpoint_url)
    async with dynamodb_keys(settings) as (first, _), dynamodb_keys(settings) as (second, _):
        key = make_key()
        await first.add(key)
        assert await second.find(key.secret_hash) == key
        await first.revoke(key.id)
        assert await second.find(key.secret_hash) is None
        assert await second.list() == []
