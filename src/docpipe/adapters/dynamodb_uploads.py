"""Resumable upload sessions in the documents' DynamoDB table, through the document repository's client.

Each session is one item in its owner's partitions (``<o>`` as in ``dynamodb``), found by two kinds of
index item that carry no state of their own::

    pk                          sk                          attributes
    <o>UPLOAD#<id>              UPLOAD                      the session: blob_key, length, offset,
                                                            filename, content_type, tags, created_at,
                                                            upload_expires, lease_token, lease_until,
                                                            document_id (times in epoch microseconds)
    UPLOAD_BLOB#<blob key>      UPLOAD_BLOB                 owner, id: ``holding`` (fsck)
    UPLOAD_EXPIRY               <expiry>#<owner>#<id>       none: ``expired`` (the sweeper), oldest first

Every move of an upload is one conditional UpdateItem of the session item, the condition being the
compare-and-set the port describes (the offset and the lease for ``take_lease``, the lease token for
``advance`` and ``complete``); a refused one returns the item as it stood
(``ReturnValuesOnConditionCheckFailure``), which says why without a second read. Only creation is a
transaction (the three items at once).

An expiry entry is put before each write that may move the session's expiry and never moved: entries
whose expiry is not the session's (any more), or whose session is gone, are stale and deleted by
``expired`` as it meets them, so a PATCH costs one small PutItem more and no transaction. The expiry is
``upload_expires``, not ``expires_at``: the table's TTL on ``expires_at`` must not delete sessions
behind the sweeper's back, which removes their bytes with them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

from docpipe.adapters.aws_errors import AwsFailures
from docpipe.domain.errors import UploadBusy, UploadNotFound
from docpipe.domain.uploads.session import Lease, UploadSession, refuse_lease

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef

    Item = dict[str, AttributeValueTypeDef]

_SESSION = "UPLOAD#"
_SESSION_SORT_KEY = "UPLOAD"
_BY_BLOB = "UPLOAD_BLOB#"
_BY_BLOB_SORT_KEY = "UPLOAD_BLOB"
_BY_EXPIRY = "UPLOAD_EXPIRY"
_BATCH_GET_MAX = 100
_UNPROCESSED_PAUSE = 0.05
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LEASE_FREE = "(attribute_not_exists(lease_until) OR lease_until <= :now)"


class DynamoDbUploadRepository:
    """Sessions in the table ``table``, laid out as the module docstring shows; ``failures`` is the
    document repository's conversion of DynamoDB's failures (and recreation of a missing table), and
    ``owned`` its naming of an owner's partitions."""

    def __init__(
        self, client: DynamoDBClient, table: str, failures: AwsFailures, owned: Callable[[str, str], str]
    ) -> None:
        self._client = client
        self._table = table
        self._failures = failures
        self._owned = owned

    async def create(self, session: UploadSession) -> None:
        item = {**self._session_key(session.owner, session.id), **_session_item(session)}
        with self._converted():
            await self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self._table, "Item": _by_blob_item(session)}},
                    {"Put": {"TableName": self._table, "Item": _by_expiry_key(session)}},
                ]
            )

    async def get(self, owner: str, upload_id: str) -> UploadSession:
        session = await self._find(owner, upload_id)
        if session is None:
            raise UploadNotFound(upload_id)
        return session

    async def take_lease(
        self, owner: str, upload_id: str, offset: int, lease: Lease, now: datetime
    ) -> UploadSession:
        """One conditional update: the port's rule (``refuse_lease``) as a condition expression, which
        the refused item is then run through to say which part of it failed."""
        with self._converted():
            try:
                response = await self._client.update_item(
                    TableName=self._table,
                    Key=self._session_key(owner, upload_id),
                    UpdateExpression="SET lease_token = :token, lease_until = :until",
                    ConditionExpression=(
                        "attribute_exists(pk) AND upload_expires > :now AND attribute_not_exists(document_id)"
                        f" AND ({_LEASE_FREE} OR lease_token = :token) AND #offset = :offset"
                    ),
                    ExpressionAttributeNames={"#offset": "offset"},
                    ExpressionAttributeValues={
                        ":token": {"S": lease.token},
                        ":until": _moment(lease.until),
                        ":now": _moment(now),
                        ":offset": {"N": str(offset)},
                    },
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except self._client.exceptions.ConditionalCheckFailedException as error:
                refuse_lease(self._refused(error, upload_id), offset, lease.token, now)
                raise UploadBusy(upload_id) from None  # the rule and the condition disagree: never
        return _session(response["Attributes"])

    async def advance(
        self,
        owner: str,
        upload_id: str,
        token: str,
        offset: int,
        lease_until: datetime | None,
        expires_at: datetime,
    ) -> None:
        values: Item = {":offset": {"N": str(offset)}, ":expires": _moment(expires_at)}
        update = "SET #offset = :offset, upload_expires = :expires"
        if lease_until is None:
            update += " REMOVE lease_token, lease_until"
        else:
            update += ", lease_until = :until"
            values[":until"] = _moment(lease_until)
        await self._put_expiry(owner, upload_id, expires_at)
        await self._held_write(owner, upload_id, token, update, values)

    async def complete(
        self, owner: str, upload_id: str, token: str, document_id: str, expires_at: datetime
    ) -> None:
        await self._put_expiry(owner, upload_id, expires_at)
        await self._held_write(
            owner,
            upload_id,
            token,
            "SET #offset = #length, document_id = :document, upload_expires = :expires "
            "REMOVE lease_token, lease_until",
            {":document": {"S": document_id}, ":expires": _moment(expires_at)},
            {"#length": "length"},
        )

    async def delete(self, owner: str, upload_id: str, now: datetime) -> UploadSession:
        """The session item on condition that no lease runs, then its index items (an expiry entry
        left over is deleted by ``expired``, a blob entry is ignored by ``holding`` without its session)."""
        with self._converted():
            try:
                response = await self._client.delete_item(
                    TableName=self._table,
                    Key=self._session_key(owner, upload_id),
                    ConditionExpression=f"attribute_exists(pk) AND {_LEASE_FREE}",
                    ExpressionAttributeValues={":now": _moment(now)},
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except self._client.exceptions.ConditionalCheckFailedException as error:
                self._refused(error, upload_id)
                raise UploadBusy(upload_id) from None
            session = _session(response["Attributes"])
            await self._client.delete_item(TableName=self._table, Key=_by_blob_key(session.blob_key))
            await self._client.delete_item(TableName=self._table, Key=_by_expiry_key(session))
        return session

    async def expired(self, now: datetime, limit: int) -> list[UploadSession]:
        """Expiry entries up to ``now``, oldest first, a page at a time, each with its session; stale
        entries are deleted on the way, sessions still leased skipped."""
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk < :bound",
            "ExpressionAttributeValues": {
                ":pk": {"S": _BY_EXPIRY},
                ":bound": {"S": f"{_expiry_sort_prefix(now)}$"},  # "$" sorts right after "#"
            },
            "Limit": limit,
            "ConsistentRead": True,
        }
        found: list[UploadSession] = []
        with self._converted():
            while len(found) < limit:
                response = await self._client.query(**request)
                entries = [item["sk"]["S"] for item in response["Items"]]
                sessions = await self._sessions([_parse_expiry_entry(entry) for entry in entries])
                for entry in entries:
                    expiry, owner, upload_id = _parse_expiry_entry(entry)
                    session = sessions.get((owner, upload_id))
                    if session is None or _expiry_sort_prefix(session.expires_at) != expiry:
                        await self._client.delete_item(
                            TableName=self._table, Key={"pk": {"S": _BY_EXPIRY}, "sk": {"S": entry}}
                        )
                    elif not session.leased(now) and len(found) < limit:
                        found.append(session)
                last_key = response.get("LastEvaluatedKey")
                if last_key is None:
                    break
                request["ExclusiveStartKey"] = last_key
        return found

    async def holding(self, blob_key: str) -> UploadSession | None:
        with self._converted():
            response = await self._client.get_item(
                TableName=self._table, Key=_by_blob_key(blob_key), ConsistentRead=True
            )
        item = response.get("Item")
        if item is None:
            return None
        session = await self._find(item["owner"]["S"], item["id"]["S"])
        return session if session is not None and session.blob_key == blob_key else None

    async def _find(self, owner: str, upload_id: str) -> UploadSession | None:
        with self._converted():
            response = await self._client.get_item(
                TableName=self._table, Key=self._session_key(owner, upload_id), ConsistentRead=True
            )
        item = response.get("Item")
        return None if item is None else _session(item)

    async def _sessions(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str], UploadSession]:
        """The sessions named by ``keys`` (expiry, owner, id) that exist, by owner and id."""
        named = dict.fromkeys((owner, upload_id) for _, owner, upload_id in keys)  # once each
        pending = [self._session_key(owner, upload_id) for owner, upload_id in named]
        found: dict[tuple[str, str], UploadSession] = {}
        while pending:
            batch, pending = pending[:_BATCH_GET_MAX], pending[_BATCH_GET_MAX:]
            response = await self._client.batch_get_item(
                RequestItems={self._table: {"Keys": batch, "ConsistentRead": True}}
            )
            for item in response["Responses"].get(self._table, []):
                session = _session(item)
                found[session.owner, session.id] = session
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table)
            if unprocessed:
                pending.extend(unprocessed["Keys"])
                await asyncio.sleep(_UNPROCESSED_PAUSE)
        return found

    async def _put_expiry(self, owner: str, upload_id: str, expires_at: datetime) -> None:
        entry = f"{_expiry_sort_prefix(expires_at)}#{owner}#{upload_id}"
        with self._converted():
            await self._client.put_item(
                TableName=self._table, Item={"pk": {"S": _BY_EXPIRY}, "sk": {"S": entry}}
            )

    async def _held_write(
        self,
        owner: str,
        upload_id: str,
        token: str,
        update: str,
        values: Item,
        names: dict[str, str] | None = None,
    ) -> None:
        """``update`` of the session, on condition that ``token`` holds its lease."""
        with self._converted():
            try:
                await self._client.update_item(
                    TableName=self._table,
                    Key=self._session_key(owner, upload_id),
                    UpdateExpression=update,
                    ConditionExpression="attribute_exists(pk) AND lease_token = :token",
                    ExpressionAttributeNames={"#offset": "offset", **(names or {})},
                    ExpressionAttributeValues={**values, ":token": {"S": token}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except self._client.exceptions.ConditionalCheckFailedException as error:
                self._refused(error, upload_id)
                raise UploadBusy(upload_id) from None

    def _refused(self, error: Exception, upload_id: str) -> UploadSession:
        """The session a condition was refused on, as it stood; ``UploadNotFound`` when there was none."""
        item = cast("Item", getattr(error, "response", {}).get("Item"))
        if not item:
            raise UploadNotFound(upload_id) from None
        return _session(item)

    def _session_key(self, owner: str, upload_id: str) -> Item:
        return {"pk": {"S": self._owned(owner, _SESSION + upload_id)}, "sk": {"S": _SESSION_SORT_KEY}}

    def _converted(self) -> contextlib.AbstractContextManager[None]:
        return self._failures.converted()


def _by_blob_key(blob_key: str) -> Item:
    return {"pk": {"S": _BY_BLOB + blob_key}, "sk": {"S": _BY_BLOB_SORT_KEY}}


def _by_blob_item(session: UploadSession) -> Item:
    return {**_by_blob_key(session.blob_key), "owner": {"S": session.owner}, "id": {"S": session.id}}


def _by_expiry_key(session: UploadSession) -> Item:
    entry = f"{_expiry_sort_prefix(session.expires_at)}#{session.owner}#{session.id}"
    return {"pk": {"S": _BY_EXPIRY}, "sk": {"S": entry}}


def _expiry_sort_prefix(moment: datetime) -> str:
    """Epoch microseconds, zero-padded so that entries sort by time as strings."""
    return f"{_microseconds(moment):020d}"


def _parse_expiry_entry(entry: str) -> tuple[str, str, str]:
    """Expiry, owner and id of an entry (owners and ids hold no ``#``)."""
    expiry, owner, upload_id = entry.split("#")
    return expiry, owner, upload_id


def _microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(moment: datetime) -> AttributeValueTypeDef:
    return {"N": str(_microseconds(moment))}


def _time(value: AttributeValueTypeDef) -> datetime:
    return _EPOCH + int(value["N"]) * _MICROSECOND


def _session_item(session: UploadSession) -> Item:
    """The session's attributes, without its key."""
    item: Item = {
        "id": {"S": session.id},
        "owner": {"S": session.owner},
        "blob_key": {"S": session.blob_key},
        "length": {"N": str(session.length)},
        "offset": {"N": str(session.offset)},
        "filename": {"S": session.filename},
        "tags": {"L": [{"S": tag} for tag in session.tags]},
        "created_at": _moment(session.created_at),
        "upload_expires": _moment(session.expires_at),
    }
    if session.content_type is not None:
        item["content_type"] = {"S": session.content_type}
    if session.lease_token is not None and session.lease_until is not None:
        item["lease_token"] = {"S": session.lease_token}
        item["lease_until"] = _moment(session.lease_until)
    if session.document_id is not None:
        item["document_id"] = {"S": session.document_id}
    return item


def _session(item: Item) -> UploadSession:
    def text(name: str) -> str | None:
        value = item.get(name)
        return None if value is None else value["S"]

    lease_until = item.get("lease_until")
    return UploadSession(
        id=item["id"]["S"],
        owner=item["owner"]["S"],
        blob_key=item["blob_key"]["S"],
        length=int(item["length"]["N"]),
        offset=int(item["offset"]["N"]),
        filename=item["filename"]["S"],
        content_type=text("content_type"),
        tags=tuple(tag["S"] for tag in item["tags"]["L"]),
        created_at=_time(item["created_at"]),
        expires_at=_time(item["upload_expires"]),
        lease_token=text("lease_token"),
        lease_until=None if lease_until is None else _time(lease_until),
        document_id=text("document_id"),
    )
