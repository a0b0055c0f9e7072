"""What the DynamoDB adapter does with owners beyond the repository contract, against a real moto server:
a table written before owners existed is owner ``default``'s as it is, every other owner's items carry
its prefix, and ``owners`` finds every owner through its registry, never a Scan."""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aioboto3
import msgspec
import pytest
from types_aiobotocore_dynamodb.client import DynamoDBClient

from docpipe.adapters import dynamodb
from docpipe.adapters.dynamodb import DynamoDbRepository
from docpipe.domain.errors import DocumentNotFound, StoreUnavailable
from docpipe.domain.idempotency import CompletedUpload, completed, new_claim
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import Document, ListQuery, new_document_id, utc_now
from tests.contract.support import until_it_passes, until_logged
from tests.contract.test_dynamodb_specifics import fresh_settings, repository_and_client, stored_keys
from tests.contract.test_repository_contract import OWNER, add_all, make_document, renamed
from tests.moto_server import MotoServer

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]

OTHER_OWNER = "tenant-b"
CONTENT = b"stored before owners existed\n"
_FILTERS = (
    ListQuery(),
    ListQuery(tag="old"),
    ListQuery(prefix="ol"),
    ListQuery(filename="old.txt"),
    ListQuery(content_type="text/plain"),
)


def old_document() -> Document:
    now = utc_now()
    document_id = new_document_id()
    return Document(
        id=document_id,
        owner=DEFAULT_OWNER,
        blob_key=document_id,
        filename="old.txt",
        content_type="text/plain",
        size=len(CONTENT),
        sha256=hashlib.sha256(CONTENT).hexdigest(),
        tags=("old",),
        created_at=now,
        updated_at=now,
    )


def items_before_owners(document: Document, idempotency_key: str) -> list[Item]:
    """The items docpipe wrote for ``document`` and the completed record of the upload's Idempotency-Key
    before owners existed, verbatim: the document JSON has no ``owner`` (nor the younger ``processing``)."""
    fields = msgspec.json.decode(msgspec.json.encode(document))
    del fields["owner"]
    del fields["processing"]
    entry: Item = {
        "sk": {"S": document.id},
        "filename": {"S": "old.txt"},
        "content_type": {"S": "text/plain"},
        "tags": {"L": [{"S": "old"}]},
    }
    partitions = ["ALL", "FILENAME#old.txt", "TYPE#text/plain", "TAG#old", *prefixes_of("old.txt")]
    entries: list[Item] = [{"pk": {"S": partition}, **entry} for partition in partitions]
    now = utc_now()
    return [
        {
            "pk": {"S": f"DOC#{document.id}"},
            "sk": {"S": "DOC"},
            "version": {"N": "1"},
            "document": {"S": msgspec.json.encode(fields).decode()},
        },
        *entries,
        {
            "pk": {"S": f"KEY#{idempotency_key}"},
            "sk": {"S": "KEY"},
            "token": {"S": "0f" * 16},
            "lease_until": {"N": f"{now.timestamp():.6f}"},
            "expires_at": {"N": str(math.ceil((now + timedelta(hours=1)).timestamp()))},
            "document_id": {"S": document.id},
            "sha256": {"S": document.sha256},
        },
    ]


def prefixes_of(filename: str) -> list[str]:
    """The prefix partitions of a filename of at most 8 characters (``PREFIX_ENTRY_LENGTH``)."""
    return [f"PREFIX#{filename[:n]}" for n in range(1, len(filename) + 1)]


async def write_before_owners(client: DynamoDBClient, table: str, document: Document, key: str) -> None:
    for item in items_before_owners(document, key):
        await client.put_item(TableName=table, Item=item)


async def owners_of(repository: DynamoDbRepository) -> list[str]:
    return [owner async for owner in repository.owners()]


async def listed(repository: DynamoDbRepository, owner: str, query: ListQuery) -> list[str]:
    return [document.id for document in (await repository.list(owner, query)).documents]


@contextlib.asynccontextmanager
async def repository_on_its_client(
    endpoint_url: str,
) -> AsyncIterator[tuple[DynamoDbRepository, DynamoDBClient, str]]:
    """A repository on a new table, and the client it calls through, to watch its calls."""
    settings = fresh_settings(endpoint_url)
    async with aioboto3.Session().client("dynamodb", endpoint_url=endpoint_url) as client:
        repository = DynamoDbRepository(client, settings.table)
        await repository.create_table_if_missing()
        yield repository, client, settings.table


async def test_a_table_written_before_owners_is_owner_defaults_as_it_is(moto_server: MotoServer) -> None:
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        document = old_document()
        await write_before_owners(client, table, document, "retry-key")
        assert await owners_of(repository) == [DEFAULT_OWNER]
        assert await repository.get(DEFAULT_OWNER, document.id) == document
        for query in _FILTERS:
            assert await listed(repository, DEFAULT_OWNER, query) == [document.id], query
        retry = new_claim(DEFAULT_OWNER, "retry-key", utc_now())
        assert await repository.claim(retry, utc_now()) == CompletedUpload(document.id, document.sha256)

        updated = await repository.update(DEFAULT_OWNER, document.id, renamed("new.txt", tags=("new",)))
        assert (updated.owner, updated.version) == (DEFAULT_OWNER, 2)
        assert await repository.get(DEFAULT_OWNER, document.id) == updated
        assert await listed(repository, DEFAULT_OWNER, ListQuery(tag="new")) == [document.id]
        assert await listed(repository, DEFAULT_OWNER, ListQuery(tag="old")) == []
        assert await stored_keys(client, table) == {
            (f"DOC#{document.id}", "DOC"),
            ("KEY#retry-key", "KEY"),
            *(
                (partition, document.id)
                for partition in (
                    "ALL",
                    "FILENAME#new.txt",
                    "TYPE#text/plain",
                    "TAG#new",
                    *prefixes_of("new.txt"),
                )
            ),
        }

        await repository.delete(DEFAULT_OWNER, document.id)
        with pytest.raises(DocumentNotFound):
            await repository.get(DEFAULT_OWNER, document.id)
        assert await stored_keys(client, table) == {("KEY#retry-key", "KEY")}
        assert await owners_of(repository) == []


