"""ResumableUploads over the in-memory stores: owners, processes that did not see every byte, crashes
between the steps of a completion, expiry, and fsck's view of unfinished uploads."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from docpipe.adapters.memory import MemoryBlobStore, MemoryRepository, MemoryUploadRepository
from docpipe.domain.errors import (
    StoreRole,
    StoreUnavailable,
    UploadBusy,
    UploadExpired,
    UploadNotFound,
)
from docpipe.domain.fsck import FindingKind, Fsck
from docpipe.domain.idempotency import IdempotencyClaim
from docpipe.domain.model import Document, ListQuery, utc_now
from docpipe.domain.service import DocumentService
from docpipe.domain.uploads.service import ResumableUploads
from docpipe.domain.uploads.session import LEASE, new_lease


class Clock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


class FlakyRepository(MemoryRepository):
    """Refuses inserts while ``down``, as a repository out of reach does."""

    down = False

    async def add(self, document: Document, claim: IdempotencyClaim | None = None) -> None:
        if self.down:
            raise StoreUnavailable(StoreRole.REPOSITORY, "down")
        await super().add(document, claim)


class CrashingSessions(MemoryUploadRepository):
    """Dies before marking an upload complete while ``crash`` is set: the server died there."""

    crash = False

    async def complete(
        self, owner: str, upload_id: str, token: str, document_id: str, expires_at: datetime
    ) -> None:
        if self.crash:
            raise StoreUnavailable(StoreRole.REPOSITORY, "died")
        await super().complete(owner, upload_id, token, document_id, expires_at)


class Stores:
    def __init__(self) -> None:
        self.clock = Clock()
        self.blobs = MemoryBlobStore(self.clock)
        self.repository = FlakyRepository()
        self.sessions = CrashingSessions()
        self.documents = DocumentService(self.blobs, self.repository, max_upload_bytes=1 << 20)

    def process(self) -> ResumableUploads:
        """A process serving uploads over these stores, with running hashes of its own."""
        return ResumableUploads(
            self.documents, self.sessions, self.blobs, expiry=timedelta(hours=1), clock=self.clock
        )


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@pytest.fixture
def stores() -> Stores:
    return Stores()


async def documents_of(stores: Stores, owner: str) -> list[Document]:
    return (await stores.repository.list(owner, ListQuery())).documents


async def test_another_owners_upload_is_as_if_missing(stores: Stores) -> None:
    uploads = stores.process()
    session = await uploads.create("alice", 4, {"filename": "a.txt"})
    for call in (
        uploads.get("bob", session.id),
        uploads.write("bob", session.id, 0, stream(b"abcd")),
        uploads.terminate("bob", session.id),
    ):
        with pytest.raises(UploadNotFound):
            await call
    assert (await uploads.get("alice", session.id)).offset == 0


async def test_a_process_that_resumes_an_upload_re_derives_its_sha256(stores: Stores) -> None:
    first, second = stores.process(), stores.process()
    session = await first.create("alice", 9, {"filename": "a.txt"})
    await first.write("alice", session.id, 0, stream(b"abc"))
    await second.write("alice", session.id, 3, stream(b"def"))
    done = await first.write("alice", session.id, 6, stream(b"ghi"))
    assert done.document_id is not None
    document = await stores.documents.get("alice", done.document_id)
    assert document.sha256 == hashlib.sha256(b"abcdefghi").hexdigest()
    assert (document.filename, document.size, document.blob_key) == ("a.txt", 9, session.blob_key)


async def test_a_completion_whose_commit_failed_is_taken_up_by_the_next_head(stores: Stores) -> None:
    uploads = stores.process()
    session = await uploads.create("alice", 4, {"filename": "a.txt"})
    stores.repository.down = True
    with pytest.raises(StoreUnavailable):
        await uploads.write("alice", session.id, 0, stream(b"abcd"))
    stores.repository.down = False
    assert await documents_of(stores, "alice") == []
    resumed = await stores.process().get("alice", session.id)
    assert resumed.document_id is not None
    assert [document.id for document in await documents_of(stores, "alice")] == [resumed.document_id]


async def test_a_completion_recorded_but_not_marked_makes_no_second_document(stores: Stores) -> None:
    """The document was committed, then the server died before the session said so: the completion
    taken up again finds the first document through the upload's Idempotency-Key."""
    uploads = stores.process()
    session = await uploads.create("alice", 4, {"filename": "a.txt"})
    stores.sessions.crash = True
    with pytest.raises(StoreUnavailable):
        await uploads.write("alice", session.id, 0, stream(b"abcd"))
    stores.sessions.crash = False
    [first] = await documents_of(stores, "alice")
    resumed = await stores.process().get("alice", session.id)
    assert resumed.document_id == first.id
    assert len(await documents_of(stores, "alice")) == 1


async def test_a_write_racing_a_held_lease_is_busy(stores: Stores) -> None:
    uploads = stores.process()
    session = await uploads.create("alice", 8, {"filename": "a.txt"})
    await stores.sessions.take_lease("alice", session.id, 0, new_lease(stores.clock.now), stores.clock.now)
    with pytest.raises(UploadBusy):
        await uploads.write("alice", session.id, 0, stream(b"abcd"))
    stores.clock.now += LEASE
    assert (await uploads.write("alice", session.id, 0, stream(b"abcd"))).offset == 4


async def test_an_upload_expires_and_the_sweep_removes_it_with_its_bytes(stores: Stores) -> None:
    uploads = stores.process()
    session = await uploads.create("alice", 8, {"filename": "a.txt"})
    await uploads.write("alice", session.id, 0, stream(b"abcd"))
    stores.clock.now += timedelta(minutes=59)
    assert (await uploads.get("alice", session.id)).offset == 4  # each write moves the expiry on
    stores.clock.now += timedelta(hours=1)
    with pytest.raises(UploadExpired):
        await uploads.write("alice", session.id, 4, stream(b"efgh"))
    assert await uploads.sweep() == 1
    with pytest.raises(UploadNotFound):
        await uploads.get("alice", session.id)
    assert [entry async for entry in stores.blobs.inventory()] == []


async def test_a_completed_upload_expires_and_its_document_stays(stores: Stores) -> None:
    uploads = stores.process()
    session = await uploads.create("alice", 4, {"filename": "a.txt"})
    done = await uploads.write("alice", session.id, 0, stream(b"abcd"))
    stores.clock.now += timedelta(hours=2)
    assert await uploads.sweep() == 1
    assert done.document_id is not None
    assert await stores.blobs.exists((await stores.documents.get("alice", done.document_id)).blob_key)


async def test_fsck_leaves_a_live_uploads_bytes_and_reclaims_an_expired_ones(stores: Stores) -> None:
    uploads = stores.process()
    live = await uploads.create("alice", 8, {"filename": "live.txt"})
    await uploads.write("alice", live.id, 0, stream(b"abcd"))
    stale = await uploads.create("alice", 8, {"filename": "stale.txt"})
    await uploads.write("alice", stale.id, 0, stream(b"abcd"))
    await stores.sessions.delete("alice", stale.id, stores.clock.now)  # as if its session were lost
    stores.clock.now += timedelta(minutes=30)  # past fsck's grace, within the live upload's expiry
    fsck = Fsck(stores.blobs, stores.repository, uploads=stores.sessions, clock=stores.clock)
    report = await fsck.run(fix=True)
    assert report.uploading == 1
    assert [(finding.kind, finding.key) for finding in report.findings] == [
        (FindingKind.STALE_PARTIAL, stale.blob_key)
    ]
    assert (await uploads.write("alice", live.id, 4, stream(b"efgh"))).document_id is not None
