"""moto server with DynamoDB requests taken one at a time, as ``python -m tests.atomic_moto HOST PORT``.

Stock moto runs each request on its own thread and does not lock its DynamoDB tables: a transaction
whose condition fails restores a copy of the whole table taken when it began, undoing writes other
threads committed meanwhile (``tests/test_moto_server.py`` shows it). Real DynamoDB never loses a
committed write, so the tests' stand-in must not either. S3 requests stay concurrent: they stream
bodies, and a slow client must not hold up the rest.

Serialised, a transaction can also be undone cheaply: moto's own deep-copies every table a transaction
touches, once per item, which made a DynamoDB test run cost minutes of CPU and gigabytes of memory as
tables grew. :func:`transact_write_items` keeps the previous state of the items it writes instead.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def one_dynamodb_request_at_a_time(app: WsgiApp) -> WsgiApp:
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return serve


class UndoLog:
    """The items a transaction wrote, as they were before, restored newest first on rollback."""

    def __init__(self) -> None:
        self._entries: list[tuple[Table, DynamoType, DynamoType | None, Item | None]] = []

    def remember(self, table: Table, key: dict[str, Any]) -> None:
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        previous = table.get_item(hash_value, range_value)
        self._entries.append((table, hash_value, range_value, copy.deepcopy(previous)))

    def undo(self) -> None:
        for table, hash_value, range_value, previous in reversed(self._entries):
            items: Any = table.items[hash_value] if range_value is not None else table.items
            slot = range_value if range_value is not None else hash_value
            if previous is None:
                items.pop(slot, None)
            else:
                items[slot] = previous


def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto's ``TransactWriteItems`` with the same outcomes and errors, undone from an :class:`UndoLog`.

    Only safe while one DynamoDB request runs at a time, as :func:`one_dynamodb_request_at_a_time`
    ensures: the items are checked and written without a lock of their own."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    undo_log = UndoLog()
    targets: set[tuple[str, str]] = set()
    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for transact_item in transact_items:
        if len(transact_item) > 1:
            raise TransactWriteSingleOpException
        old_image: dict[str, Any] | None = None
        try:
            op_type, op = next(iter(transact_item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            table = backend.get_table(table_name)
            if op_type == "Put":
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            target = (str(table_name), str(dict(sorted(key.items()))))
            if target in targets:
                raise MultipleTransactionsException()
            targets.add(target)
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            condition = op.get("ConditionExpression")
            current = backend.get_item(table_name, key)
            if condition is not None and not get_filter_expression(condition, names, values).expr(current):
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old_image = current.to_json()["Attributes"]
                raise ConditionalCheckFailed(item=old_image)
            if op_type != "ConditionCheck":
                undo_log.remember(table, key)
            conditions = {
                "condition_expression": condition,
                "expression_attribute_names": names,
                "expression_attribute_values": values,
            }
            if op_type == "Put":
                backend.put_item(table_name, op["Item"], **conditions)
            elif op_type == "Delete":
                backend.delete_item(table_name, key, **conditions)
            elif op_type == "Update":
                backend.update_item(table_name, key, update_expression=op["UpdateExpression"], **conditions)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            undo_log.undo()
            raise
        except ConditionalCheckFailed as failed:
            errors.append(("ConditionalCheckFailed", str(failed.message), old_image))
        except Exception as failed:
            errors.append((type(failed).__name__, str(failed), old_image))
    if any(code is not None for code, _, _ in errors):
        undo_log.undo()
        raise TransactionCanceledException(errors)


def main(host: str, port: int) -> None:
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign,assignment]
    run_simple(
        host,
        port,
        one_dynamodb_request_at_a_time(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
