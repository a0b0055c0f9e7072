"""How routes find documents, on every adapter pair: ids and names are never confused, name lookups
are NFC-normalised, values no document can have never reach a store, and HEAD answers what GET would."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from docpipe.config import Settings
from docpipe.container import Container, close, open_service
from docpipe.domain.idempotency import CompletedUpload, IdempotencyClaim
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import Document, ListQuery, NewDocument, Page, Processing, new_document_id
from docpipe.domain.ports import DocumentRepository
from tests.http.helpers import Client, assert_problem, serve, stores_of, upload_ok, wrap_repository


class RecordingRepository:
    """Passes every call on, and records its name: proof of which calls reached the store."""

    def __init__(self, inner: DocumentRepository, calls: list[str]) -> None:
        self._inner = inner
        self.calls = calls

    async def add(self, document: Document, claim: IdempotencyClaim | None = None) -> None:
        self.calls.append("add")
        await self._inner.add(document, claim)

    async def get(self, owner: str, document_id: str) -> Document:
        self.calls.append("get")
        return await self._inner.get(owner, document_id)

    async def list(self, owner: str, query: ListQuery) -> Page:
        self.calls.append("list")
        return await self._inner.list(owner, query)

    async def update(self, owner: str, document_id: str, change: Callable[[Document], Document]) -> Document:
        self.calls.append("update")
        return await self._inner.update(owner, document_id, change)

    async def delete(self, owner: str, document_id: str) -> None:
        self.calls.append("delete")
        await self._inner.delete(owner, document_id)

    async def record_processing(
        self, owner: str, document_id: str, sha256: str, processing: Processing
    ) -> Document:
        self.calls.append("record_processing")
        return await self._inner.record_processing(owner, document_id, sha256, processing)

    async def claim(self, claim: IdempotencyClaim, now: datetime) -> CompletedUpload | None:
        self.calls.append("claim")
        return await self._inner.claim(claim, now)

    async def release(self, claim: IdempotencyClaim) -> None:
        self.calls.append("release")
        await self._inner.release(claim)

    async def owners(self) -> AsyncIterator[str]:
        self.calls.append("owners")
        async for owner in self._inner.owners():
            yield owner

    async def check(self) -> None:
        await self._inner.check()


LONG = "n" * 3000
UUID4 = "0193f4d2-0000-4000-8000-000000000000"
"""Shaped like a UUID, but not a UUIDv7: no id docpipe issues."""


async def test_values_no_document_can_have_never_reach_the_repository(settings: Settings) -> None:
    container = Container(settings=settings)
    calls: list[str] = []
    wrap_repository(container, settings, lambda inner: RecordingRepository(inner, calls))
    async with serve(settings, container) as client:
        for reference in (LONG, "not-an-id", UUID4, "é" * 1500):
            assert_problem(await client.get(f"/documents/{reference}"), 404)
            assert_problem(await client.patch(f"/documents/{reference}", json={"tags": ["t"]}), 404)
            assert_problem(await client.get(f"/documents/{reference}/content"), 404)
            assert (await client.head(f"/documents/{reference}/content")).status_code == 404
        for name in (LONG, "é" * 1500):
            assert_problem(await client.delete(f"/documents/{name}"), 404)
            assert_problem(await client.get(f"/download/{name}"), 404)
            assert (await client.head(f"/download/{name}")).status_code == 404
    assert calls == []


async def test_an_id_shaped_value_is_only_ever_an_id(client: Client) -> None:
    """A document whose name looks like an id is not deleted by ``DELETE /documents/{that name}``."""
    name = new_document_id()
    named = await upload_ok(client, b"named like an id", name)
    assert_problem(await client.delete(f"/documents/{name}"), 404)
    assert (await client.get(f"/documents/{named['id']}")).status_code == 200
    assert (await client.delete(f"/documents/{named['id']}")).status_code == 204
    assert_problem(await client.delete(f"/documents/{named['id']}"), 404)


async def test_name_lookups_are_nfc_normalised(client: Client) -> None:
    composed = "R\u00e9sum\u00e9.txt"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    document = await upload_ok(client, b"curriculum", decomposed)
    assert document["filename"] == composed
    download = await client.get(f"/download/{decomposed}")
    assert (download.status_code, download.content) == (200, b"curriculum")
    assert (await client.delete(f"/documents/{decomposed}")).status_code == 204
    assert_problem(await client.get(f"/documents/{document['id']}"), 404)


async def test_head_answers_what_get_answers_when_the_bytes_are_missing(
    client: Client, settings: Settings, container: Container
) -> None:
    document = await upload_ok(client, b"soon without content", "lost.txt")
    async with stores_of(settings, container) as (blobs, repository):
        await blobs.delete((await repository.get(DEFAULT_OWNER, document["id"])).blob_key)
    for url in (f"/documents/{document['id']}/content", "/download/lost.txt"):
        assert_problem(await client.get(url), 404)
        head = await client.head(url)
        assert (head.status_code, head.content) == (404, b"")
    assert (await client.get(f"/documents/{document['id']}")).status_code == 200


async def test_the_upload_that_commits_last_is_listed_first(settings: Settings) -> None:
    """Ids are minted when an upload commits, not when it starts (driven through the service: the
    test client cannot hold one request open while another runs)."""
    container = Container(settings=settings)
    try:
        service = await open_service(container)
        async with service.new_upload(DEFAULT_OWNER) as slow:
            await slow.stage(chunks(b"started first, committed last"))
            fast = await service.upload(
                DEFAULT_OWNER, chunks(b"started second"), NewDocument(filename="fast.txt")
            )
            late = await slow.commit(NewDocument(filename="slow.txt"))
        assert [document.id for document in (await service.list(DEFAULT_OWNER)).documents] == [
            late.id,
            fast.id,
        ]
        assert (await service.newest_named(DEFAULT_OWNER, "slow.txt")).id == late.id
        content = b"".join([chunk async for chunk in await service.open_content(late)])
        assert content == b"started first, committed last"
    finally:
        await close(container)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
