"""The moto server the tests start must keep DynamoDB's promise that a transaction is atomic.

Stock moto checks a transaction's conditions and applies its writes without a lock, and a transaction
whose condition fails "rolls back" by restoring a copy of the whole table taken when it began: a write
another thread committed meanwhile is silently undone. Real DynamoDB never loses a committed write, and
docpipe's optimistic updates (read, change, write on condition) rely on that.
"""

from __future__ import annotations

import asyncio

import aioboto3
import pytest
from aiobotocore.config import AioConfig
from types_aiobotocore_dynamodb.client import DynamoDBClient

from tests.moto_server import MotoServer

WRITERS = 8
INCREMENTS = 5
BYSTANDERS = 500
"""Other items in the table: moto copies the whole table when a transaction begins, and the longer the
copy takes, the wider the window in which another thread's write lands and is then undone."""
TABLE = "moto-atomicity"
COUNTER = {"pk": {"S": "counter"}}


async def read_counter(client: DynamoDBClient) -> int:
    item = (await client.get_item(TableName=TABLE, Key=COUNTER, ConsistentRead=True))["Item"]
    return int(item["n"]["N"])


async def increment(client: DynamoDBClient) -> list[int]:
    """Optimistic increments, as docpipe updates a document: each success claims the value it wrote."""
    claimed: list[int] = []
    while len(claimed) < INCREMENTS:
        seen = await read_counter(client)
        try:
            await client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": TABLE,
                            "Item": {**COUNTER, "n": {"N": str(seen + 1)}},
                            "ConditionExpression": "n = :seen",
                            "ExpressionAttributeValues": {":seen": {"N": str(seen)}},
                        }
                    }
                ]
            )
        except client.exceptions.TransactionCanceledException:
            continue
        claimed.append(seen + 1)
    return claimed


async def test_no_committed_transaction_is_undone_by_a_failing_one(moto_server: MotoServer) -> None:
    config = AioConfig(max_pool_connections=WRITERS, retries={"max_attempts": 1})
    async with aioboto3.Session().client(
        "dynamodb", endpoint_url=moto_server.endpoint_url, config=config
    ) as client:
        await client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        try:
            await client.put_item(TableName=TABLE, Item={**COUNTER, "n": {"N": "0"}})
            for start in range(0, BYSTANDERS, 25):
                bystanders = range(start, start + 25)
                await client.batch_write_item(
                    RequestItems={
                        TABLE: [{"PutRequest": {"Item": {"pk": {"S": f"bystander-{n}"}}}} for n in bystanders]
                    }
                )
            claims = await asyncio.gather(*(increment(client) for _ in range(WRITERS)))
            final = await read_counter(client)
        finally:
            await client.delete_table(TableName=TABLE)
    claimed = sorted(value for values in claims for value in values)
    assert claimed == list(range(1, WRITERS * INCREMENTS + 1)), (
        "a value was handed out twice: a write was lost"
    )
    assert final == WRITERS * INCREMENTS


async def test_a_cancelled_transaction_leaves_every_item_as_it_was(moto_server: MotoServer) -> None:
    """The tests' moto undoes a transaction from the items it wrote; the undo must be exact."""
    async with aioboto3.Session().client("dynamodb", endpoint_url=moto_server.endpoint_url) as client:
        await client.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        try:
            kept = {"pk": {"S": "p"}, "sk": {"S": "kept"}, "n": {"N": "1"}}
            doomed = {"pk": {"S": "p"}, "sk": {"S": "doomed"}, "n": {"N": "1"}}
            guard = {"pk": {"S": "p"}, "sk": {"S": "guard"}, "n": {"N": "1"}}
            for item in (kept, doomed, guard):
                await client.put_item(TableName=TABLE, Item=item)
            with pytest.raises(client.exceptions.TransactionCanceledException) as cancelled:
                await client.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "p"}, "sk": {"S": "new"}}}},
                        {
                            "Update": {
                                "TableName": TABLE,
                                "Key": {"pk": kept["pk"], "sk": kept["sk"]},
                                "UpdateExpression": "SET n = n + :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                            }
                        },
                        {"Delete": {"TableName": TABLE, "Key": {"pk": doomed["pk"], "sk": doomed["sk"]}}},
                        {
                            "ConditionCheck": {
                                "TableName": TABLE,
                                "Key": {"pk": guard["pk"], "sk": guard["sk"]},
                                "ConditionExpression": "n = :two",
                                "ExpressionAttributeValues": {":two": {"N": "2"}},
                            }
                        },
                    ]
                )
            reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
            assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
            items = (
                await client.query(
                    TableName=TABLE,
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "p"}},
                    ConsistentRead=True,
                )
            )["Items"]
            assert sorted(items, key=lambda item: item["sk"]["S"]) == [doomed, guard, kept]
        finally:
            await client.delete_table(TableName=TABLE)
