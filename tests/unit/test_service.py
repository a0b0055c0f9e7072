"""The use cases against the in-memory fakes: fast, and what a user would observe through the API."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable

import pytest

from docpipe.adapters.memory import MemoryBlobStore, MemoryRepository
from docpipe.domain import listing
from docpipe.domain.errors import (
    ChecksumMismatch,
    ConcurrentUpdate,
    DocumentNotFound,
    EmptyUpload,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidInput,
    PreconditionFailed,
    StoreRole,
    StoreUnavailable,
    UploadTooLarge,
)
from docpipe.domain.idempotency import IdempotencyClaim
from docpipe.domain.model import Document, DocumentChanges, NewDocument
from docpipe.domain.service import DocumentService

LIMIT = 1024


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def describe(name: str = "a.txt", tags: tuple[str, ...] = ()) -> NewDocument:
    return NewDocument(filename=name, tags=tags)


@pytest.fixture
def blobs() -> MemoryBlobStore:
    return MemoryBlobStore()


@pytest.fixture
def repository() -> MemoryRepository:
    return MemoryRepository()


@pytest.fixture
def service(blobs: MemoryBlobStore, repository: MemoryRepository) -> DocumentService:
    return DocumentService(blobs, repository, max_upload_bytes=LIMIT)


async def test_upload_records_size_digest_and_default_type(service: DocumentService) -> None:
    document = await service.upload(stream(b"ab", b"c"), describe)
    assert (document.size, document.sha256) == (3, hashlib.sha256(b"abc").hexdigest())
    assert document.content_type == "application/octet-stream"
    assert await service.get(document.id) == document


@pytest.mark.parametrize(
    ("chunks", "expected_sha256", "error"),
    [
        ((b"x" * (LIMIT + 1),), None, UploadTooLarge),
        ((b"",), None, EmptyUpload),
        ((b"abc",), hashlib.sha256(b"abd").hexdigest(), ChecksumMismatch),
    ],
)
async def test_rejected_uploads_leave_no_blob_and_no_document(
    service: DocumentService,
    blobs: MemoryBlobStore,
    chunks: tuple[bytes, ...],
    expected_sha256: str | None,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await service.upload(stream(*chunks), describe, expected_sha256=expected_sha256)
    assert blobs.keys() == set()
    assert (await service.list()).documents == []


async def test_invalid_details_after_the_bytes_remove_the_blob(
    service: DocumentService, blobs: MemoryBlobStore
) -> None:
    def bad() -> NewDocument:
        raise InvalidInput("no name")

    with pytest.raises(InvalidInput):
        await service.upload(stream(b"abc"), bad)
    assert blobs.keys() == set()


async def test_a_cancelled_upload_leaves_nothing(service: DocumentService, blobs: MemoryBlobStore) -> None:
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"abc"
        await gate.wait()
        yield b"def"

    task = asyncio.create_task(service.upload(slow(), describe))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert blobs.keys() == set()
    assert (await service.list()).documents == []


async def test_update_merges_and_bumps_the_version(service: DocumentService) -> None:
    document = await service.upload(stream(b"abc"), lambda: describe(tags=("a",)))
    updated = await service.update(document.id, DocumentChanges(metadata={"k": "v"}))
    assert (updated.tags, updated.metadata, updated.version) == (("a",), {"k": "v"}, 2)
    assert updated.created_at == document.created_at


async def test_update_with_a_failing_precondition_changes_nothing(service: DocumentService) -> None:
    document = await service.upload(stream(b"abc"), describe)
    with pytest.raises(PreconditionFailed):
        await service.update(document.id, DocumentChanges(filename="b"), lambda current: False)
    assert (await service.get(document.id)).filename == "a.txt"


async def test_update_judges_the_precondition_on_the_document_it_changes(service: DocumentService) -> None:
    document = await service.upload(stream(b"abc"), describe)
    await service.update(document.id, DocumentChanges(filename="b"))
    seen: list[int] = []

    def precondition(current: Document) -> bool:
        seen.append(current.version)
        return current.version == 1

    with pytest.raises(PreconditionFailed):
        await service.update(document.id, DocumentChanges(filename="c"), precondition)
    assert seen == [2]
    assert (await service.get(document.id)).filename == "b"


class _AlwaysConflicting(MemoryRepository):
    async def update(self, document_id: str, change: Callable[[Document], Document]) -> Document:
        raise ConcurrentUpdate(document_id)


async def test_update_reports_a_conflict_the_repository_could_not_resolve(blobs: MemoryBlobStore) -> None:
    service = DocumentService(blobs, _AlwaysConflicting(), max_upload_bytes=LIMIT)
    document = await service.upload(stream(b"abc"), describe)
    with pytest.raises(ConcurrentUpdate):
        await service.update(document.id, DocumentChanges(filename="b"))


async def test_delete_removes_metadata_and_bytes(service: DocumentService, blobs: MemoryBlobStore) -> None:
    document = await service.upload(stream(b"abc"), describe)
    await service.delete(document.id)
    assert blobs.keys() == set()
    with pytest.raises(DocumentNotFound):
        await service.get(document.id)


async def test_delete_by_filename_deletes_every_match_across_pages(service: DocumentService) -> None:
    for _ in range(150):
        await service.upload(stream(b"x"), lambda: describe("same.txt"))
    keep = await service.upload(stream(b"y"), lambda: describe("other.txt"))
    assert await service.delete_by_id_or_filename("same.txt") == 150
    assert [d.id for d in (await service.list()).documents] == [keep.id]
    with pytest.raises(DocumentNotFound):
        await service.delete_by_id_or_filename("same.txt")


async def test_newest_named_picks_the_latest(service: DocumentService) -> None:
    await service.upload(stream(b"1"), lambda: describe("r.txt"))
    latest = await service.upload(stream(b"2"), lambda: describe("r.txt"))
    assert (await service.newest_named("r.txt")).id == latest.id


@pytest.fixture
def tiny_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages examine ``limit + 1`` entries at most, so that filtered listings come in short pages."""
    monkeypatch.setattr(listing, "EXAMINED_PER_PAGE", 1)