async def test_another_owner_beside_a_table_from_before_owners_has_prefixed_keys(
    moto_server: MotoServer,
) -> None:
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        old = old_document()
        await write_before_owners(client, table, old, "retry-key")
        before = await stored_keys(client, table)
        claim = new_claim(OWNER, "retry-key", utc_now())
        assert await repository.claim(claim, utc_now()) is None  # the same key, another owner's record
        new = make_document("old.txt", tags=("old",), content_type="text/plain")
        await repository.add(new, completed(claim, utc_now()))

        added = await stored_keys(client, table) - before
        assert ("OWNERS", OWNER) in added
        assert all(pk.startswith(f"O#{OWNER}#") for pk, _ in added - {("OWNERS", OWNER)}), added
        assert (f"O#{OWNER}#DOC#{new.id}", "DOC") in added
        assert (f"O#{OWNER}#KEY#retry-key", "KEY") in added
        assert sorted(await owners_of(repository)) == sorted([DEFAULT_OWNER, OWNER])

        for query in _FILTERS:
            assert await listed(repository, DEFAULT_OWNER, query) == [old.id], query
            assert await listed(repository, OWNER, query) == [new.id], query
        for owner, document in ((OWNER, old), (DEFAULT_OWNER, new)):
            with pytest.raises(DocumentNotFound):
                await repository.get(owner, document.id)
            with pytest.raises(DocumentNotFound):
                await repository.update(owner, document.id, renamed("taken.txt"))
            with pytest.raises(DocumentNotFound):
                await repository.delete(owner, document.id)
        assert await stored_keys(client, table) == before | added
        retry = new_claim(OWNER, "retry-key", utc_now())
        assert await repository.claim(retry, utc_now()) == CompletedUpload(new.id, new.sha256)


async def test_each_owner_is_registered_once_per_process_outside_the_transactions(
    moto_server: MotoServer,
) -> None:
    put_items: list[tuple[str, str]] = []
    transacted: list[str] = []

    def record_put(params: dict[str, Any], **_: Any) -> None:
        put_items.append((params["Item"]["pk"]["S"], params["Item"]["sk"]["S"]))

    def record_transaction(params: dict[str, Any], **_: Any) -> None:
        for write in params["TransactItems"]:
            (action,) = write.values()
            transacted.append(action.get("Item", action.get("Key"))["pk"]["S"])

    async with repository_on_its_client(moto_server.endpoint_url) as (repository, client, table):
        client.meta.events.register("before-parameter-build.dynamodb.PutItem", record_put)
        client.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", record_transaction)
        await add_all(
            repository,
            [make_document(owner=owner) for owner in (OWNER, OTHER_OWNER, OWNER, DEFAULT_OWNER, OTHER_OWNER)],
        )
        assert put_items == [("OWNERS", OWNER), ("OWNERS", OTHER_OWNER)]
        assert "OWNERS" not in transacted

        async with aioboto3.Session().client("dynamodb", endpoint_url=moto_server.endpoint_url) as other:
            another_process = DynamoDbRepository(other, table)
            other.meta.events.register("before-parameter-build.dynamodb.PutItem", record_put)
            put_items.clear()
            await add_all(another_process, [make_document(owner=OWNER) for _ in range(2)])
            assert put_items == [("OWNERS", OWNER)]

        calls: list[str] = []
        client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
        assert sorted(await owners_of(repository)) == sorted([DEFAULT_OWNER, OWNER, OTHER_OWNER])
        assert set(calls) == {"Query"}


async def test_owners_leaves_out_registered_owners_without_documents_and_reads_the_registry_in_pages(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dynamodb, "_OWNERS_PAGE", 2)
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        documents = await add_all(repository, [make_document(owner=f"owner-{n}") for n in range(5)])
        await repository.delete("owner-3", documents[3].id)
        assert ("OWNERS", "owner-3") in await stored_keys(client, table)
        assert sorted(await owners_of(repository)) == ["owner-0", "owner-1", "owner-2", "owner-4"]


async def test_owners_registered_before_the_table_was_lost_are_registered_again(
    moto_server: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The table a process registered an owner in is deleted and recreated empty: that owner's next
    documents must be registered in the new table, or fsck would never check them."""
    async with repository_and_client(moto_server.endpoint_url) as (repository, client, table):
        await add_all(repository, [make_document()])
        await client.delete_table(TableName=table)
        with pytest.raises(StoreUnavailable):
            await repository.get(OWNER, new_document_id())
        await until_it_passes(repository.check)
        await until_logged(caplog, table)
        await add_all(repository, [make_document()])
        assert await owners_of(repository) == [OWNER]
