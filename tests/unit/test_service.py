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
    StorageFull,
    StoreRole,
    StoreUnavailable,
    UploadTooLarge,
)
from docpipe.domain.idempotency import IdempotencyClaim
from docpipe.domain.model import Document, DocumentChanges, NewDocument
from docpipe.domain.service import DocumentService

LIMIT = 1024
OWNER = "tenant-a"


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def describe(name: str = "a.txt", tags: tuple[str, ...] = ()) -> NewDocument:
    return NewDocument(filename=name, tags=tags)


A_TXT = describe()


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
    document = await service.upload(OWNER, stream(b"ab", b"c"), A_TXT)
    assert (document.size, document.sha256) == (3, hashlib.sha256(b"abc").hexdigest())
    assert document.content_type == "application/octet-stream"
    assert await service.get(OWNER, document.id) == document


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
        await service.upload(OWNER, stream(*chunks), A_TXT, expected_sha256=expected_sha256)
    assert blobs.keys() == set()
    assert (await service.list(OWNER)).documents == []


async def test_invalid_details_after_the_bytes_remove_the_blob(
    service: DocumentService, blobs: MemoryBlobStore
) -> None:
    async with service.new_upload(OWNER) as upload:
        await upload.stage(stream(b"abc"))
        assert len(blobs.keys()) == 1
        with pytest.raises(InvalidInput):
            await upload.commit(describe(".."))
    assert blobs.keys() == set()
    assert (await service.list(OWNER)).documents == []


async def test_leaving_an_upload_without_commit_discards_the_staged_bytes(
    service: DocumentService, blobs: MemoryBlobStore
) -> None:
    async with service.new_upload(OWNER) as upload:
        await upload.stage(stream(b"abc"))
    assert blobs.keys() == set()
    with pytest.raises(RuntimeError, match="the caller failed"):
        await _stage_then_fail(service)
    assert blobs.keys() == set()
    assert (await service.list(OWNER)).documents == []


async def _stage_then_fail(service: DocumentService) -> None:
    async with service.new_upload(OWNER) as upload:
        await upload.stage(stream(b"abc"))
        raise RuntimeError("the caller failed")


async def test_a_description_known_first_is_refused_before_any_byte_is_read(
    service: DocumentService, blobs: MemoryBlobStore
) -> None:
    async def never() -> AsyncIterator[bytes]:
        raise AssertionError("the body was read")
        yield b""

    with pytest.raises(InvalidInput):
        await service.upload(OWNER, never(), describe("a.txt", tags=("bad,tag",)))
    assert blobs.keys() == set()


async def test_commit_cleans_what_the_client_said(service: DocumentService) -> None:
    async with service.new_upload(OWNER) as upload:
        await upload.stage(stream(b"abc"))
        document = await upload.commit(
            NewDocument(
                filename="../../etc/Re\u0301sume\u0301.txt",
                content_type="application/octet-stream",
                tags=[" a", "b ", "a"],
                metadata={"k": "v"},
            )
        )
    assert (document.filename, document.tags, document.metadata) == (
        "R\u00e9sum\u00e9.txt",
        ("a", "b"),
        {"k": "v"},
    )
    assert document.content_type == "application/octet-stream"
    assert await service.get(OWNER, document.id) == document


async def test_the_id_is_minted_at_commit_so_the_last_committed_lists_first(
    service: DocumentService, blobs: MemoryBlobStore
) -> None:
    """Item 13: an upload that started first but committed last is the newest document."""
    async with service.new_upload(OWNER) as slow, service.new_upload(OWNER) as fast:
        await slow.stage(stream(b"started first"))
        await fast.stage(stream(b"started second"))
        first = await fast.commit(describe("fast.txt"))
        last = await slow.commit(describe("slow.txt"))
    listed = (await service.list(OWNER)).documents
    assert [document.filename for document in listed] == ["slow.txt", "fast.txt"]
    assert last.created_at >= first.created_at
    assert (await service.newest_named(OWNER, "slow.txt")).id == last.id
    assert blobs.keys() == {first.blob_key, last.blob_key}
    assert last.blob_key != last.id


async def test_content_is_read_through_the_blob_key(service: DocumentService) -> None:
    document = await service.upload(OWNER, stream(b"abc"), A_TXT)
    assert b"".join([chunk async for chunk in await service.open_content(document)]) == b"abc"


async def test_a_cancelled_upload_leaves_nothing(service: DocumentService, blobs: MemoryBlobStore) -> None:
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"abc"
        await gate.wait()
        yield b"def"

    task = asyncio.create_task(service.upload(OWNER, slow(), A_TXT))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert blobs.keys() == set()
    assert (await service.list(OWNER)).documents == []


