"""How often docpipe's AWS clients try a request, seen from the endpoint: the AWS way, through
``AWS_MAX_ATTEMPTS`` (or ``max_attempts`` in the AWS config file), 3 attempts when it is not set.

The endpoint answers every request 503, which every AWS client retries: each request it sees is one
try. (An endpoint that resets connections would count the HTTP client's own second sending of an
idempotent request too: aiohttp sends a ``HEAD`` or ``GET`` once more when its connection is reset
before any answer, within one try.)"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aioboto3
import pytest

from docpipe.adapters import dynamodb, s3, sqs
from docpipe.config import DynamoDbSettings, S3Settings, SqsSettings
from docpipe.domain.errors import StoreUnavailable

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


class _Unavailable(ThreadingHTTPServer):
    """An endpoint that answers every request 503 and counts them."""

    requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Answer503(BaseHTTPRequestHandler):
    server: _Unavailable

    def _answer(self) -> None:
        self.server.requests += 1
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET = do_POST = do_PUT = _answer

    def log_message(self, *_: object) -> None:
        """Quiet: the count is what the tests read."""


@pytest.fixture
def unavailable() -> Iterator[_Unavailable]:
    with _Unavailable(("127.0.0.1", 0), _Answer503) as endpoint:
        serving = threading.Thread(target=endpoint.serve_forever, daemon=True)
        serving.start()
        yield endpoint
        endpoint.shutdown()
        serving.join()


async def _attempts(opener: Opener, endpoint: _Unavailable) -> int:
    with pytest.raises(StoreUnavailable):
        async with opener(aioboto3.Session(), endpoint.url):
            pass
    return endpoint.requests


@pytest.mark.parametrize("service", OPENERS)
async def test_aws_max_attempts_sets_the_attempts_of_every_aws_client(
    service: str, unavailable: _Unavailable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert await _attempts(OPENERS[service], unavailable) == 1


async def test_three_attempts_when_aws_max_attempts_is_not_set(
    unavailable: _Unavailable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Standard retry mode's, as the README says. One client stands for all: each try after the first
    waits up to seconds of back-off."""
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    assert await _attempts(_dynamodb, unavailable) == 3
