"""An upload link makes one document, even used at once through two replicas sharing a repository."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from docpipe.adapters.memory import MemoryBlobStore
from docpipe.container import Container, close
from docpipe.domain.errors import LinkGone
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.links import UploadGrant
from docpipe.domain.model import ListQuery, NewDocument, utc_now
from docpipe.domain.ports import DocumentRepository
from docpipe.domain.service import DocumentService
from tests.adapters_under_test import REPOSITORIES, needs_aws, settings_for

Replicas = tuple[DocumentService, DocumentService, DocumentRepository]


@pytest.fixture(params=REPOSITORIES)
async def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Replicas]:
    """Two services, each with its own connections to one repository (the in-memory one is shared)."""
    kind: str = request.param
    endpoint = request.getfixturevalue("moto_server").endpoint_url if needs_aws(kind) else None
    settings = settings_for(repository=kind, data_dir=tmp_path, aws_endpoint_url=endpoint)
    containers = [Container(settings=settings) for _ in range(1 if kind == "memory" else 2)]
    try:
        first, *others = [await container.repository() for container in containers]
        second: DocumentRepository = others[0] if others else first
        yield (
            DocumentService(MemoryBlobStore(), first, max_upload_bytes=1024),
            DocumentService(MemoryBlobStore(), second, max_upload_bytes=1024),
            first,
        )
    finally:
        for container in containers:
            await close(container)


def grant() -> UploadGrant:
    return UploadGrant(DEFAULT_OWNER, "nonce-1", utc_now() + timedelta(minutes=5), None, None, ())


async def test_an_upload_link_in_use_on_one_replica_is_gone_on_the_other(replicas: Replicas) -> None:
    one, other, repository = replicas
    link = grant()
    claimed, release = asyncio.Event(), asyncio.Event()

    async def held_open() -> AsyncIterator[bytes]:
        claimed.set()  # the body is read once the link is claimed
        yield b"first "
        await release.wait()
        yield b"upload"

    first = asyncio.create_task(
        one.upload(DEFAULT_OWNER, held_open(), NewDocument(filename="a.txt"), link=link)
    )
    await claimed.wait()
    with pytest.raises(LinkGone, match="in use"):
        await other.upload(DEFAULT_OWNER, _once(b"second"), NewDocument(filename="b.txt"), link=link)
    release.set()
    assert (await first).filename == "a.txt"
    with pytest.raises(LinkGone, match="used"):
        await other.upload(DEFAULT_OWNER, _once(b"third"), NewDocument(filename="c.txt"), link=link)
    assert [
        document.filename for document in (await repository.list(DEFAULT_OWNER, ListQuery())).documents
    ] == ["a.txt"]


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