async def test_update_merges_and_bumps_the_version(service: DocumentService) -> None:
    document = await service.upload(OWNER, stream(b"abc"), describe(tags=("a",)))
    updated = await service.update(OWNER, document.id, DocumentChanges(metadata={"k": "v"}))
    assert (updated.tags, updated.metadata, updated.version) == (("a",), {"k": "v"}, 2)
    assert updated.created_at == document.created_at


async def test_update_with_a_failing_precondition_changes_nothing(service: DocumentService) -> None:
    document = await service.upload(OWNER, stream(b"abc"), A_TXT)
    with pytest.raises(PreconditionFailed):
        await service.update(OWNER, document.id, DocumentChanges(filename="b"), lambda current: False)
    assert (await service.get(OWNER, document.id)).filename == "a.txt"


async def test_update_judges_the_precondition_on_the_document_it_changes(service: DocumentService) -> None:
    document = await service.upload(OWNER, stream(b"abc"), A_TXT)
    await service.update(OWNER, document.id, DocumentChanges(filename="b"))
    seen: list[int] = []

    def precondition(current: Document) -> bool:
        seen.append(current.version)
        return current.version == 1

    with pytest.raises(PreconditionFailed):
        await service.update(OWNER, document.id, DocumentChanges(filename="c"), precondition)
    assert seen == [2]
    assert (await service.get(OWNER, document.id)).filename == "b"


async def test_update_cleans_what_the_client_sent(service: DocumentService) -> None:
    document = await service.upload(OWNER, stream(b"abc"), A_TXT)
    updated = await service.update(
        OWNER, document.id, DocumentChanges(filename="x/../b.txt", tags=["t ", "t"])
    )
    assert (updated.filename, updated.tags) == ("b.txt", ("t",))
    for bad in (DocumentChanges(), DocumentChanges(filename=".."), DocumentChanges(metadata={"": "v"})):
        with pytest.raises(InvalidInput):
            await service.update(OWNER, document.id, bad)
    assert await service.get(OWNER, document.id) == updated


class _AlwaysConflicting(MemoryRepository):
    async def update(self, owner: str, document_id: str, change: Callable[[Document], Document]) -> Document:
        raise ConcurrentUpdate(document_id)


async def test_update_reports_a_conflict_the_repository_could_not_resolve(blobs: MemoryBlobStore) -> None:
    service = DocumentService(blobs, _AlwaysConflicting(), max_upload_bytes=LIMIT)
    document = await service.upload(OWNER, stream(b"abc"), A_TXT)
    with pytest.raises(ConcurrentUpdate):
        await service.update(OWNER, document.id, DocumentChanges(filename="b"))


async def test_delete_removes_metadata_and_bytes(service: DocumentService, blobs: MemoryBlobStore) -> None:
    document = await service.upload(OWNER, stream(b"abc"), A_TXT)
    await service.delete(OWNER, document.id)
    assert blobs.keys() == set()
    with pytest.raises(DocumentNotFound):
        await service.get(OWNER, document.id)


async def test_delete_by_filename_deletes_every_match_across_pages(service: DocumentService) -> None:
    for _ in range(150):
        await service.upload(OWNER, stream(b"x"), describe("same.txt"))
    keep = await service.upload(OWNER, stream(b"y"), describe("other.txt"))
    assert await service.delete_by_id_or_filename(OWNER, "same.txt") == 150
    assert [d.id for d in (await service.list(OWNER)).documents] == [keep.id]
    with pytest.raises(DocumentNotFound):
        await service.delete_by_id_or_filename(OWNER, "same.txt")


async def test_newest_named_picks_the_latest(service: DocumentService) -> None:
    await service.upload(OWNER, stream(b"1"), describe("r.txt"))
    latest = await service.upload(OWNER, stream(b"2"), describe("r.txt"))
    assert (await service.newest_named(OWNER, "r.txt")).id == latest.id


