"""Each contract suite runs over every adapter of its port, each opened through the container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from docpipe.container import Container, close
from docpipe.domain.ports import (
    BlobStore,
    DocumentRepository,
    KeyRepository,
    ResumableBlobs,
    UploadRepository,
)
from tests.adapters_under_test import (
    BLOB_STORES,
    REPOSITORIES,
    RESUMABLE_BLOB_STORES,
    UPLOAD_REPOSITORIES,
    needs_aws,
    settings_for,
)


def _endpoint(request: pytest.FixtureRequest, kind: str) -> str | None:
    if not needs_aws(kind):
        return None
    endpoint: str = request.getfixturevalue("moto_server").endpoint_url
    return endpoint


@pytest.fixture(params=BLOB_STORES)
async def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    kind: str = request.param
    settings = settings_for(blob_store=kind, data_dir=tmp_path, aws_endpoint_url=_endpoint(request, kind))
    container = Container(settings=settings)
    store: BlobStore = await container.blob_store()
    yield store
    await close(container)


@pytest.fixture(params=REPOSITORIES)
async def repository(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DocumentRepository]:
    kind: str = request.param
    settings = settings_for(repository=kind, data_dir=tmp_path, aws_endpoint_url=_endpoint(request, kind))
    container = Container(settings=settings)
    repository: DocumentRepository = await container.repository()
    yield repository
    await close(container)


@pytest.fixture(params=REPOSITORIES)
async def key_repository(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyRepository]:
    kind: str = request.param
    settings = settings_for(repository=kind, data_dir=tmp_path, aws_endpoint_url=_endpoint(request, kind))
    container = Container(settings=settings)
    keys: KeyRepository = await container.keys()
    yield keys
    await close(container)


@pytest.fixture(params=UPLOAD_REPOSITORIES)
async def upload_repository(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[UploadRepository]:
    kind: str = request.param
    settings = settings_for(repository=kind, data_dir=tmp_path, aws_endpoint_url=_endpoint(request, kind))
    container = Container(settings=settings)
    sessions: UploadRepository = await container.upload_sessions()
    yield sessions
    await close(container)


@pytest.fixture(params=RESUMABLE_BLOB_STORES)
async def resumable_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ResumableBlobs, BlobStore]]:
    """The same adapter as both ports: its finished uploads are read as blobs."""
    kind: str = request.param
    settings = settings_for(blob_store=kind, data_dir=tmp_path, aws_endpoint_url=_endpoint(request, kind))
    container = Container(settings=settings)
    resumable: ResumableBlobs = await container.resumable_blobs()
    blobs: BlobStore = await container.blob_store()
    yield resumable, blobs
    await close(container)
