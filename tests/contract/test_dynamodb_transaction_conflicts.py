"""DynamoDB refuses a single-item write to an item that a transaction is writing at that moment
(``TransactionConflictException``, HTTP 400, which botocore does not retry). An upload's key record
is exactly such an item: the upload completes it in its insert transaction while a retry with the
same key claims it. The retry must get a status the API defines (409 while the first is in flight,
or 503), never the 500 an unconverted ``ClientError`` becomes.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import aioboto3
import pytest

from docpipe.adapters.dynamodb import DynamoDbRepository
from docpipe.domain.errors import DocpipeError
from docpipe.domain.idempotency import new_claim
from docpipe.domain.model import utc_now
from tests.contract.test_dynamodb_specifics import fresh_settings
from tests.moto_server import MotoServer


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


async def test_claiming_a_key_record_in_a_running_transaction_is_no_500(moto_server: MotoServer) -> None:
    settings = fresh_settings(moto_server.endpoint_url)
    async with aioboto3.Session().client("dynamodb", endpoint_url=moto_server.endpoint_url) as client:
        repository = DynamoDbRepository(client, settings.table)
        await repository.create_table_if_missing()
        claim = new_claim("conflicted-key", utc_now())
        client.meta.events.register("before-call.dynamodb.PutItem", cast(Any, _transaction_conflict))
        with pytest.raises(DocpipeError):
            await repository.claim(claim, utc_now())
