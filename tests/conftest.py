"""Session-wide test infrastructure: fake AWS credentials and one moto server on loopback."""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dependency_injector import providers
from hypothesis import settings

from docpipe.adapters import sqlite_files
from docpipe.container import Container
from tests.moto_server import MotoServer, running_moto_server
from tests.opensearch_fake import RunningFake, running_fake_opensearch

if TYPE_CHECKING:
    import aioboto3

# Never let a test reach real AWS with a developer's credentials.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
# Outside us-east-1, so bucket creation must send a LocationConstraint as it must against real S3.
os.environ["AWS_DEFAULT_REGION"] = "eu-west-1"
# Tests reach AWS only through moto over plain http: the CA bundle every AWS client loads for its
# connection pool (certifi's 140-odd certificates, about 30 ms of CPU each time) is never used. One
# certificate stands in for it, here and in the servers and commands tests start.
os.environ["AWS_CA_BUNDLE"] = str(Path(__file__).with_name("aws_ca_bundle.pem"))
# The servers tests start extract at the tests' own priority: niced children would wait for the CPU
# whenever another test worker keeps it busy (test_sandbox checks the niceness itself).
os.environ["DOCPIPE_EXTRACT_NICENESS"] = "0"

# Property tests judge results, never timings: on a loaded 2-core machine one example can take 10x another.
settings.register_profile("docpipe", deadline=None)
settings.load_profile("docpipe")


LONGEST_FIRST = ("tests/faults/", "tests/api/")
"""Where the longest test files are (real servers through outages, 10,000 requests, Schemathesis): their
files run first, so that `make test`'s processes (``--dist loadfile --no-loadscope-reorder`` hands files
out in this order) end on short files together, not one on a long file while the other idles."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))  # stable: files stay whole


def pytest_collection_finish() -> None:
    """What exists once the tests are collected (modules, the objects they made, the test items)
    lives as long as the process: frozen out of the garbage collector's sight, the full collections
    the tests' garbage sets off scan only what tests made (a quarter less time collecting, measured
    over the unit, search and HTTP content tests)."""
    gc.collect()
    gc.freeze()


@functools.cache
def _process_aws_session() -> aioboto3.Session:
    import aioboto3  # noqa: PLC0415 - as the container does: on the first use, not at collection

    return aioboto3.Session()


@pytest.fixture(scope="session", autouse=True)
def one_aws_session_per_process() -> Iterator[None]:
    """Every container a test process makes opens its AWS clients from one aioboto3 session, as a
    server process does. A new session loads the S3 and DynamoDB models, endpoint rules and waiters
    again (JSON files botocore caches per session): 0.1 to 0.4 s of CPU per test on S3 and DynamoDB.
    Each container still opens clients of its own, on a bucket and table of its own; the environment
    (``AWS_MAX_ATTEMPTS``) is read as each client is made. Sessions a test makes itself
    (``aioboto3.Session()``) stay its own."""
    Container.aws_session.override(providers.Callable(_process_aws_session))
    yield
    Container.aws_session.reset_override()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with running_moto_server() as server:
        yield server


@pytest.fixture(scope="session")
def opensearch_fake() -> Iterator[RunningFake]:
    """A fake of the OpenSearch REST calls docpipe makes (``tests/opensearch_fake.py``), on loopback."""
    with running_fake_opensearch() as fake:
        yield fake


@pytest.fixture
def short_sqlite_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite connections opened from now on give up on a write lock held elsewhere after 0.2 s, not
    ``BUSY_TIMEOUT_MS``'s 5 s: for tests of what follows the wait (503, reads spared), not of its length."""
    monkeypatch.setattr(sqlite_files, "BUSY_TIMEOUT_MS", 200)
