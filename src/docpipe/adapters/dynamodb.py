"""Document repository on one DynamoDB table, through one long-lived aioboto3 client.

The table has a string partition key ``pk`` and a string sort key ``sk``. Every document partition
belongs to one owner: ``<o>`` below is empty for owner ``default`` (so a table written before owners
existed reads as ``default``'s, with no migration) and ``O#<owner>#`` for every other owner (owners
contain no ``#``, and no unprefixed partition starts with ``O#``)::

    pk                           sk        other attributes
    <o>DOC#<id>                  DOC       version (number), document (the Document as msgspec JSON),
                                           last_event (the id of the document's latest event)
    <o>ALL                       <id>      filename, content_type, tags (list): a listing entry
    <o>FILENAME#<filename>       <id>      the same
    <o>TYPE#<content type>       <id>      the same
    <o>TAG#<tag>                 <id>      the same, one per tag
    <o>PREFIX#<filename[:n]>     <id>      the same, for n = 1 .. PREFIX_ENTRY_LENGTH
    <o>KEY#<idempotency key>     KEY       token, lease_until, expires_at (the TTL attribute), and once
                                           completed document_id and sha256: an upload's Idempotency-Key
    OWNERS                       <owner>   none: an owner other than ``default`` that added documents

and the API keys, ``APIKEY#<secret hash>`` and ``APIKEYS`` items (see ``dynamodb_keys``), and the
outbox, ``OUTBOX#<shard>`` and ``OUTBOX_LEASES`` items (see ``dynamodb_outbox``), and the webhooks not
yet delivered, ``WEBHOOKS#<shard>`` and ``WEBHOOK_LEASES`` items (see ``dynamodb_webhooks``), and resumable
upload sessions, ``<o>UPLOAD#<id>``, ``UPLOAD_BLOB#<blob key>`` and ``UPLOAD_EXPIRY`` items (see
``dynamodb_uploads``). A document item
written before processing existed reads as ``pending``.

The document item answers ``get`` and carries the version that conditional writes compare. Listing
entries make every filter value a partition sorted by document id, so every listing is one Query
newest first (``ScanIndexForward=False``) below ``after_id`` (``sk < :after``) that reads about one
page of entries, however many documents there are; the page's documents then come from BatchGetItem.

The entries live in the table rather than in global secondary indexes because those are only
eventually consistent: a document must be listable, and downloadable by filename, as soon as it is
added. They are written in the same TransactWriteItems as their document item, and carry no
metadata, so they stay small: a document costs a few small extra writes. Each change also puts its
event in the outbox, in the same transaction. With at most 32 tags and ``PREFIX_ENTRY_LENGTH`` = 8, a
document has at most 3 + 32 + 8 = 43 entries, and an update that moves them all puts 43 and deletes 42
(``ALL`` is rewritten, never deleted): with the document item and the event, at most 87 items, under
the 100 a TransactWriteItems allows (``test_outbox_dynamodb`` counts them). Known limits:

- A prefix longer than ``PREFIX_ENTRY_LENGTH`` is queried on its first characters and the rest is a
  filter: a page then reads the entries of every filename sharing those first characters.
- Combined filters query the partition of the most selective-looking filter and filter the rest. A
  page reads at most ``examine_budget(limit)`` entries (``domain.listing``): a rare combination
  gives short pages, even empty ones, each with a cursor that resumes after the entries it read.
- Each owner's ``ALL`` (and a very common content type or first letter) is one partition key, which
  DynamoDB serves at about 1000 writes per second: enough for one owner's uploads, and shardable
  should it not be.

The owners registry lets ``owners`` (for fsck) find every owner without a Scan. An owner is put there
with a plain PutItem before its first add in each process (and again after a store failure, in case
the table was lost), outside the add's transaction, which stays as small as it was; ``owners`` skips
registered owners whose documents are all gone. A table deleted and recreated behind the back of a
process that never saw it fail misses the registrations that process remembers.

Idempotency records expire through the table's TTL on ``expires_at`` (enabled when docpipe creates
the table); as TTL deletes up to days late, every condition on them also compares ``expires_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, cast

import aioboto3
import msgspec
from aiobotocore.config import AioConfig

from docpipe.adapters.aws_errors import AwsFailures, retries
from docpipe.adapters.dynamodb_keys import DynamoDbKeyRepository
from docpipe.adapters.dynamodb_outbox import DynamoDbOutbox, event_put
from docpipe.adapters.dynamodb_uploads import DynamoDbUploadRepository
from docpipe.adapters.dynamodb_webhooks import DynamoDbWebhookQueue
from docpipe.adapters.turns import Turns
from docpipe.config import DynamoDbSettings
from docpipe.domain.errors import (
    ConcurrentUpdate,
    DocpipeError,
    DocumentNotFound,
    DuplicateDocument,
    IdempotencyKeyInUse,
    StoreFailure,
    StoreRole,
)
from docpipe.domain.events import EventType, event_of
from docpipe.domain.idempotency import CompletedUpload, IdempotencyClaim
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.listing import PREFIX_ENTRY_LENGTH, examine_budget, matches, resume_point
from docpipe.domain.model import Document, ListQuery, Page, Processing, with_processing
from docpipe.domain.outbox import LEASE_SECONDS, Commits

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import (
        AttributeValueTypeDef,
        QueryInputTypeDef,
        TransactWriteItemTypeDef,
    )

    Item = dict[str, AttributeValueTypeDef]

UPDATE_BUDGET_SECONDS = 10.0
"""How long an update keeps retrying while other writers of the same document get in first."""
KEY_CONFLICT_BUDGET_SECONDS = 2.0
"""How long an insert keeps retrying while single-item writes of its key record get in its way."""
_BACKOFF_BASE = 0.01
_BACKOFF_CAP = 0.5
CHECK_TIMEOUT = 5.0
TABLE_WAIT_SECONDS = 120
_BATCH_GET_MAX = 100
_SLICE_GROWTH = 4
_UNPROCESSED_PAUSE = 0.05
_OWNERS_PAGE = 1000
"""Registered owners read per Query by ``owners``."""
_REMEMBERED_OWNERS = 10_000
"""Owners a process remembers having registered; past this many it forgets them all and registers anew."""

_OWNER = "O#"
_OWNERS = "OWNERS"
_DOCUMENT = "DOC#"
_ALL = "ALL"
_FILENAME = "FILENAME#"
_CONTENT_TYPE = "TYPE#"
_TAG = "TAG#"
_PREFIX = "PREFIX#"
_IDEMPOTENCY_KEY = "KEY#"
_DOCUMENT_SORT_KEY = "DOC"
_KEY_RECORD_SORT_KEY = "KEY"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Document)


class DynamoDbRepository:
    """Documents in one DynamoDB table, laid out as the module docstring shows."""

    def __init__(self, client: DynamoDBClient, table: str, *, create_missing: bool = True) -> None:
        self._client = client
        self._table = table
        self._update_turns = Turns()
        self._registered_owners: set[str] = set()
        self._failures = _failures(table, self.create_table_if_missing if create_missing else None)
        self._commits = Commits()

    async def add(self, document: Document, claim: IdempotencyClaim | None = None) -> None:
        await self._register(document.owner)
        event = event_of(EventType.CREATED, document)
        put: TransactWriteItemTypeDef = {
            "Put": {
                "TableName": self._table,
                "Item": _document_item(document, event.id),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        writes = [put, *_entry_writes(self._table, None, document), event_put(self._table, event)]
        if claim is not None:
            writes.append(_completion(self._table, claim, document))
        with self._unavailable_on_failure():
            if await self._transact(writes):
                self._commits.ring()
                return
            if claim is not None and await self._find(document.owner, document.id) is None:
                raise IdempotencyKeyInUse
        raise DuplicateDocument(document.id)

    async def get(self, owner: str, document_id: str) -> Document:
        with self._unavailable_on_failure():
            document = await self._find(owner, document_id)
        if document is None:
            raise DocumentNotFound(document_id)
        return document

    async def list(self, owner: str, query: ListQuery) -> Page:
        """Query slices of entries until ``limit + 1`` match, the partition ends or the page has
        examined its budget of entries; then read the page's documents.

        The first slice is ``limit + 1`` entries, enough when every entry matches; each next one
        is ``_SLICE_GROWTH`` times larger, so a rare combination costs a few Queries, not one per
        ``limit + 1`` entries. The page resumes after the entries it examined, not after the
        documents it returns: one deleted or changed between the Query and the BatchGetItem is
        left out, and the page is short rather than the last.
        """
        request = _query_input(self._table, owner, query)
        budget = examine_budget(query.limit)
        slice_size = query.limit + 1
        examined = 0
        ids: list[str] = []
        last_examined: str | None = None
        with self._unavailable_on_failure():
            while True:
                request["Limit"] = min(slice_size, budget - examined)
                response = await self._client.query(**request)
                ids.extend(item["sk"]["S"] for item in response["Items"])
                examined += response["ScannedCount"]
                last_key = response.get("LastEvaluatedKey")
                last_examined = None if last_key is None else last_key["sk"]["S"]
                if last_key is None or len(ids) > query.limit or examined >= budget:
                    break
                request["ExclusiveStartKey"] = last_key
                slice_size *= _SLICE_GROWTH
            found = await self._documents(owner, ids[: query.limit])
        documents = [found[id_] for id_ in ids[: query.limit] if id_ in found and matches(found[id_], query)]
        return Page(documents, resume_point(ids, query.limit, last_examined))

    async def update(self, owner: str, document_id: str, change: Callable[[Document], Document]) -> Document:
        return await self._change(owner, document_id, change, EventType.UPDATED)

    async def record_processing(
        self, owner: str, document_id: str, sha256: str, processing: Processing
    ) -> Document:
        def recorded(current: Document) -> Document | None:
            return with_processing(current, sha256, processing)

        return await self._change(owner, document_id, recorded, EventType.PROCESSED)

    async def _change(
        self,
        owner: str,
        document_id: str,
        change: Callable[[Document], Document | None],
        event_type: EventType,
    ) -> Document:
        """Optimistic: read, change, write on condition that the version did not move; when it did,
        pause (full jitter, growing exponentially) and start over, for at most ``UPDATE_BUDGET_SECONDS``.
        ``change`` returning ``None`` leaves the document as it is, and writes no event.

        Changes of one document from this process first take turns, so they do not spend writes
        overtaking each other; the condition then only has other processes to guard against. The
        wait for a turn counts in the budget: a change gives up when others kept it waiting too long.
        """
        deadline = asyncio.get_running_loop().time() + UPDATE_BUDGET_SECONDS
        try:
            async with self._update_turns.turn(_owned(owner, document_id), deadline):
                return await self._update(owner, document_id, change, event_type, deadline)
        except TimeoutError:
            # Only the wait for the turn: ``_update`` turns the stores' timeouts into StoreUnavailable.
            raise ConcurrentUpdate(document_id) from None

    async def _update(
        self,
        owner: str,
        document_id: str,
        change: Callable[[Document], Document | None],
        event_type: EventType,
        deadline: float,
    ) -> Document:
        attempt = 0
        with self._unavailable_on_failure():
            while True:
                current, last_event = await self._stored(owner, document_id)
                updated = change(current)
                if updated is None:
                    return current
                event = event_of(event_type, updated, after=last_event)
                put: TransactWriteItemTypeDef = {
                    "Put": {
                        "TableName": self._table,
                        "Item": _document_item(updated, event.id),
                        "ConditionExpression": "version = :expected",
                        "ExpressionAttributeValues": {":expected": {"N": str(current.version)}},
                    }
                }
                writes = [put, *_entry_writes(self._table, current, updated), event_put(self._table, event)]
                if await self._transact(writes):
                    self._commits.ring()
                    return updated
                pause = _backoff(attempt)
                if asyncio.get_running_loop().time() + pause > deadline:
                    raise ConcurrentUpdate(document_id)
                await asyncio.sleep(pause)
                attempt += 1

    async def delete(self, owner: str, document_id: str) -> None:
        with self._unavailable_on_failure():
            while True:
                current, last_event = await self._stored(owner, document_id)
                delete: TransactWriteItemTypeDef = {
                    "Delete": {
                        "TableName": self._table,
                        "Key": _document_key(owner, document_id),
                        "ConditionExpression": "version = :version",
                        "ExpressionAttributeValues": {":version": {"N": str(current.version)}},
                    }
                }
                event = event_of(EventType.DELETED, current, after=last_event)
                writes = [delete, *_entry_writes(self._table, current, None), event_put(self._table, event)]
                if await self._transact(writes):
                    self._commits.ring()
                    return
                # Changed since we read it, so its entries may have too: read it again.

    async def claim(self, claim: IdempotencyClaim, now: datetime) -> CompletedUpload | None:
        """One conditional put; when its condition fails, the record that stands in the way is in the
        error (``ReturnValuesOnConditionCheckFailure``), so no second read can see another state.
        DynamoDB refuses the put while a transaction (an upload completing the record) writes the
        record: the key is then in use too."""
        moment = {"N": _epoch(now)}
        with self._unavailable_on_failure(in_a_transaction=IdempotencyKeyInUse):
            try:
                await self._client.put_item(
                    TableName=self._table,
                    Item={
                        **_claim_key(claim),
                        "token": {"S": claim.token},
                        "lease_until": {"N": _epoch(claim.lease_until)},
                        "expires_at": {"N": _expiry(claim.expires_at)},
                    },
                    ConditionExpression=(
                        "attribute_not_exists(pk) OR expires_at <= :now OR (attribute_not_exists(document_id)"
                        " AND (lease_until <= :now OR #token = :token))"
                    ),
                    ExpressionAttributeNames={"#token": "token"},
                    ExpressionAttributeValues={":now": moment, ":token": {"S": claim.token}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except self._client.exceptions.ConditionalCheckFailedException as error:
                held = cast("Item", error.response.get("Item", {}))
                if "document_id" not in held:
                    raise IdempotencyKeyInUse from None
                return CompletedUpload(held["document_id"]["S"], held["sha256"]["S"])
        return None

    async def release(self, claim: IdempotencyClaim) -> None:
        with (
            self._unavailable_on_failure(in_a_transaction=IdempotencyKeyInUse),
            contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException),
        ):
            await self._client.delete_item(
                TableName=self._table,
                Key=_claim_key(claim),
                ConditionExpression="#token = :token AND attribute_not_exists(document_id)",
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues={":token": {"S": claim.token}},
            )

    async def owners(self) -> AsyncIterator[str]:
        """``default``, whose documents are not registered (tables from before owners hold them), and
        every registered owner, each if its ``ALL`` partition holds an entry: the registry a page at a
        time, and one Query of one entry per owner."""
        if await self._has_documents(DEFAULT_OWNER):
            yield DEFAULT_OWNER
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _OWNERS}},
            "ProjectionExpression": "sk",
            "Limit": _OWNERS_PAGE,
            "ConsistentRead": True,
        }
        while True:
            with self._unavailable_on_failure():
                response = await self._client.query(**request)
            for item in response["Items"]:
                owner = item["sk"]["S"]
                if await self._has_documents(owner):
                    yield owner
            last_key = response.get("LastEvaluatedKey")
            if last_key is None:
                return
            request["ExclusiveStartKey"] = last_key

    async def check(self) -> None:
        with self._unavailable_on_failure():
            async with asyncio.timeout(CHECK_TIMEOUT):
                await self._client.describe_table(TableName=self._table)

    def api_keys(self) -> DynamoDbKeyRepository:
        """The API keys in the same table, through this client and its failure conversion (see
        ``dynamodb_keys``)."""
        return DynamoDbKeyRepository(self._client, self._table, self._failures, self.check)

    def uploads(self) -> DynamoDbUploadRepository:
        """Resumable upload sessions in the same table, through this client (see ``dynamodb_uploads``)."""
        return DynamoDbUploadRepository(self._client, self._table, self._failures, _owned)

    def outbox(self, lease_seconds: float = LEASE_SECONDS) -> DynamoDbOutbox:
        """The events of these documents in the same table, for one relay (see ``dynamodb_outbox``)."""
        return DynamoDbOutbox(self._client, self._table, self._failures, self._commits, lease_seconds)

    def webhook_queue(self, lease_seconds: float = LEASE_SECONDS) -> DynamoDbWebhookQueue:
        """The webhooks not yet delivered, in the same table, for a dispatcher (see ``dynamodb_webhooks``)."""
        return DynamoDbWebhookQueue(self._client, self._table, self._failures, lease_seconds)

    async def close(self) -> None:
        """Stop a recreation of the table still in progress."""
        await self._failures.close()

    async def create_table_if_missing(self) -> None:
        """Create the table when it does not exist, tolerating a concurrent creator, and wait until
        it is ACTIVE. Describing first means an existing table needs no CreateTable permission. The
        table docpipe creates expires idempotency records through DynamoDB's TTL on ``expires_at``."""
        created = False
        with self._unavailable_on_failure():
            try:
                await self._client.describe_table(TableName=self._table)
            except self._client.exceptions.ResourceNotFoundException:
                with contextlib.suppress(self._client.exceptions.ResourceInUseException):
                    created = True
                    await self._client.create_table(
                        TableName=self._table,
                        AttributeDefinitions=[
                            {"AttributeName": "pk", "AttributeType": "S"},
                            {"AttributeName": "sk", "AttributeType": "S"},
                        ],
                        KeySchema=[
                            {"AttributeName": "pk", "KeyType": "HASH"},
                            {"AttributeName": "sk", "KeyType": "RANGE"},
                        ],
                        BillingMode="PAY_PER_REQUEST",
                    )
            await self._client.get_waiter("table_exists").wait(
                TableName=self._table, WaiterConfig={"Delay": 1, "MaxAttempts": TABLE_WAIT_SECONDS}
            )
            if created:
                await self._client.update_time_to_live(
                    TableName=self._table,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
                )

    async def _register(self, owner: str) -> None:
        """Put ``owner`` in the registry ``owners`` reads, unless this process already did (and has
        not forgotten since, see ``_unavailable_on_failure``). A plain put: concurrent first adds of
        one owner both succeed."""
        if owner == DEFAULT_OWNER or owner in self._registered_owners:
            return
        with self._unavailable_on_failure():
            await self._client.put_item(
                TableName=self._table, Item={"pk": {"S": _OWNERS}, "sk": {"S": owner}}
            )
        if len(self._registered_owners) >= _REMEMBERED_OWNERS:
            self._registered_owners.clear()
        self._registered_owners.add(owner)

    async def _has_documents(self, owner: str) -> bool:
        with self._unavailable_on_failure():
            response = await self._client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": _owned(owner, _ALL)}},
                ProjectionExpression="sk",
                Limit=1,
                ConsistentRead=True,
            )
        return bool(response["Items"])

    @contextlib.contextmanager
    def _unavailable_on_failure(
        self, *, in_a_transaction: Callable[[], DocpipeError] | None = None
    ) -> Iterator[None]:
        """DynamoDB's failures as domain errors (see ``AwsFailures``); a failed condition passes through.

        A store failure also forgets which owners this process registered: the table may have been
        lost (and recreated, empty) with their registrations."""
        try:
            with self._failures.converted(in_a_transaction=in_a_transaction):
                yield
        except StoreFailure:
            self._registered_owners.clear()
            raise

    async def _find(self, owner: str, document_id: str) -> Document | None:
        item = await self._item(owner, document_id)
        return None if item is None else _decode(item, owner)

    async def _stored(self, owner: str, document_id: str) -> tuple[Document, str | None]:
        """``owner``'s document and the id of its latest event (none for documents written before the
        outbox); ``DocumentNotFound`` when there is none."""
        item = await self._item(owner, document_id)
        if item is None:
            raise DocumentNotFound(document_id)
        last_event = item.get("last_event")
        return _decode(item, owner), None if last_event is None else last_event["S"]

    async def _item(self, owner: str, document_id: str) -> Item | None:
        response = await self._client.get_item(
            TableName=self._table, Key=_document_key(owner, document_id), ConsistentRead=True
        )
        return response.get("Item")

    async def _transact(self, writes: Sequence[TransactWriteItemTypeDef]) -> bool:
        """Apply ``writes`` atomically; False when a condition failed (the first write's, on the
        document item, or a key record's), or when another transaction was writing the same document
        at the same time.

        A key record is also written outside transactions, by the claim of a retry with the same
        Idempotency-Key, and DynamoDB cancels a transaction that meets such a write (reason
        ``TransactionConflict``). That claim is over in moments and cannot take a held key, so the
        transaction is tried again, after jittered pauses, for at most ``KEY_CONFLICT_BUDGET_SECONDS``.
        """
        deadline = asyncio.get_running_loop().time() + KEY_CONFLICT_BUDGET_SECONDS
        attempt = 0
        while True:
            try:
                await self._client.transact_write_items(TransactItems=writes)
            except self._client.exceptions.TransactionCanceledException as error:
                codes = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in codes:
                    return False
                if "TransactionConflict" not in codes:
                    raise
                key_record_conflict = any(
                    code == "TransactionConflict" and _writes_key_record(write)
                    for code, write in zip(codes, writes, strict=False)
                )
                pause = _backoff(attempt)
                if not key_record_conflict or asyncio.get_running_loop().time() + pause > deadline:
                    return False
                await asyncio.sleep(pause)
                attempt += 1
            else:
                return True

    async def _documents(self, owner: str, ids: Sequence[str]) -> dict[str, Document]:
        """The documents of ``owner`` with ``ids`` that still exist, by id.

        BatchGetItem takes 100 keys at most and, when throttled, may leave some unprocessed; it fails
        instead when it can process none, so every round makes progress.
        """
        keys = [_document_key(owner, document_id) for document_id in ids]
        documents: dict[str, Document] = {}
        while keys:
            batch, keys = keys[:_BATCH_GET_MAX], keys[_BATCH_GET_MAX:]
            response = await self._client.batch_get_item(
                RequestItems={
                    self._table: {"Keys": batch, "ConsistentRead": True, "ProjectionExpression": "document"}
                }
            )
            for item in response["Responses"].get(self._table, []):
                document = _decode(item, owner)
                documents[document.id] = document
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table)
            if unprocessed:
                keys.extend(unprocessed["Keys"])
                await asyncio.sleep(_UNPROCESSED_PAUSE)
        return documents


