"""The outbox in the documents' DynamoDB table, through the document repository's client::

    pk                  sk            other attributes
    OUTBOX#<shard>      <event id>    event (the Event as msgspec JSON): written by a document change
    OUTBOX_LEASES       <shard>       holder, lease_until (epoch seconds): which relay delivers the shard

Each document change puts its event item in the TransactWriteItems that makes the change, in the shard
of its document (a hash of owner and id, so one document's events share a partition). Event ids grow
with each change of a document (the document item keeps its last event's id, ``last_event``), so a
shard's Query yields each document's events in commit order, and its events roughly oldest first.

A relay finds pending events with one Query per shard it holds, never a Scan; sharding spreads the
writes of busy stores over ``OUTBOX_SHARDS`` partitions. Each shard is leased to one relay at a time
(a conditional put on its lease item), renewed once half of the lease has run: relays sharing the
table (replicas) deliver different shards, or wait; one that dies is taken over when its leases lapse.
``OUTBOX_SHARDS`` can change only with the outbox empty: a document's events must stay in one shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import msgspec

from docpipe.adapters.aws_errors import AwsFailures
from docpipe.domain.events import Event
from docpipe.domain.outbox import Commits, needs_renewal

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import (
        AttributeValueTypeDef,
        TransactWriteItemTypeDef,
        WriteRequestTypeDef,
    )

    Item = dict[str, AttributeValueTypeDef]

OUTBOX_SHARDS = 4
_SHARD = "OUTBOX#"
_LEASES = "OUTBOX_LEASES"
_BATCH_WRITE_MAX = 25
_UNPROCESSED_PAUSE = 0.05

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def event_put(table: str, event: Event) -> TransactWriteItemTypeDef:
    """The write of ``event``'s item, for the transaction of the change it describes."""
    return {
        "Put": {
            "TableName": table,
            "Item": {**_event_key(event), "event": {"S": _encoder.encode(event).decode()}},
        }
    }


