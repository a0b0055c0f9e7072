"""The API under test, once per pair of adapters: the embedded default, the fakes, and AWS on moto."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import AsyncTestClient

from docpipe.adapters.extraction.in_process import InProcessExtractor
from docpipe.config import ProcessingMode, Settings
from docpipe.container import Container
from tests.adapters_under_test import settings_for
from tests.http.helpers import serve

ADAPTER_PAIRS = [("filesystem", "sqlite"), ("memory", "memory"), ("s3", "dynamodb")]
MAX_UPLOAD_BYTES = 8 * 1024 * 1024


@pytest.fixture(params=ADAPTER_PAIRS, ids=["+".join(pair) for pair in ADAPTER_PAIRS])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Processing is off unless the test is marked ``processing``: a document then stays as its requests
    left it, so a test comparing two reads of it is not raced by its text being recorded in between
    (which moves the version), and the suite does not extract the text of every document it uploads.
    Processing beside requests is tested where it is the subject, and in the live-server fault tests."""
    blob_store, repository = request.param
    endpoint = request.getfixturevalue("moto_server").endpoint_url if blob_store == "s3" else None
    settings = settings_for(
        blob_store=blob_store,
        repository=repository,
        data_dir=tmp_path / "data",
        aws_endpoint_url=endpoint,
        max_upload_bytes=MAX_UPLOAD_BYTES,
    )
    if request.node.get_closest_marker("processing") is None:
        return msgspec.structs.replace(settings, processing=ProcessingMode.OFF)
    return settings


@pytest.fixture
def container(settings: Settings) -> Container:
    """The container the ``client`` fixture's app runs on: a test may reach the adapters through it.

    Text is extracted in process (``InProcessExtractor``, which passes the extractor contract suite):
    a sandbox child process per app would cost most HTTP tests more than they do. ``test_processing``
    and the live-server tests run the sandbox."""
    container = Container(settings=settings)
    container.extractor.override(providers.Object(InProcessExtractor()))
    return container


@pytest.fixture
async def client(settings: Settings, container: Container) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with serve(settings, container) as test_client:
        yield test_client