def _entry_writes(table: str, old: Document | None, new: Document | None) -> list[TransactWriteItemTypeDef]:
    """The writes that turn the listing entries of ``old`` into those of ``new`` (``None``: no
    document): entries that did not change, as in a metadata-only update, are left alone."""
    before = _entries(old) if old is not None else {}
    after = _entries(new) if new is not None else {}
    writes: list[TransactWriteItemTypeDef] = [
        {"Put": {"TableName": table, "Item": item}}
        for partition, item in after.items()
        if before.get(partition) != item
    ]
    writes.extend(
        {"Delete": {"TableName": table, "Key": {"pk": item["pk"], "sk": item["sk"]}}}
        for partition, item in before.items()
        if partition not in after
    )
    return writes


def _query_input(table: str, owner: str, query: ListQuery) -> QueryInputTypeDef:
    """The Query of ``owner``'s entries of one page of ``query``, newest first.

    Its partition is the first set filter among exact filename, tag, prefix and content type
    (roughly most to least selective), else ``ALL``. Every set filter also goes into the
    FilterExpression: the one the partition implies costs nothing there, as filters only apply to
    entries already read, and a prefix longer than ``PREFIX_ENTRY_LENGTH`` needs it.
    """
    partitions: list[str] = []
    conditions: list[str] = []
    values: dict[str, AttributeValueTypeDef] = {}
    if query.filename is not None:
        partitions.append(_FILENAME + query.filename)
        conditions.append("filename = :filename")
        values[":filename"] = {"S": query.filename}
    if query.tag is not None:
        partitions.append(_TAG + query.tag)
        conditions.append("contains(tags, :tag)")
        values[":tag"] = {"S": query.tag}
    if query.prefix:
        partitions.append(_PREFIX + query.prefix[:PREFIX_ENTRY_LENGTH])
        conditions.append("begins_with(filename, :prefix)")
        values[":prefix"] = {"S": query.prefix}
    if query.content_type is not None:
        partitions.append(_CONTENT_TYPE + query.content_type)
        conditions.append("content_type = :content_type")
        values[":content_type"] = {"S": query.content_type}
    values[":pk"] = {"S": _owned(owner, partitions[0] if partitions else _ALL)}
    key_condition = "pk = :pk"
    if query.after_id is not None:
        key_condition += " AND sk < :after"
        values[":after"] = {"S": query.after_id}
    request: QueryInputTypeDef = {
        "TableName": table,
        "KeyConditionExpression": key_condition,
        "ExpressionAttributeValues": values,
        "ProjectionExpression": "sk",
        "ScanIndexForward": False,
        "ConsistentRead": True,
    }
    if conditions:
        request["FilterExpression"] = " AND ".join(conditions)
    return request