class DynamoDbOutbox:
    """One relay's view of the outbox (see ``DynamoDbRepository.outbox``)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        failures: AwsFailures,
        commits: Commits,
        lease_seconds: float,
    ) -> None:
        self._client = client
        self._table = table
        self._failures = failures
        self._commits = commits
        self._leases = ShardLeases(client, table, failures, _LEASES, lease_seconds)

    async def pending(self, limit: int) -> list[Event]:
        """The oldest ``limit`` events of each shard held, merged by id: each document's events are a
        prefix of its shard's, so the merge keeps every document's events in order."""
        shards = await self._leases.held(time.time())
        with self._failures.converted():
            found = await asyncio.gather(*(self._oldest(shard, limit) for shard in shards))
        return sorted((event for events in found for event in events), key=lambda event: event.id)[:limit]

    async def acknowledge(self, events: Sequence[Event]) -> None:
        requests: list[WriteRequestTypeDef] = [
            {"DeleteRequest": {"Key": _event_key(event)}} for event in events
        ]
        with self._failures.converted():
            while requests:
                batch, requests = requests[:_BATCH_WRITE_MAX], requests[_BATCH_WRITE_MAX:]
                response = await self._client.batch_write_item(RequestItems={self._table: batch})
                unprocessed = response.get("UnprocessedItems", {}).get(self._table)
                if unprocessed:
                    requests.extend(cast("list[WriteRequestTypeDef]", unprocessed))
                    await asyncio.sleep(_UNPROCESSED_PAUSE)

    async def renew(self) -> bool:
        return await self._leases.renew(time.time())

    async def release(self) -> None:
        await self._leases.release()

    def next_commit(self) -> asyncio.Event:
        return self._commits.next()

    async def _oldest(self, shard: int, limit: int) -> list[Event]:
        response = await self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{_SHARD}{shard}"}},
            ProjectionExpression="event",
            ConsistentRead=True,
            Limit=limit,
        )
        return [_decoder.decode(item["event"]["S"]) for item in response["Items"]]


class ShardLeases:
    """The leases of ``OUTBOX_SHARDS`` shards, as items under the partition key ``partition``: which
    shards this holder has, each until when, as it wrote them (no other holder can take a lease before
    then)."""

    def __init__(
        self, client: DynamoDBClient, table: str, failures: AwsFailures, partition: str, lease_seconds: float
    ) -> None:
        self._client = client
        self._table = table
        self._failures = failures
        self._partition = partition
        self._lease_seconds = lease_seconds
        self._holder = uuid.uuid4().hex
        self._held: dict[int, float] = {}
        """Lease ends by shard."""

    async def held(self, now: float) -> list[int]:
        """The shards this holder has the lease of at ``now``, renewing or taking leases when needed."""
        if len(self._held) < OUTBOX_SHARDS or any(
            needs_renewal(until, now, self._lease_seconds) for until in self._held.values()
        ):
            await self._take_leases(now)
        return [shard for shard, until in self._held.items() if until > now]

    async def renew(self, now: float) -> bool:
        """Whether this holder still has every lease it had (and has one) at ``now``, renewing those that
        need it; a lease another holder took, or this one released, is not taken back."""
        kept = bool(self._held)
        with self._failures.converted():
            for shard, until in list(self._held.items()):
                if not needs_renewal(until, now, self._lease_seconds):
                    continue
                if await self._extend(shard, now):
                    self._held[shard] = now + self._lease_seconds
                else:
                    del self._held[shard]
                    kept = False
        return kept

    async def release(self) -> None:
        held, self._held = self._held, {}
        with self._failures.converted():
            for shard in held:
                with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
                    await self._client.delete_item(
                        TableName=self._table,
                        Key=self._key(shard),
                        ConditionExpression="#holder = :holder",
                        ExpressionAttributeNames={"#holder": "holder"},
                        ExpressionAttributeValues={":holder": {"S": self._holder}},
                    )

    async def _take_leases(self, now: float) -> None:
        """Renew the leases held that need it and take those no running lease holds: one Query of the
        lease items, then one conditional put per lease taken or renewed."""
        with self._failures.converted():
            response = await self._client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": self._partition}},
                ConsistentRead=True,
            )
            leases = {
                int(item["sk"]["S"]): (item["holder"]["S"], float(item["lease_until"]["N"]))
                for item in response["Items"]
            }
            for shard in range(OUTBOX_SHARDS):
                holder, until = leases.get(shard, ("", 0.0))
                if holder == self._holder and not needs_renewal(until, now, self._lease_seconds):
                    self._held[shard] = until
                elif holder not in ("", self._holder) and until > now:
                    self._held.pop(shard, None)
                elif await self._lease(shard, now):
                    self._held[shard] = now + self._lease_seconds
                else:
                    self._held.pop(shard, None)

    async def _lease(self, shard: int, now: float) -> bool:
        """Whether the put of this holder's lease of ``shard`` went through: another may have got in first."""
        try:
            await self._client.put_item(
                TableName=self._table,
                Item={
                    **self._key(shard),
                    "holder": {"S": self._holder},
                    "lease_until": {"N": f"{now + self._lease_seconds:.6f}"},
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_until <= :now OR #holder = :holder",
                ExpressionAttributeNames={"#holder": "holder"},
                ExpressionAttributeValues={":now": {"N": f"{now:.6f}"}, ":holder": {"S": self._holder}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    async def _extend(self, shard: int, now: float) -> bool:
        """Whether this holder's lease of ``shard`` was still its own, and now runs a lease from ``now``."""
        try:
            await self._client.update_item(
                TableName=self._table,
                Key=self._key(shard),
                UpdateExpression="SET lease_until = :until",
                ConditionExpression="#holder = :holder",
                ExpressionAttributeNames={"#holder": "holder"},
                ExpressionAttributeValues={
                    ":until": {"N": f"{now + self._lease_seconds:.6f}"},
                    ":holder": {"S": self._holder},
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _key(self, shard: int) -> Item:
        return {"pk": {"S": self._partition}, "sk": {"S": str(shard)}}


def shard_of(owner: str, document_id: str) -> int:
    return zlib.crc32(f"{owner}/{document_id}".encode()) % OUTBOX_SHARDS


def _event_key(event: Event) -> Item:
    return {"pk": {"S": f"{_SHARD}{shard_of(event.owner, event.document_id)}"}, "sk": {"S": event.id}}