@pytest.mark.usefixtures("tiny_budget")
async def test_a_short_page_carries_a_cursor_to_the_matches_beyond_it(service: DocumentService) -> None:
    wanted = await service.upload(stream(b"1"), lambda: describe("a.txt", tags=("t",)))
    for _ in range(4):
        await service.upload(stream(b"2"), lambda: describe("b.txt"))
    first = await service.list(limit=1, tag="t")
    assert first.documents == []
    assert first.next_cursor is not None
    listed: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await service.list(limit=1, tag="t", cursor=cursor)
        listed += [document.id for document in page.documents]
        if (cursor := page.next_cursor) is None:
            break
    assert listed == [wanted.id]


@pytest.mark.usefixtures("tiny_budget")
async def test_names_are_found_past_short_pages(service: DocumentService) -> None:
    old = [await service.upload(stream(b"1"), lambda: describe("old.txt")) for _ in range(2)]
    for _ in range(4):
        await service.upload(stream(b"2"), lambda: describe("new.txt"))
    assert (await service.newest_named("old.txt")).id == old[-1].id
    assert await service.delete_by_id_or_filename("old.txt") == 2
    with pytest.raises(DocumentNotFound):
        await service.newest_named("old.txt")


class _LostReply(MemoryRepository):
    """Applies the insert, then fails as if the reply never arrived."""

    async def add(self, document: Document, claim: IdempotencyClaim | None = None) -> None:
        await super().add(document, claim)
        raise StoreUnavailable(StoreRole.REPOSITORY, "reply lost")


class _Down(MemoryRepository):
    def __init__(self, *, reads_work: bool) -> None:
        super().__init__()
        self._reads_work = reads_work

    async def add(self, document: Document, claim: IdempotencyClaim | None = None) -> None:
        raise StoreUnavailable(StoreRole.REPOSITORY, "down")

    async def get(self, document_id: str) -> Document:
        if not self._reads_work:
            raise StoreUnavailable(StoreRole.REPOSITORY, "down")
        return await super().get(document_id)


async def test_an_insert_whose_reply_was_lost_still_succeeds(blobs: MemoryBlobStore) -> None:
    service = DocumentService(blobs, _LostReply(), max_upload_bytes=LIMIT)
    document = await service.upload(stream(b"abc"), describe)
    assert await service.get(document.id) == document
    assert blobs.keys() == {document.id}


async def test_a_refused_insert_deletes_the_blob(blobs: MemoryBlobStore) -> None:
    service = DocumentService(blobs, _Down(reads_work=True), max_upload_bytes=LIMIT)
    with pytest.raises(StoreUnavailable):
        await service.upload(stream(b"abc"), describe)
    assert blobs.keys() == set()


async def test_an_insert_of_unknown_outcome_keeps_the_blob_for_fsck(blobs: MemoryBlobStore) -> None:
    service = DocumentService(blobs, _Down(reads_work=False), max_upload_bytes=LIMIT)
    with pytest.raises(StoreUnavailable):
        await service.upload(stream(b"abc"), describe)
    assert len(blobs.keys()) == 1


class _BlobsDown(MemoryBlobStore):
    async def delete(self, key: str) -> None:
        raise StoreUnavailable(StoreRole.BLOB_STORE, "down")


async def test_delete_succeeds_once_the_metadata_is_gone_even_if_the_bytes_stay() -> None:
    repository = MemoryRepository()
    service = DocumentService(_BlobsDown(), repository, max_upload_bytes=LIMIT)
    document = await service.upload(stream(b"abc"), describe)
    await service.delete(document.id)
    with pytest.raises(DocumentNotFound):
        await service.get(document.id)


async def test_a_retry_while_the_first_upload_is_in_flight_is_refused(service: DocumentService) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"abc"
        started.set()
        await gate.wait()

    first = asyncio.create_task(service.upload(slow(), describe, idempotency_key="k"))
    await started.wait()
    with pytest.raises(IdempotencyKeyInUse):
        await service.upload(stream(b"abc"), describe, idempotency_key="k")
    gate.set()
    document = await first
    assert await service.upload(stream(b"abc"), describe, idempotency_key="k") == document
    assert [d.id for d in (await service.list()).documents] == [document.id]


async def test_a_retry_is_hashed_and_not_stored(service: DocumentService, blobs: MemoryBlobStore) -> None:
    document = await service.upload(stream(b"abc"), describe, idempotency_key="k")
    assert await service.upload(stream(b"a", b"bc"), describe, idempotency_key="k") == document
    with pytest.raises(IdempotencyKeyReused):
        await service.upload(stream(b"abd"), describe, idempotency_key="k")
    assert blobs.keys() == {document.id}
