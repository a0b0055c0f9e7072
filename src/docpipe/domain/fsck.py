"""fsck: compare the metadata repository with the blob store, report what disagrees, repair what is safe.

Uploads write the blob before the metadata and deletes remove the metadata before the blob, so a
crash leaves blobs nobody refers to (``orphan_blob``) and leftovers of unfinished uploads
(``stale_partial``); both are reclaimed by a fix. The bytes of a resumable upload whose session is live
(not expired) are neither, however old (``uploading``); those of an expired or unknown session are.
Metadata without its blob (``missing_blob``) and a blob of the wrong size or sha-256 break the write
protocol's invariant: the first is unrecoverable and a fix deletes the metadata, the others need a
human and are only reported.

Every owner's documents are checked (``DocumentRepository.owners``). Blobs are matched to documents by
blob key (a document's bytes are staged under a fresh key, ``<owner>/<uuid7>``, before its id is
minted; documents stored before blob keys existed have their id as their key, and those stored before
owners existed a key without the owner: ``is_blob_key`` accepts all three).

Memory: the check holds the blob key, owner, id and size of every document (about 250 bytes each in
CPython, so some 250 MB per million documents) plus the problems it found, never blob contents.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from docpipe.domain.errors import BlobNotFound, DocumentNotFound
from docpipe.domain.model import BlobEntry, Document, ListQuery, first_id_at, is_blob_key, utc_now
from docpipe.domain.ports import BlobStore, DocumentRepository, SearchIndex, UploadRepository

DEFAULT_GRACE = timedelta(minutes=15)
"""Entries younger than this may belong to an upload still in flight, so they are left alone."""
PAGE_SIZE = 1000


_MISSING_TEXT = "the text extracted from the document is missing from the blob store"


class FindingKind(StrEnum):
    """What is wrong with a blob or a document; ``docpipe fsck`` counts and repairs by kind."""

    ORPHAN_BLOB = "orphan_blob"
    STALE_PARTIAL = "stale_partial"
    MISSING_BLOB = "missing_blob"
    MISSING_TEXT = "missing_text"
    """A processed document's extracted text is gone: ``docpipe reprocess`` extracts it again."""
    SEARCH_INDEX = "search_index"
    """The search index is damaged, or holds text a process left half-written: a fix rebuilds it."""
    SIZE_MISMATCH = "size_mismatch"
    DIGEST_MISMATCH = "digest_mismatch"


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One inconsistency between the blob store and the repository: ``key`` is the blob key or
    document id, ``detail`` says what was seen, ``fixed`` whether this run repaired it."""

    kind: FindingKind
    key: str
    detail: str
    fixed: bool = False


class FsckReport(msgspec.Struct, kw_only=True):
    """What one run saw. ``recent`` entries were younger than the grace period; ``ignored`` ones have
    keys docpipe never issues (other objects in a shared bucket). ``refusal`` says why repairs that
    were asked for were withheld."""

    documents: int = 0
    entries: int = 0
    recent: int = 0
    uploading: int = 0
    """Entries of resumable uploads whose sessions are live."""
    ignored: int = 0
    findings: list[Finding] = msgspec.field(default_factory=list)
    refusal: str | None = None

    def counts(self) -> Counter[FindingKind]:
        return Counter(finding.kind for finding in self.findings)

    def fixed_counts(self) -> Counter[FindingKind]:
        return Counter(finding.kind for finding in self.findings if finding.fixed)

    @property
    def clean(self) -> bool:
        """Nothing is wrong any more: every finding, if any, was fixed."""
        return all(finding.fixed for finding in self.findings)


_UNRELATED_STORES = (
    "the blob store and the metadata repository have no document in common, which looks like a "
    "misconfiguration (another bucket, table, prefix or data folder); nothing was deleted"
)


class Fsck:
    """The check as a use case over the two ports; see the module docstring for what it finds."""

    def __init__(
        self,
        blobs: BlobStore,
        repository: DocumentRepository,
        *,
        uploads: UploadRepository | None = None,
        index: SearchIndex | None = None,
        grace: timedelta = DEFAULT_GRACE,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._blobs = blobs
        self._repository = repository
        self._uploads = uploads
        self._index = index
        self._grace = grace
        self._clock = clock

    async def run(self, *, fix: bool = False, verify_content: bool = False) -> FsckReport:
        """Check both stores and, with ``fix``, repair what is safe to repair.

        Every orphan and missing blob is confirmed against the stores again before it is reported,
        so uploads and deletes running meanwhile are not mistaken for damage. Orphans and missing
        blobs are not repaired when the stores share no document at all: the likelier cause is a
        setting pointing at the wrong bucket or table, and repairing would destroy everything.
        """
        started = utc_now()
        scan = _Scan(
            self._blobs,
            self._repository,
            self._uploads,
            self._clock(),
            self._clock() - self._grace,
            verify_content,
        )
        await scan.read_documents()
        await scan.read_inventory()
        committed_since = await self._blob_keys_committed_since(started - self._grace)
        orphans = [entry for entry in scan.orphans if entry.key not in committed_since]
        missing: list[Document] = []
        for owner, document_id, _ in scan.unlisted.values():
            document = await self._without_blob(owner, document_id)
            if document is not None:
                missing.append(document)
        delete = fix and scan.shared > 0
        if delete and orphans:
            # Confirmed once more right before the repair: an upload may have committed meanwhile.
            committed_since = await self._blob_keys_committed_since(started - self._grace)
            orphans = [entry for entry in orphans if entry.key not in committed_since]
        report = scan.report
        if fix and not delete and (orphans or missing):
            report.refusal = _UNRELATED_STORES
        report.findings += scan.mismatches
        report.findings += [await self._partial(entry, fix) for entry in scan.partials]
        report.findings += [await self._orphan(entry, delete) for entry in orphans]
        report.findings += [await self._missing(document, delete) for document in missing]
        report.findings += [
            Finding(kind=FindingKind.MISSING_TEXT, key=document_id, detail=_MISSING_TEXT)
            for document_id in scan.texts.values()
        ]
        report.findings += await self._search_index(fix)
        return report

    async def _search_index(self, fix: bool) -> list[Finding]:
        if self._index is None:
            return []
        damage = await self._index.verify()
        if damage and fix:
            await self._index.rebuild()
        return [
            Finding(kind=FindingKind.SEARCH_INDEX, key="search index", detail=what, fixed=fix)
            for what in damage
        ]

    async def _partial(self, entry: BlobEntry, fix: bool) -> Finding:
        if fix:
            await self._blobs.reclaim(entry)
        detail = f"unfinished upload of {entry.size} bytes, last written {_when(entry.modified)}"
        return Finding(kind=FindingKind.STALE_PARTIAL, key=entry.key, detail=detail, fixed=fix)

    async def _orphan(self, entry: BlobEntry, fix: bool) -> Finding:
        if fix:
            await self._blobs.reclaim(entry)
        detail = f"blob of {entry.size} bytes written {_when(entry.modified)}, no document refers to it"
        return Finding(kind=FindingKind.ORPHAN_BLOB, key=entry.key, detail=detail, fixed=fix)

    async def _missing(self, document: Document, fix: bool) -> Finding:
        if fix:
            with contextlib.suppress(DocumentNotFound):  # deleted meanwhile: just as good
                await self._repository.delete(document.owner, document.id)
        detail = f"document {document.filename!r} of {document.size} bytes has no content in the blob store"
        return Finding(kind=FindingKind.MISSING_BLOB, key=document.id, detail=detail, fixed=fix)

    async def _blob_keys_committed_since(self, moment: datetime) -> set[str]:
        """The blob keys of documents whose ids were minted since ``moment``, read now.

        An orphan candidate's upload may have committed since the metadata was read; its id was
        then minted at that commit, after ``moment`` unless the commit took longer than the grace
        period (which would make it an upload in flight past its grace). Ids carry the real time.
        """
        floor = first_id_at(moment)
        keys: set[str] = set()
        async for owner in self._repository.owners():
            query = ListQuery(limit=PAGE_SIZE)
            while True:
                page = await self._repository.list(owner, query)
                recent = [document for document in page.documents if document.id >= floor]
                keys.update(document.blob_key for document in recent)
                if (
                    len(recent) < len(page.documents)
                    or page.resume_after is None
                    or page.resume_after < floor
                ):
                    break
                query = ListQuery(limit=PAGE_SIZE, after_id=page.resume_after)
        return keys

    async def _without_blob(self, owner: str, document_id: str) -> Document | None:
        """The document, if it still exists and its blob cannot be opened.

        The inventory did not list the blob; opening it directly guards the destructive repair
        against a store whose listing lags behind its writes.
        """
        try:
            document = await self._repository.get(owner, document_id)
            chunks = await self._blobs.open(document.blob_key)
        except DocumentNotFound:
            return None
        except BlobNotFound:
            return document
        async for _ in chunks:  # drained so that the adapter releases the file or connection
            pass
        return None


class _Scan:
    """The state of one run while it reads both stores."""

    def __init__(
        self,
        blobs: BlobStore,
        repository: DocumentRepository,
        uploads: UploadRepository | None,
        now: datetime,
        cutoff: datetime,
        verify_content: bool,
    ) -> None:
        self._blobs = blobs
        self._repository = repository
        self._uploads = uploads
        self._now = now
        self._cutoff = cutoff
        self._verify_content = verify_content
        self.report = FsckReport()
        self.unlisted: dict[str, tuple[str, str, int]] = {}
        """Owner, id and size by blob key of every document whose blob the inventory has not listed (yet)."""
        self.texts: dict[str, str] = {}
        """The id by text key of every processed document whose text the inventory has not listed (yet)."""
        self.shared = 0
        """Documents whose blob the inventory listed."""
        self.partials: list[BlobEntry] = []
        self.orphans: list[BlobEntry] = []
        """Candidates only: each is confirmed before it is reported."""
        self.mismatches: list[Finding] = []

    async def read_documents(self) -> None:
        async for owner in self._repository.owners():
            query = ListQuery(limit=PAGE_SIZE)
            while True:
                page = await self._repository.list(owner, query)
                self.unlisted.update(
                    (document.blob_key, (owner, document.id, document.size)) for document in page.documents
                )
                self.texts.update(
                    (document.processing.text_key, document.id)
                    for document in page.documents
                    if document.processing.text_key is not None
                )
                if page.resume_after is None:
                    break
                query = ListQuery(limit=PAGE_SIZE, after_id=page.resume_after)
        self.report.documents = len(self.unlisted)

    async def read_inventory(self) -> None:
        async for entry in self._blobs.inventory():
            self.report.entries += 1
            if not is_blob_key(entry.key):
                self.report.ignored += 1
            elif entry.complete and entry.key in self.unlisted:
                await self._compare(entry, *self.unlisted.pop(entry.key))
            elif entry.complete and entry.key in self.texts:
                del self.texts[entry.key]
            elif entry.modified > self._cutoff:
                self.report.recent += 1
            elif await self._uploading(entry.key):
                self.report.uploading += 1
            else:
                (self.orphans if entry.complete else self.partials).append(entry)

    async def _uploading(self, key: str) -> bool:
        """Whether ``key`` holds the bytes of a live resumable upload (asked only of old leftovers)."""
        if self._uploads is None:
            return False
        session = await self._uploads.holding(key)
        return session is not None and not session.complete and not session.expired(self._now)

    async def _compare(self, entry: BlobEntry, owner: str, document_id: str, size: int) -> None:
        """Mismatches are reported under the document's id: repairing one means restoring or deleting it."""
        self.shared += 1
        if entry.size != size:
            detail = f"the document says {size} bytes, the blob store holds {entry.size}"
            self.mismatches.append(Finding(kind=FindingKind.SIZE_MISMATCH, key=document_id, detail=detail))
        elif self._verify_content:
            await self._compare_digest(entry.key, owner, document_id, size)

    async def _compare_digest(self, key: str, owner: str, document_id: str, size: int) -> None:
        try:
            document = await self._repository.get(owner, document_id)
        except DocumentNotFound:  # deleted since the listing
            return
        digest = hashlib.sha256()
        try:
            async for chunk in await self._blobs.open(key):
                digest.update(chunk)
        except BlobNotFound:  # deleted since the inventory: confirmed or dismissed with the missing ones
            self.unlisted[key] = (owner, document_id, size)
            return
        actual = digest.hexdigest()
        if actual != document.sha256:
            detail = f"the document says sha-256 {document.sha256}, the content hashes to {actual}"
            self.mismatches.append(Finding(kind=FindingKind.DIGEST_MISMATCH, key=document_id, detail=detail))


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