def _backoff(attempt: int) -> float:
    """The pause before retry number ``attempt + 1``: full jitter, growing exponentially to a cap."""
    return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))  # noqa: S311


def _writes_key_record(write: TransactWriteItemTypeDef) -> bool:
    """Whether ``write`` is an upload's completion of its key record (see ``_completion``)."""
    update = write.get("Update")
    if update is None:
        return False
    key = cast("Item", update["Key"])
    return key["sk"].get("S") == _KEY_RECORD_SORT_KEY


def _owned(owner: str, partition: str) -> str:
    """``owner``'s ``partition``: unprefixed for ``default``, as tables from before owners have it."""
    return partition if owner == DEFAULT_OWNER else f"{_OWNER}{owner}#{partition}"


def _claim_key(claim: IdempotencyClaim) -> Item:
    return {"pk": {"S": _owned(claim.owner, _IDEMPOTENCY_KEY + claim.key)}, "sk": {"S": _KEY_RECORD_SORT_KEY}}


def _completion(table: str, claim: IdempotencyClaim, document: Document) -> TransactWriteItemTypeDef:
    """The write that completes ``claim``'s record with ``document``, if the record is still its own."""
    return {
        "Update": {
            "TableName": table,
            "Key": _claim_key(claim),
            "UpdateExpression": "SET document_id = :document, sha256 = :sha256, expires_at = :expires",
            "ConditionExpression": "#token = :token AND attribute_not_exists(document_id)",
            "ExpressionAttributeNames": {"#token": "token"},
            "ExpressionAttributeValues": {
                ":document": {"S": document.id},
                ":sha256": {"S": document.sha256},
                ":expires": {"N": _expiry(claim.expires_at)},
                ":token": {"S": claim.token},
            },
        }
    }


