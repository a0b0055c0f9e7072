"""The API under test, once per pair of adapters: the embedded default, the fakes, and AWS on moto."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from docpipe.config import Settings
from docpipe.container import Container
from tests.adapters_under_test import settings_for
from tests.http.helpers import serve

ADAPTER_PAIRS = [("filesystem", "sqlite"), ("memory", "memory"), ("s3", "dynamodb")]
MAX_UPLOAD_BYTES = 8 * 1024 * 1024


@pytest.fixture(params=ADAPTER_PAIRS, ids=["+".join(pair) for pair in ADAPTER_PAIRS])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    blob_store, repository = request.param
    endpoint = request.getfixturevalue("moto_server").endpoint_url if blob_store == "s3" else None
    return settings_for(
        blob_store=blob_store,
        repository=repository,
        data_dir=tmp_path / "data",
        aws_endpoint_url=endpoint,
        max_upload_bytes=MAX_UPLOAD_BYTES,
    )


@pytest.fixture
def container(settings: Settings) -> Container:
    """The container the ``client`` fixture's app runs on: a test may reach the adapters through it."""
    return Container(settings=settings)


@pytest.fixture
async def client(settings: Settings, container: Container) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with serve(settings, container) as test_client:
        yield test_client
