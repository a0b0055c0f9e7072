"""fsck over the in-memory fakes, with a clock the tests move forward past the grace period."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

import msgspec
import pytest

from docpipe.adapters.memory import MemoryBlobStore, MemoryRepository
from docpipe.adapters.memory_search import MemorySearchIndex
from docpipe.domain import fsck as fsck_module
from docpipe.domain.errors import DocumentNotFound
from docpipe.domain.fsck import DEFAULT_GRACE, FindingKind, Fsck, FsckReport
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import (
    Document,
    ListQuery,
    NewDocument,
    Page,
    new_blob_key,
    new_document_id,
    utc_now,
)
from docpipe.domain.service import DocumentService

ORPHAN, PARTIAL, MISSING = FindingKind.ORPHAN_BLOB, FindingKind.STALE_PARTIAL, FindingKind.MISSING_BLOB
SIZE, DIGEST = FindingKind.SIZE_MISMATCH, FindingKind.DIGEST_MISMATCH
PAST_GRACE = DEFAULT_GRACE + timedelta(seconds=1)
OWNER = "tenant-a"


class Clock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta = PAST_GRACE) -> None:
        self.now += by


class HookedRepository(MemoryRepository):
    """Runs ``after_list`` once, right after fsck has read the metadata: a write racing the check."""

    def __init__(self) -> None:
        super().__init__()
        self.after_list: Callable[[], Awaitable[None]] | None = None

    async def list(self, owner: str, query: ListQuery) -> Page:
        page = await super().list(owner, query)
        hook, self.after_list = self.after_list, None
        if hook is not None:
            await hook()
        return page


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def blobs(clock: Clock) -> MemoryBlobStore:
    return MemoryBlobStore(clock)


@pytest.fixture
def repository() -> HookedRepository:
    return HookedRepository()


@pytest.fixture
def service(blobs: MemoryBlobStore, repository: HookedRepository) -> DocumentService:
    return DocumentService(blobs, repository, max_upload_bytes=1024)


@pytest.fixture
def fsck(blobs: MemoryBlobStore, repository: HookedRepository, clock: Clock) -> Fsck:
    return Fsck(blobs, repository, clock=clock)


@pytest.fixture
async def stall(blobs: MemoryBlobStore) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Start puts that send a few bytes and then hang, as a crashed upload's leftovers would."""
    puts: list[asyncio.Task[int]] = []

    async def start() -> str:
        key = new_document_id()
        sent = asyncio.Event()

        async def hanging() -> AsyncIterator[bytes]:
            yield b"half"
            sent.set()
            await asyncio.Event().wait()
            yield b"never"

        puts.append(asyncio.create_task(blobs.put(key, hanging())))
        await sent.wait()
        return key

    yield start
    for put in puts:
        put.cancel()
    await asyncio.gather(*puts, return_exceptions=True)


async def upload(service: DocumentService, content: bytes = b"content", owner: str = OWNER) -> Document:
    return await service.upload(owner, stream(content), NewDocument(filename="a.txt"))


def found(report: FsckReport) -> dict[FindingKind, int]:
    return dict(report.counts())


async def test_consistent_stores_are_clean(service: DocumentService, fsck: Fsck, clock: Clock) -> None:
    for _ in range(3):
        await upload(service)
    clock.advance()
    report = await fsck.run(verify_content=True)
    assert report.findings == []
    assert (report.documents, report.entries, report.recent, report.ignored) == (3, 3, 0, 0)
    assert report.clean


async def test_every_kind_of_damage_is_found_and_a_dry_run_changes_nothing(
    service: DocumentService,
    blobs: MemoryBlobStore,
    repository: HookedRepository,
    fsck: Fsck,
    clock: Clock,
    stall: Callable[[], Awaitable[str]],
) -> None:
    await upload(service)
    orphan = new_document_id()
    await blobs.put(orphan, stream(b"no document"))
    partial = await stall()
    missing = await upload(service)
    await blobs.delete(missing.blob_key)
    resized = await upload(service, b"content")
    await blobs.put(resized.blob_key, stream(b"longer content"))
    altered = await upload(service, b"content")
    await blobs.put(altered.blob_key, stream(b"CONTENT"))
    clock.advance()
    keys_before = blobs.keys()

    report = await fsck.run(verify_content=True)

    assert {(finding.kind, finding.key) for finding in report.findings} == {
        (ORPHAN, orphan),
        (PARTIAL, partial),
        (MISSING, missing.id),
        (SIZE, resized.id),
        (DIGEST, altered.id),
    }
    assert not any(finding.fixed for finding in report.findings)
    assert not report.clean
    assert blobs.keys() == keys_before
    assert await repository.get(OWNER, missing.id) == missing


async def test_content_is_only_hashed_when_asked(
    service: DocumentService, blobs: MemoryBlobStore, fsck: Fsck
) -> None:
    altered = await upload(service, b"content")
    await blobs.put(altered.blob_key, stream(b"CONTENT"))
    assert (await fsck.run()).findings == []
    assert found(await fsck.run(verify_content=True)) == {DIGEST: 1}