def _epoch(moment: datetime) -> str:
    return f"{moment.timestamp():.6f}"


def _expiry(moment: datetime) -> str:
    """Whole epoch seconds, as DynamoDB's TTL reads them; rounded up, so never early."""
    return str(math.ceil(moment.timestamp()))


def _document_key(owner: str, document_id: str) -> Item:
    return {"pk": {"S": _owned(owner, _DOCUMENT + document_id)}, "sk": {"S": _DOCUMENT_SORT_KEY}}


def _document_item(document: Document, last_event: str) -> Item:
    return {
        **_document_key(document.owner, document.id),
        "version": {"N": str(document.version)},
        "document": {"S": _encoder.encode(document).decode()},
        "last_event": {"S": last_event},
    }


def _decode(item: Item, owner: str) -> Document:
    """The document of ``item``, read from ``owner``'s partition. One written before documents had
    owners is ``owner``'s (``default``'s: it is in an unprefixed partition); one written before they
    had blob keys has its bytes under its id."""
    encoded = item["document"]["S"]
    try:
        return _decoder.decode(encoded)
    except msgspec.ValidationError:
        fields = msgspec.json.decode(encoded)
        if not isinstance(fields, dict) or ("owner" in fields and "blob_key" in fields):
            raise
        return msgspec.convert({"owner": owner, "blob_key": fields.get("id"), **fields}, Document)


