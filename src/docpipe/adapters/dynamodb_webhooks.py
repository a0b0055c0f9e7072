"""The webhook queue in the documents' DynamoDB table (see ``ports.WebhookQueue``)::

    pk                  sk            other attributes
    WEBHOOKS#<shard>    <event id>    event (msgspec JSON), attempts, not_before (epoch seconds)
    WEBHOOK_LEASES      <shard>       holder, lease_until: which dispatcher posts the shard's webhooks

Sharded and leased as the outbox is (``dynamodb_outbox``, same shard of a document): a shard's Query
yields each document's webhooks in commit order, its first (the only one ever tried, so the only one
ever postponed) first. Adding one is a put of its own, after the document's commit: the commit's
transaction carries no webhook item.

``pending`` reads each shard held oldest first, skipping the documents whose first webhook is postponed,
until it has ``limit`` due webhooks or has read ``SCAN_PAGES`` pages: behind that many postponed
webhooks of documents the receiver refuses, a shard's other webhooks wait until those are due.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import msgspec

from docpipe.adapters.aws_errors import AwsFailures
from docpipe.adapters.dynamodb_outbox import ShardLeases, shard_of
from docpipe.domain.events import Event
from docpipe.domain.outbox import Commits
from docpipe.domain.webhooks import Delivery

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef

    Item = dict[str, AttributeValueTypeDef]

SCAN_PAGES = 10
"""Pages (of ``limit`` items) ``pending`` reads from one shard at most."""
_SHARD = "WEBHOOKS#"
_LEASES = "WEBHOOK_LEASES"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


class DynamoDbWebhookQueue:
    """One dispatcher's view of the webhook queue (see ``DynamoDbRepository.webhook_queue``)."""

    def __init__(
        self, client: DynamoDBClient, table: str, failures: AwsFailures, lease_seconds: float
    ) -> None:
        self._client = client
        self._table = table
        self._failures = failures
        self._leases = ShardLeases(client, table, failures, _LEASES, lease_seconds)
        self._additions = Commits()

    async def add(self, event: Event) -> None:
        with (
            self._failures.converted(),
            contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException),
        ):
            await self._client.put_item(
                TableName=self._table,
                Item={**_key(event), "event": {"S": _encoder.encode(event).decode()}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        self._additions.ring()

    async def pending(self, limit: int, now: float) -> list[Delivery]:
        """Each shard's due webhooks (see the module docstring), merged by id: each document's come in
        order, as a prefix of its shard's."""
        shards = await self._leases.held(time.time())
        with self._failures.converted():
            found = await asyncio.gather(*(self._due(shard, limit, now) for shard in shards))
        merged = sorted(
            (delivery for due in found for delivery in due), key=lambda delivery: delivery.event.id
        )
        return merged[:limit]

    async def remove(self, event: Event) -> None:
        with self._failures.converted():
            await self._client.delete_item(TableName=self._table, Key=_key(event))

    async def postpone(self, event: Event, attempts: int, until: float) -> None:
        with (
            self._failures.converted(),
            contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException),
        ):
            await self._client.update_item(
                TableName=self._table,
                Key=_key(event),
                UpdateExpression="SET attempts = :attempts, not_before = :until",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={
                    ":attempts": {"N": str(attempts)},
                    ":until": {"N": f"{until:.6f}"},
                },
            )

    async def renew(self) -> bool:
        return await self._leases.renew(time.time())

    async def release(self) -> None:
        await self._leases.release()

    def next_addition(self) -> asyncio.Event:
        return self._additions.next()

    async def _due(self, shard: int, limit: int, now: float) -> list[Delivery]:
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{_SHARD}{shard}"}},
            "ConsistentRead": True,
            "Limit": limit,
        }
        due: list[Delivery] = []
        postponed: set[tuple[str, str]] = set()
        for _ in range(SCAN_PAGES):
            response = await self._client.query(**request)
            for item in response["Items"]:
                event = _decoder.decode(item["event"]["S"])
                document = (event.owner, event.document_id)
                if document in postponed or float(item.get("not_before", {"N": "0"})["N"]) > now:
                    postponed.add(document)
                    continue
                due.append(Delivery(event=event, attempts=int(item.get("attempts", {"N": "0"})["N"])))
                if len(due) == limit:
                    return due
            last_key = response.get("LastEvaluatedKey")
            if last_key is None:
                break
            request["ExclusiveStartKey"] = last_key
        return due


def _key(event: Event) -> Item:
    return {"pk": {"S": f"{_SHARD}{shard_of(event.owner, event.document_id)}"}, "sk": {"S": event.id}}