async def test_leftovers_younger_than_the_grace_period_are_left_alone(
    blobs: MemoryBlobStore,
    repository: HookedRepository,
    clock: Clock,
    stall: Callable[[], Awaitable[str]],
) -> None:
    await blobs.put(new_document_id(), stream(b"maybe an upload about to commit"))
    await stall()
    clock.advance(timedelta(minutes=5))

    report = await Fsck(blobs, repository, clock=clock).run(fix=True)
    assert (report.findings, report.recent) == ([], 2)
    assert len([entry async for entry in blobs.inventory()]) == 2

    report = await Fsck(blobs, repository, grace=timedelta(minutes=4), clock=clock).run()
    assert found(report) == {ORPHAN: 1, PARTIAL: 1}


async def test_fix_repairs_leftovers_and_lost_documents_and_a_second_run_is_clean(
    service: DocumentService,
    blobs: MemoryBlobStore,
    repository: HookedRepository,
    fsck: Fsck,
    clock: Clock,
    stall: Callable[[], Awaitable[str]],
) -> None:
    healthy = await upload(service)
    await blobs.put(new_document_id(), stream(b"no document"))
    await stall()
    missing = await upload(service)
    await blobs.delete(missing.blob_key)
    clock.advance()

    report = await fsck.run(fix=True, verify_content=True)

    assert found(report) == dict(report.fixed_counts()) == {ORPHAN: 1, PARTIAL: 1, MISSING: 1}
    assert report.clean
    assert report.refusal is None
    with pytest.raises(DocumentNotFound):
        await repository.get(OWNER, missing.id)
    assert [entry.key async for entry in blobs.inventory()] == [healthy.blob_key]
    assert await repository.get(OWNER, healthy.id) == healthy
    second = await fsck.run(verify_content=True)
    assert (second.findings, second.documents, second.entries) == ([], 1, 1)


async def test_mismatches_are_reported_but_never_repaired(
    service: DocumentService, blobs: MemoryBlobStore, fsck: Fsck, clock: Clock
) -> None:
    resized = await upload(service)
    await blobs.put(resized.blob_key, stream(b"longer content"))
    altered = await upload(service, b"content")
    await blobs.put(altered.blob_key, stream(b"CONTENT"))
    clock.advance()

    report = await fsck.run(fix=True, verify_content=True)

    assert found(report) == {SIZE: 1, DIGEST: 1}
    assert report.fixed_counts() == {}
    assert not report.clean
    assert blobs.keys() == {resized.blob_key, altered.blob_key}


async def test_nothing_is_deleted_when_the_stores_share_no_document(
    service: DocumentService,
    repository: HookedRepository,
    clock: Clock,
    stall: Callable[[], Awaitable[str]],
) -> None:
    """As when a typo in a setting points at a new, empty bucket: every document looks lost."""
    documents = [await upload(service) for _ in range(3)]
    other_blobs = MemoryBlobStore(clock)
    await other_blobs.put(new_document_id(), stream(b"someone else's"))
    clock.advance()

    report = await Fsck(other_blobs, repository, clock=clock).run(fix=True)

    assert found(report) == {MISSING: 3, ORPHAN: 1}
    assert report.fixed_counts() == {}
    assert report.refusal is not None
    assert "nothing was deleted" in report.refusal
    for document in documents:
        assert await repository.get(OWNER, document.id) == document
    assert len(other_blobs.keys()) == 1


async def test_keys_docpipe_never_issues_are_ignored(
    blobs: MemoryBlobStore, fsck: Fsck, clock: Clock
) -> None:
    foreign = {"backup-2024.tar", f"{OWNER}/backup-2024.tar", f"not an owner!/{new_document_id()}"}
    for key in foreign:
        await blobs.put(key, stream(b"not ours"))
    clock.advance()
    report = await fsck.run(fix=True)
    assert (report.findings, report.ignored) == ([], 3)
    assert blobs.keys() == foreign


async def test_every_owners_documents_and_blobs_are_checked_and_repaired(
    service: DocumentService, blobs: MemoryBlobStore, repository: HookedRepository, fsck: Fsck, clock: Clock
) -> None:
    """Documents and blobs of several owners, and of keys of both forms: a document from before keys
    carried their owner has its bare id as its key."""
    mine = await upload(service)
    theirs = await upload(service, owner="tenant-b")
    legacy_id = new_document_id()
    legacy = msgspec.structs.replace(mine, id=legacy_id, owner=DEFAULT_OWNER, blob_key=legacy_id)
    await repository.add(legacy)
    await blobs.put(legacy_id, stream(b"content"))
    their_missing = await upload(service, owner="tenant-b")
    await blobs.delete(their_missing.blob_key)
    orphans = {new_blob_key("tenant-b"), new_document_id()}
    for orphan in orphans:
        await blobs.put(orphan, stream(b"no document"))
    clock.advance()

    report = await fsck.run(fix=True, verify_content=True)

    assert {(finding.kind, finding.key, finding.fixed) for finding in report.findings} == {
        (MISSING, their_missing.id, True),
        *((ORPHAN, orphan, True) for orphan in orphans),
    }
    assert (report.documents, report.entries, report.ignored) == (4, 5, 0)
    with pytest.raises(DocumentNotFound):
        await repository.get("tenant-b", their_missing.id)
    for document in (mine, theirs, legacy):
        assert await repository.get(document.owner, document.id) == document
    assert blobs.keys() == {mine.blob_key, theirs.blob_key, legacy_id}
    assert (await fsck.run(verify_content=True)).findings == []