def _entries(document: Document) -> dict[str, Item]:
    """The listing entries of ``document``, by partition key."""
    filename = document.filename
    partitions = {_ALL, _FILENAME + filename, _CONTENT_TYPE + document.content_type}
    partitions.update(_TAG + tag for tag in document.tags)
    partitions.update(_PREFIX + filename[:n] for n in range(1, min(len(filename), PREFIX_ENTRY_LENGTH) + 1))
    return {
        partition: {
            "pk": {"S": _owned(document.owner, partition)},
            "sk": {"S": document.id},
            "filename": {"S": filename},
            "content_type": {"S": document.content_type},
            "tags": {"L": [{"S": tag} for tag in document.tags]},
        }
        for partition in partitions
    }


def _failures(table: str, recreate: Callable[[], Awaitable[None]] | None = None) -> AwsFailures:
    return AwsFailures(StoreRole.REPOSITORY, f"DynamoDB table {table!r}", recreate)


def _config() -> AioConfig:
    return AioConfig(
        connect_timeout=3,
        read_timeout=10,
        retries=retries(),
        max_pool_connections=50,  # one client serves every concurrent request of the process
    )


async def open_repository(
    session: aioboto3.Session, settings: DynamoDbSettings, *, create_missing: bool = True
) -> AsyncIterator[DynamoDbRepository]:
    """Open the process's one DynamoDB client, make sure the table exists, and close the client on exit.

    A missing table is created, now or whenever it goes missing, unless ``create_missing`` is false:
    it is then ``StoreMissing``. Endpoint and credentials not given in ``settings`` come from the
    standard AWS chain (``AWS_ENDPOINT_URL``, profiles, instance roles, ...), and so does the region
    when settings name none (see ``docpipe.config``).
    """
    async with contextlib.AsyncExitStack() as stack:
        with _failures(settings.table).converted():
            client = await stack.enter_async_context(
                session.client(
                    "dynamodb",
                    endpoint_url=settings.endpoint_url,
                    region_name=settings.region,
                    config=_config(),
                )
            )
        repository = DynamoDbRepository(client, settings.table, create_missing=create_missing)
        stack.push_async_callback(repository.close)
        if create_missing:
            await repository.create_table_if_missing()
        else:
            await repository.check()
        yield repository
