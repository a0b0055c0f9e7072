"""DynamoDB refuses a single-item write to an item that a transaction is writing at that moment
(``TransactionConflictException``, HTTP 400, which botocore does not retry). An upload's key record
is exactly such an item: the upload completes it in its insert transaction while a retry with the
same key claims it. The retry must get a status the API defines (409 while the first is in flight,
or 503), never the 500 an unconverted ``ClientError`` becomes.

The other way round, the claim makes DynamoDB cancel the insert transaction (reason
``TransactionConflict`` on the key record): the first upload must then still succeed, not be
answered 409 with its bytes deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar, cast

import aioboto3
import pytest
from types_aiobotocore_dynamodb.client import DynamoDBClient

from docpipe.adapters.dynamodb import DynamoDbRepository
from docpipe.domain.errors import DocpipeError, IdempotencyKeyInUse
from docpipe.domain.idempotency import CompletedUpload, completed, new_claim
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import utc_now
from tests.contract.test_dynamodb_specifics import fresh_settings
from tests.contract.test_repository_contract import OWNER, make_document
from tests.moto_server import MotoServer

BOUND_SECONDS = 60.0
"""Generous: a conflict that never ends must still get an answer, well within this."""


class _Refused:
    """What botocore needs of an HTTP response to raise the ``ClientError`` parsed with it."""

    status_code = 400
    headers: ClassVar[dict[str, str]] = {}
    content = b""


def _transaction_conflict(**_: Any) -> tuple[_Refused, dict[str, Any]]:
    return _Refused(), {
        "Error": {
            "Code": "TransactionConflictException",
            "Message": "Transaction is ongoing for the item",
        },
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }


class _ConflictOnLastItem:
    """Cancels the next ``times`` TransactWriteItems as DynamoDB does when a single-item write hit the
    transaction's last item (an upload's key record) meanwhile; later ones reach the server."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.refused = 0

    def __call__(self, params: dict[str, Any], **_: Any) -> tuple[_Refused, dict[str, Any]] | None:
        if self.refused >= self.times:
            return None
        self.refused += 1
        items = json.loads(params["body"])["TransactItems"]
        reasons = [{"Code": "None"}] * (len(items) - 1) + [{"Code": "TransactionConflict"}]
        return _Refused(), {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": reasons,
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }


@contextlib.asynccontextmanager
async def repository_on(endpoint_url: str) -> AsyncIterator[tuple[DynamoDbRepository, DynamoDBClient]]:
    settings = fresh_settings(endpoint_url)
    async with aioboto3.Session().client("dynamodb", endpoint_url=endpoint_url) as client:
        repository = DynamoDbRepository(client, settings.table)
        await repository.create_table_if_missing()
        yield repository, client


async def test_claiming_a_key_record_in_a_running_transaction_is_no_500(moto_server: MotoServer) -> None:
    async with repository_on(moto_server.endpoint_url) as (repository, client):
        claim = new_claim(OWNER, "conflicted-key", utc_now())
        client.meta.events.register("before-call.dynamodb.PutItem", cast(Any, _transaction_conflict))
        with pytest.raises(DocpipeError):
            await repository.claim(claim, utc_now())


async def test_a_claim_meeting_a_running_transaction_finds_the_key_in_use(moto_server: MotoServer) -> None:
    async with repository_on(moto_server.endpoint_url) as (repository, client):
        client.meta.events.register("before-call.dynamodb.PutItem", cast(Any, _transaction_conflict))
        with pytest.raises(IdempotencyKeyInUse):
            await repository.claim(new_claim(OWNER, "conflicted-key", utc_now()), utc_now())


async def test_a_release_meeting_a_running_transaction_finds_the_key_in_use(moto_server: MotoServer) -> None:
    async with repository_on(moto_server.endpoint_url) as (repository, client):
        claim = new_claim(OWNER, "conflicted-key", utc_now())
        assert await repository.claim(claim, utc_now()) is None
        client.meta.events.register("before-call.dynamodb.DeleteItem", cast(Any, _transaction_conflict))
        with pytest.raises(IdempotencyKeyInUse):
            await repository.release(claim)


@pytest.mark.parametrize("owner", [DEFAULT_OWNER, OWNER])
async def test_an_insert_cancelled_by_a_claim_of_its_key_is_retried(
    moto_server: MotoServer, owner: str
) -> None:
    """Whoever owns it, the key record is recognised as the item in conflict."""
    async with repository_on(moto_server.endpoint_url) as (repository, client):
        claim = new_claim(owner, "lost-reply-key", utc_now())
        assert await repository.claim(claim, utc_now()) is None
        conflicts = _ConflictOnLastItem(times=2)
        client.meta.events.register("before-call.dynamodb.TransactWriteItems", cast(Any, conflicts))
        document = make_document(owner=owner)
        async with asyncio.timeout(BOUND_SECONDS):
            await repository.add(document, completed(claim, utc_now()))
        assert conflicts.refused == 2
        assert await repository.get(owner, document.id) == document
        retry = new_claim(owner, claim.key, utc_now())
        assert await repository.claim(retry, utc_now()) == CompletedUpload(document.id, document.sha256)


async def test_an_insert_whose_key_record_stays_in_conflict_gives_up(moto_server: MotoServer) -> None:
    async with repository_on(moto_server.endpoint_url) as (repository, client):
        claim = new_claim(OWNER, "hammered-key", utc_now())
        assert await repository.claim(claim, utc_now()) is None
        conflicts = _ConflictOnLastItem(times=10**6)
        client.meta.events.register("before-call.dynamodb.TransactWriteItems", cast(Any, conflicts))
        document = make_document()
        async with asyncio.timeout(BOUND_SECONDS):
            with pytest.raises(DocpipeError):
                await repository.add(document, completed(claim, utc_now()))
        assert conflicts.refused > 1