async def test_an_upload_committing_during_the_check_is_no_orphan(
    service: DocumentService, blobs: MemoryBlobStore, repository: HookedRepository, fsck: Fsck, clock: Clock
) -> None:
    """Its blob was written long ago (a slow client), its metadata lands after fsck read the metadata,
    with an id minted then."""
    existing = await upload(service)
    late_key = new_document_id()
    await blobs.put(late_key, stream(b"x"))
    clock.advance()

    async def commit() -> None:
        await repository.add(msgspec.structs.replace(existing, id=new_document_id(), blob_key=late_key))

    repository.after_list = commit
    report = await fsck.run(fix=True)
    assert report.findings == []
    assert blobs.keys() == {existing.blob_key, late_key}


async def test_blobs_are_matched_by_blob_key_not_by_id(
    service: DocumentService, blobs: MemoryBlobStore, repository: HookedRepository, fsck: Fsck, clock: Clock
) -> None:
    """A blob under a document's id is an orphan when the document's blob key is another; a document
    stored before blob keys (its blob key is its id) is whole."""
    document = await upload(service)
    await blobs.put(document.id, stream(b"content"))
    legacy_id = new_document_id()
    await repository.add(msgspec.structs.replace(document, id=legacy_id, blob_key=legacy_id))
    await blobs.put(legacy_id, stream(b"content"))
    clock.advance()

    report = await fsck.run(verify_content=True)
    assert {(finding.kind, finding.key) for finding in report.findings} == {(ORPHAN, document.id)}
    assert (report.documents, report.entries) == (2, 3)


async def test_a_document_deleted_during_the_check_is_not_missing(
    service: DocumentService, repository: HookedRepository, fsck: Fsck, clock: Clock
) -> None:
    kept = await upload(service)
    deleted = await upload(service)
    clock.advance()

    async def delete() -> None:
        await service.delete(OWNER, deleted.id)

    repository.after_list = delete
    report = await fsck.run(fix=True)
    assert report.findings == []
    assert (report.documents, report.entries) == (2, 1)
    assert await repository.get(OWNER, kept.id) == kept


async def test_metadata_is_read_page_after_page(
    service: DocumentService, fsck: Fsck, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsck_module, "PAGE_SIZE", 2)
    for _ in range(5):
        await upload(service)
    report = await fsck.run()
    assert (report.findings, report.documents, report.entries) == ([], 5, 5)


async def test_an_upload_committing_after_the_first_confirmation_keeps_its_blob(
    service: DocumentService, blobs: MemoryBlobStore, repository: HookedRepository, fsck: Fsck, clock: Clock
) -> None:
    """The commit lands after fsck confirmed its orphan candidates against the metadata once (on S3 an
    object completed by a multipart upload is dated from the upload's start, so a long upload's blob
    looks old at once): the repair confirms them again and leaves the blob alone."""
    existing = await upload(service)
    late_key = new_document_id()
    await blobs.put(late_key, stream(b"x"))
    clock.advance()

    async def commit() -> None:
        await repository.add(msgspec.structs.replace(existing, id=new_document_id(), blob_key=late_key))

    async def commit_after_the_next_listing() -> None:
        repository.after_list = commit

    repository.after_list = commit_after_the_next_listing
    await fsck.run(fix=True)
    assert blobs.keys() == {existing.blob_key, late_key}


class _DamagedIndex(MemorySearchIndex):
    """A search index that reports damage until it is rebuilt."""

    def __init__(self) -> None:
        super().__init__()
        self.rebuilt = 0

    async def verify(self) -> list[str]:
        return [] if self.rebuilt else ["the full-text index 'names' is damaged: malformed"]

    async def rebuild(self) -> None:
        self.rebuilt += 1


async def test_a_damaged_search_index_is_reported_and_rebuilt_by_a_fix() -> None:
    index = _DamagedIndex()
    check = Fsck(MemoryBlobStore(), MemoryRepository(), index=index)
    dry = await check.run()
    assert [(finding.kind, finding.fixed) for finding in dry.findings] == [(FindingKind.SEARCH_INDEX, False)]
    assert index.rebuilt == 0
    fixed = await check.run(fix=True)
    assert [(finding.kind, finding.fixed) for finding in fixed.findings] == [(FindingKind.SEARCH_INDEX, True)]
    assert (await check.run()).findings == []