@pytest.fixture
def tiny_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages examine ``limit + 1`` entries at most, so that filtered listings come in short pages."""
    monkeypatch.setattr(listing, "EXAMINED_PER_PAGE", 1)


@pytest.mark.usefixtures("tiny_budget")
async def test_a_short_page_carries_a_cursor_to_the_matches_beyond_it(service: DocumentService) -> None:
    wanted = await service.upload(OWNER, stream(b"1"), describe("a.txt", tags=("t",)))
    for _ in range(4):
        await service.upload(OWNER, stream(b"2"), describe("b.txt"))
    first = await service.list(OWNER, limit=1, tag="t")
    assert first.documents == []
    assert first.next_cursor is not None
    listed: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await service.list(OWNER, limit=1, tag="t", cursor=cursor)
        listed += [document.id for document in page.documents]
        if (cursor := page.next_cursor) is None:
            break
    assert listed == [wanted.id]


@pytest.mark.usefixtures("tiny_budget")
async def test_names_are_found_past_short_pages(service: DocumentService) -> None:
    old = [await service.upload(OWNER, stream(b"1"), describe("old.txt")) for _ in range(2)]
    for _ in range(4):
        await service.upload(OWNER, stream(b"2"), describe("new.txt"))
    assert (await service.newest_named(OWNER, "old.txt")).id == old[-1].id
    assert await service.delete_by_id_or_filename(OWNER, "old.txt") == 2
    with pytest.raises(DocumentNotFound):
        await service.newest_named(OWNER, "old.txt")


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

    async def get(self, owner: str, document_id: str) -> Document:
        if not self._reads_work:
            raise StoreUnavailable(StoreRole.REPOSITORY, "down")
        return await super().get(owner, document_id)


async def test_an_insert_whose_reply_was_lost_still_succeeds(blobs: MemoryBlobStore) -> None:
    service = DocumentService(blobs, _LostReply(), max_upload_bytes=LIMIT)
    document = await service.upload(OWNER, stream(b"abc"), A_TXT)
    assert await service.get(OWNER, document.id) == document
    assert blobs.keys() == {document.blob_key}


class _Full(MemoryRepository):
    async def add(self, document: Document, claim: IdempotencyClaim | None = None) -> None:
        raise StorageFull(StoreRole.REPOSITORY, "full")


async def test_a_refused_insert_deletes_the_blob(blobs: MemoryBlobStore) -> None:
    service = DocumentService(blobs, _Full(), max_upload_bytes=LIMIT)
    with pytest.raises(StorageFull):
        await service.upload(OWNER, stream(b"abc"), A_TXT)
    assert blobs.keys() == set()


async def test_an_unanswered_insert_keeps_the_blob_even_when_a_read_says_it_is_absent(
    blobs: MemoryBlobStore,
) -> None:
    """The write may still be applied after that read (DynamoDB finishes a request whose client gave
    up): deleting the bytes then would leave a listed document without content. fsck judges them."""
    service = DocumentService(blobs, _Down(reads_work=True), max_upload_bytes=LIMIT)
    with pytest.raises(StoreUnavailable):
        await service.upload(OWNER, stream(b"abc"), A_TXT)
    assert len(blobs.keys()) == 1


async def test_an_insert_of_unknown_outcome_keeps_the_blob_for_fsck(blobs: MemoryBlobStore) -> None:
    service = DocumentService(blobs, _Down(reads_work=False), max_upload_bytes=LIMIT)
    with pytest.raises(StoreUnavailable):
        await service.upload(OWNER, stream(b"abc"), A_TXT)
    assert len(blobs.keys()) == 1


class _BlobsDown(MemoryBlobStore):
    async def delete(self, key: str) -> None:
        raise StoreUnavailable(StoreRole.BLOB_STORE, "down")


async def test_delete_succeeds_once_the_metadata_is_gone_even_if_the_bytes_stay() -> None:
    repository = MemoryRepository()
    service = DocumentService(_BlobsDown(), repository, max_upload_bytes=LIMIT)
    document = await service.upload(OWNER, stream(b"abc"), A_TXT)
    await service.delete(OWNER, document.id)
    with pytest.raises(DocumentNotFound):
        await service.get(OWNER, document.id)


async def test_a_retry_while_the_first_upload_is_in_flight_is_refused(service: DocumentService) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"abc"
        started.set()
        await gate.wait()

    first = asyncio.create_task(service.upload(OWNER, slow(), A_TXT, idempotency_key="k"))
    await started.wait()
    with pytest.raises(IdempotencyKeyInUse):
        await service.upload(OWNER, stream(b"abc"), A_TXT, idempotency_key="k")
    gate.set()
    document = await first
    assert await service.upload(OWNER, stream(b"abc"), A_TXT, idempotency_key="k") == document
    assert [d.id for d in (await service.list(OWNER)).documents] == [document.id]


async def test_a_retry_is_hashed_and_not_stored(service: DocumentService, blobs: MemoryBlobStore) -> None:
    document = await service.upload(OWNER, stream(b"abc"), A_TXT, idempotency_key="k")
    assert await service.upload(OWNER, stream(b"a", b"bc"), A_TXT, idempotency_key="k") == document
    with pytest.raises(IdempotencyKeyReused):
        await service.upload(OWNER, stream(b"abd"), A_TXT, idempotency_key="k")
    assert blobs.keys() == {document.blob_key}
