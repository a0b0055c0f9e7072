"""How often docpipe's AWS clients try a request, seen from the endpoint: the AWS way, through
``AWS_MAX_ATTEMPTS`` (or ``max_attempts`` in the AWS config file), 3 attempts when it is not set."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import aioboto3
import pytest

from docpipe.adapters import dynamodb, s3, sqs
from docpipe.config import DynamoDbSettings, S3Settings, SqsSettings
from docpipe.domain.errors import StoreUnavailable
from tests.faults.proxy import Fault, FaultProxy
from tests.moto_server import free_port

Opener = Callable[[aioboto3.Session, str], contextlib.AbstractAsyncContextManager[object]]


def _s3(session: aioboto3.Session, endpoint: str) -> contextlib.AbstractAsyncContextManager[object]:
    settings = S3Settings(bucket="docpipe-retries", endpoint_url=endpoint, path_style=True)
    return contextlib.asynccontextmanager(s3.open_blob_store)(session, settings)


def _dynamodb(session: aioboto3.Session, endpoint: str) -> contextlib.AbstractAsyncContextManager[object]:
    settings = DynamoDbSettings(table="docpipe-retries", endpoint_url=endpoint)
    return contextlib.asynccontextmanager(dynamodb.open_repository)(session, settings)


def _sqs(session: aioboto3.Session, endpoint: str) -> contextlib.AbstractAsyncContextManager[object]:
    settings = SqsSettings(queue="docpipe-retries", endpoint_url=endpoint)
    return contextlib.asynccontextmanager(sqs.open_work_queue)(session, settings)


OPENERS = {"s3": _s3, "dynamodb": _dynamodb, "sqs": _sqs}


@pytest.fixture
def resetting() -> Iterator[FaultProxy]:
    """An endpoint that resets every connection: each attempt is one connection accepted."""
    with FaultProxy("127.0.0.1", free_port()) as proxy:
        proxy.fail(Fault.RESET)
        yield proxy


async def _attempts(opener: Opener, endpoint: FaultProxy) -> int:
    with pytest.raises(StoreUnavailable):
        async with opener(aioboto3.Session(), endpoint.url):
            pass
    return endpoint.connections_accepted


@pytest.mark.parametrize("service", OPENERS)
async def test_aws_max_attempts_sets_the_attempts_of_every_aws_client(
    service: str, resetting: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert await _attempts(OPENERS[service], resetting) == 1


async def test_three_attempts_when_aws_max_attempts_is_not_set(
    resetting: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Standard retry mode's, as the README says. One client stands for all: each try after the first
    waits up to seconds of back-off."""
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    assert await _attempts(_dynamodb, resetting) == 3
