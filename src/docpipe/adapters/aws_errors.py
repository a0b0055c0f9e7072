"""AWS failures, S3's, DynamoDB's and SQS's alike, turned into domain errors in this one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator

from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from docpipe.domain.errors import DocpipeError, StoreFailure, StoreMissing, StoreRole, StoreUnavailable

RECREATE_INTERVAL_SECONDS = 5.0
"""A bucket or table found missing is recreated at most this often."""

_THROTTLED = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
    }
)
_REFUSED_CREDENTIALS = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
_MISSING = frozenset(
    {
        "NoSuchBucket",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)
_IN_A_TRANSACTION = "TransactionConflictException"
"""DynamoDB's refusal of a single-item write to an item a transaction is writing at that moment
(HTTP 400, which botocore does not retry)."""

_log = logging.getLogger(__name__)


def retries() -> dict[str, str]:
    """botocore's retry settings for an AWS client: the standard mode, without ``max_attempts``, so that
    botocore takes the count the AWS way (``AWS_MAX_ATTEMPTS``, or ``max_attempts`` in the AWS config
    file; the standard mode's 3 attempts when neither is set). A new dict each time: botocore writes the
    count it settled on into the one it is given."""
    return {"mode": "standard"}


def code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def status(error: ClientError) -> int:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)


def is_missing_store(error: ClientError) -> bool:
    """The bucket, table or queue is gone. HeadBucket answers a bare 404, having no body to name a code in."""
    return code(error) in _MISSING or (error.operation_name == "HeadBucket" and status(error) == 404)


class AwsFailures:
    """The failures of one AWS store (``store`` names it for logs, e.g. "S3 bucket 'docs'").

    ``converted()`` turns "cannot serve now" into ``StoreUnavailable``: connection errors and
    timeouts (after botocore's own retries), responses cut short, missing credentials or region, 5xx
    answers, throttling and credentials refused. A write refused because a transaction is writing
    its item is what ``in_a_transaction`` makes of it (the caller knows what the item is), else
    ``StoreUnavailable`` too. Other client errors (a missing key, a failed condition, ...) pass
    through for the caller to judge.

    A missing bucket or table (deleted, or its service lost its state) is recreated by ``recreate``,
    in the background and at most every ``RECREATE_INTERVAL_SECONDS``, while requests get
    ``StoreUnavailable``; without ``recreate`` (``DOCPIPE_CREATE_MISSING=false``) it is ``StoreMissing``.
    """

    def __init__(
        self, role: StoreRole, store: str, recreate: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.role = role
        self.store = store
        self._recreate = recreate
        self._last_recreation = -math.inf
        self._recreation: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def converted(self, *, in_a_transaction: Callable[[], DocpipeError] | None = None) -> Iterator[None]:
        try:
            yield
        except (
            BotocoreConnectionError,
            HTTPClientError,
            IncompleteReadError,
            NoCredentialsError,
            NoRegionError,
            TimeoutError,
        ) as error:
            reason = str(error) or "no answer in time"
            raise StoreUnavailable(self.role, f"{self.store} is unreachable: {reason}") from None
        except ClientError as error:
            if is_missing_store(error):
                raise self._missing() from None
            if code(error) == _IN_A_TRANSACTION:
                if in_a_transaction is not None:
                    raise in_a_transaction() from None
                raise StoreUnavailable(self.role, f"{self.store} is busy: {error}") from None
            if status(error) >= 500 or code(error) in _THROTTLED:
                raise StoreUnavailable(self.role, f"{self.store} is failing: {error}") from None
            if code(error) in _REFUSED_CREDENTIALS:
                raise StoreUnavailable(self.role, f"{self.store} refuses our credentials: {error}") from None
            raise

    async def close(self) -> None:
        """Stop a recreation still in progress."""
        if self._recreation is not None:
            self._recreation.cancel()
            await asyncio.gather(self._recreation, return_exceptions=True)

    def _missing(self) -> StoreFailure:
        if self._recreate is None:
            return StoreMissing(self.role, self.store)
        now = time.monotonic()
        if self._recreation is None and now - self._last_recreation >= RECREATE_INTERVAL_SECONDS:
            self._last_recreation = now
            self._recreation = asyncio.get_running_loop().create_task(self._recreated(self._recreate))
        return StoreUnavailable(self.role, f"{self.store} does not exist: recreating it")

    async def _recreated(self, recreate: Callable[[], Awaitable[None]]) -> None:
        try:
            await recreate()
        except Exception as error:
            _log.error("%s went missing and could not be recreated: %s", self.store, error)
        else:
            _log.error(
                "%s went missing (deleted, or its service lost its state): recreated it, empty", self.store
            )
        finally:
            self._recreation = None
