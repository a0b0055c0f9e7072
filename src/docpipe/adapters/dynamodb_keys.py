"""API keys in the documents' DynamoDB table, through the document repository's client.

Each key is two items carrying the same attributes, ``key`` (the ApiKey as msgspec JSON, as stored
when it was added) and, once the key was used, ``last_used_at`` (ISO 8601)::

    pk                        sk       found by
    APIKEY#<secret hash>      APIKEY   ``find``: one consistent GetItem
    APIKEYS                   <id>     ``list``: one Query of the partition, oldest first (ids sort by time)

No method scans the table. Adding writes both items in one transaction, on condition that neither
exists. Revoking deletes the ``find`` item first, so the key is refused from that moment, then the
listing item; a revocation cut short between the two leaves a listing entry that a second revocation
removes. ``touch`` updates both items on condition that they exist, so it never brings a revoked key
back. The key's expiry is inside ``key``, not an attribute of its own: the table expires idempotency
records through a TTL on ``expires_at``, which must not delete expired keys behind ``list``'s back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from docpipe.adapters.aws_errors import AwsFailures
from docpipe.domain.errors import DuplicateKey, KeyNotFound, StoreUnavailable
from docpipe.domain.keys import ApiKey

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef

    Item = dict[str, AttributeValueTypeDef]

_FOUND_BY_SECRET = "APIKEY#"  # noqa: S105 (a partition key prefix)
_FOUND_BY_SECRET_SORT = "APIKEY"  # noqa: S105
_LISTING = "APIKEYS"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ApiKey)


class DynamoDbKeyRepository:
    """Keys in the table ``table``, laid out as the module docstring shows; ``failures`` is the document
    repository's conversion of DynamoDB's failures (and recreation of a missing table)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        failures: AwsFailures,
        check: Callable[[], Awaitable[None]],
    ) -> None:
        self._client = client
        self._table = table
        self._failures = failures
        self._check = check

    async def add(self, key: ApiKey) -> None:
        attributes: Item = {"key": {"S": _encoder.encode(key).decode()}}
        with self._converted():
            try:
                await self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": {**item_key, **attributes},
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        }
                        for item_key in (_found_by_secret(key.secret_hash), _listed(key.id))
                    ]
                )
            except self._client.exceptions.TransactionCanceledException as error:
                reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    raise DuplicateKey(key.id) from None
                raise StoreUnavailable(
                    self._failures.role, f"{self._failures.store} cancelled adding a key: {reasons}"
                ) from None

    async def find(self, secret_hash: str) -> ApiKey | None:
        with self._converted():
            response = await self._client.get_item(
                TableName=self._table, Key=_found_by_secret(secret_hash), ConsistentRead=True
            )
        item = response.get("Item")
        return None if item is None else _decoded(item)

    async def list(self) -> list[ApiKey]:
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :listing",
            "ExpressionAttributeValues": {":listing": {"S": _LISTING}},
            "ConsistentRead": True,
        }
        keys: list[ApiKey] = []
        with self._converted():
            while True:
                response = await self._client.query(**request)
                keys.extend(_decoded(item) for item in response["Items"])
                last_key = response.get("LastEvaluatedKey")
                if last_key is None:
                    return keys
                request["ExclusiveStartKey"] = last_key

    async def revoke(self, key_id: str) -> None:
        with self._converted():
            response = await self._client.get_item(
                TableName=self._table, Key=_listed(key_id), ConsistentRead=True
            )
            item = response.get("Item")
            if item is None:
                raise KeyNotFound(key_id)
            secret_hash = _decoded(item).secret_hash
            await self._client.delete_item(TableName=self._table, Key=_found_by_secret(secret_hash))
            await self._client.delete_item(TableName=self._table, Key=_listed(key_id))

    async def touch(self, key_id: str, when: datetime) -> None:
        """The listing item first: its update returns the key, whose secret hash names the other item.
        A failed condition means the key was revoked, or is being revoked: it is left alone."""
        used: Item = {":when": {"S": when.isoformat()}}
        with self._converted(), contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            response = await self._client.update_item(
                TableName=self._table,
                Key=_listed(key_id),
                UpdateExpression="SET last_used_at = :when",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=used,
                ReturnValues="ALL_NEW",
            )
            secret_hash = _decoded(response["Attributes"]).secret_hash
            await self._client.update_item(
                TableName=self._table,
                Key=_found_by_secret(secret_hash),
                UpdateExpression="SET last_used_at = :when",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=used,
            )

    async def check(self) -> None:
        await self._check()

    def _converted(self) -> contextlib.AbstractContextManager[None]:
        return self._failures.converted()


def _found_by_secret(secret_hash: str) -> Item:
    return {"pk": {"S": _FOUND_BY_SECRET + secret_hash}, "sk": {"S": _FOUND_BY_SECRET_SORT}}


def _listed(key_id: str) -> Item:
    return {"pk": {"S": _LISTING}, "sk": {"S": key_id}}


def _decoded(item: Item) -> ApiKey:
    key = _decoder.decode(item["key"]["S"])
    used = item.get("last_used_at")
    if used is None:
        return key
    return msgspec.structs.replace(key, last_used_at=datetime.fromisoformat(used["S"]))
