"""The use cases of docpipe. Depends on the two ports only."""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

import msgspec

from docpipe.domain.cursor import decode_cursor, encode_cursor
from docpipe.domain.errors import (
    BlobNotFound,
    ChecksumMismatch,
    DocumentNotFound,
    DuplicateDocument,
    EmptyUpload,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidInput,
    LinkGone,
    PreconditionFailed,
    StorageFull,
    StoreFailure,
    StoreRole,
    StoreUnavailable,
    TextNotExtracted,
    TextPending,
    UploadGone,
)
from docpipe.domain.fields import (
    MAX_CONTENT_TYPE_LENGTH,
    MAX_FILENAME_BYTES,
    MAX_TAG_LENGTH,
    clean_filename,
    clean_metadata,
    clean_tags,
)
from docpipe.domain.idempotency import (
    CompletedUpload,
    IdempotencyClaim,
    clean_idempotency_key,
    completed,
    new_claim,
    renewing,
)
from docpipe.domain.links import UploadGrant
from docpipe.domain.media_types import clean_content_type
from docpipe.domain.model import (
    ByteRange,
    Document,
    DocumentChanges,
    ListQuery,
    NewDocument,
    Processing,
    ProcessingState,
    is_document_id,
    new_blob_key,
    new_document_id,
    utc_now,
)
from docpipe.domain.ports import BlobStore, DocumentRepository, SearchIndex
from docpipe.domain.processing import reads
from docpipe.domain.streams import MeteredStream, read_ahead, rechunk

logger = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/octet-stream"
CHECK_TIMEOUT_SECONDS = 2.0
"""A store that does not answer a check within this is unavailable: readiness answers in time."""


class Listing(msgspec.Struct, frozen=True):
    """One page of a listing, newest first; ``next_cursor`` resumes after it, and is ``None`` once
    nothing is left."""

    documents: list[Document]
    next_cursor: str | None


class StagedBytes(msgspec.Struct, frozen=True):
    """What a unit of work knows of the bytes it commits: size, sha-256 and the first ``HEAD_SIZE`` bytes."""

    size: int
    sha256: str
    head: bytes


ContentTypeDetector = Callable[[bytes, str], str | None]
"""Given a document's first bytes and its file name, the media type they look like, if any."""


def _no_detection(head: bytes, filename: str) -> str | None:
    return None


class Upload:
    """One upload as a unit of work: ``stage`` its bytes, then ``commit`` what the client said of them.

    Used as ``async with service.new_upload(owner) as upload``; the document will be ``owner``'s.
    The bytes go to the blob store under a fresh key no one else uses; the metadata insert in
    ``commit`` is the commit point, where the document's id and ``created_at`` are minted, so ids
    follow the order of commits. Leaving the block without a commit (an error, a cancellation, a
    client gone) deletes the staged bytes, unless a commit was attempted and may have been recorded
    after all (see ``_discard``).

    With an ``idempotency_key`` (see ``domain/idempotency.py``) the key is claimed before any byte
    is read, renewed while the bytes arrive, completed in the commit's own write and released
    when the upload fails. A retry of a completed upload stores nothing: ``stage`` only checks
    that its bytes have the same sha-256, and ``commit`` returns the first attempt's document.

    With an upload ``link`` instead, the link's own claim (``UploadGrant.claim``) makes the upload
    happen once: an upload that finds the link in use or used is ``LinkGone``, and one that fails
    frees the link again. The link's filename and tags apply to the description.
    """

    def __init__(
        self,
        blobs: BlobStore,
        repository: DocumentRepository,
        max_bytes: int,
        detect_content_type: ContentTypeDetector,
        owner: str,
        idempotency_key: str | None,
        link: UploadGrant | None = None,
        index: SearchIndex | None = None,
    ) -> None:
        self._owner = owner
        self._index = index
        self._blobs = blobs
        self._repository = repository
        self._max_bytes = max_bytes if link is None else link.allowed_bytes(max_bytes)
        self._detect_content_type = detect_content_type
        self._link = link
        self._claim = _claim_for(owner, idempotency_key, link)
        self._claimed = False
        self._earlier: CompletedUpload | None = None
        """The upload this one retries, when its key's record says it completed."""
        self._blob_key: str | None = None
        self._owns_blob = True
        """Whether leaving without a commit deletes the bytes: not those ``adopt`` took over."""
        self._staged: StagedBytes | None = None
        self._attempted: str | None = None
        """The id of the document a commit tried to record."""
        self._committed = False

    async def __aenter__(self) -> Upload:
        return self

    async def __aexit__(self, *_: object) -> None:
        if not self._committed:
            await asyncio.shield(self._abandon())

    async def _abandon(self) -> None:
        """Clean up after an upload that did not commit, as one shielded step: a second
        cancellation cannot stop it half-way and leave the key claimed."""
        if self._blob_key is not None and self._owns_blob:
            await self._discard(self._blob_key)
        if self._claimed and self._claim is not None:
            await self._release(self._claim)

    async def stage(self, chunks: AsyncIterable[bytes], *, expected_sha256: str | None = None) -> None:
        """Store the bytes, counting and hashing them; nothing is visible until ``commit``."""
        await self._take_claim()
        metered = MeteredStream(rechunk(chunks), self._max_bytes)
        if self._earlier is not None:
            await self._check_retry(self._earlier, metered, expected_sha256)
            self._staged = StagedBytes(metered.size, metered.sha256, metered.head)
            return
        self._blob_key = new_blob_key(self._owner)
        async with renewing(self._repository, self._claim):
            stored = await self._blobs.put(self._blob_key, read_ahead(metered))
        if stored != metered.size:
            raise RuntimeError(f"blob store kept {stored} of {metered.size} bytes")
        if metered.size == 0:
            raise EmptyUpload
        if expected_sha256 is not None and expected_sha256 != metered.sha256:
            raise ChecksumMismatch(expected_sha256, metered.sha256)
        self._staged = StagedBytes(metered.size, metered.sha256, metered.head)

    async def adopt(self, blob_key: str, staged: StagedBytes) -> None:
        """Take bytes already readable under ``blob_key`` (a resumable upload's, finished) in place of
        ``stage``. They stay where they are when the unit of work ends without a commit: they are the
        resumable upload's until it commits or expires. With an Idempotency-Key whose upload completed,
        the bytes must have that upload's sha-256 (``IdempotencyKeyReused``), and ``commit`` returns its
        document."""
        await self._take_claim()
        if self._earlier is not None:
            if staged.sha256 != self._earlier.sha256:
                raise IdempotencyKeyReused
        else:
            self._blob_key = blob_key
            self._owns_blob = False
        self._staged = staged

    async def _take_claim(self) -> None:
        if self._blob_key is not None or self._staged is not None:
            raise RuntimeError("an upload stages its bytes once")
        if self._claim is None:
            return
        try:
            self._earlier = await self._repository.claim(self._claim, utc_now())
        except IdempotencyKeyInUse:
            raise self._claim_refused("is in use by another upload") from None
        self._claimed = self._earlier is None
        if self._earlier is not None and self._link is not None:
            raise LinkGone("this upload link was used already")

    async def commit(self, description: NewDocument) -> Document:
        """Clean ``description`` and record the document: from here on it is listed and served."""
        if self._staged is None or self._attempted is not None:
            raise RuntimeError("commit follows one successful stage")
        details = cleaned_description(description if self._link is None else self._link.describe(description))
        if self._earlier is not None:
            self._committed = True
            try:
                return await self._repository.get(self._owner, self._earlier.document_id)
            except DocumentNotFound:
                raise UploadGone(self._earlier.document_id) from None
        assert self._blob_key is not None
        staged = self._staged
        detected = self._detect_content_type(staged.head, details.filename)
        content_type = details.content_type or detected or DEFAULT_CONTENT_TYPE
        now = utc_now()
        document = Document(
            id=new_document_id(),
            owner=self._owner,
            blob_key=self._blob_key,
            filename=details.filename,
            content_type=content_type,
            detected_content_type=detected if detected != content_type else None,
            size=staged.size,
            sha256=staged.sha256,
            tags=tuple(details.tags),
            metadata=dict(details.metadata),
            created_at=now,
            updated_at=now,
            processing=Processing() if reads(content_type) else Processing(state=ProcessingState.SKIPPED),
        )
        self._attempted = document.id
        try:
            await self._record(document, None if self._claim is None else completed(self._claim, utc_now()))
        except IdempotencyKeyInUse:
            self._attempted = None  # the store refused the write: it is certainly not recorded
            raise self._claim_refused("was taken over by another upload") from None
        except StorageFull:
            self._attempted = None
            raise
        self._committed = True
        await index_now(self._index, document)
        return document

    def _claim_refused(self, what: str) -> Exception:
        """What a refused claim means: another request holds the Idempotency-Key (409), or the upload
        link (410)."""
        return IdempotencyKeyInUse() if self._link is None else LinkGone(f"this upload link {what}")

    async def _check_retry(
        self, earlier: CompletedUpload, metered: MeteredStream, expected_sha256: str | None
    ) -> None:
        """A retry must carry the same bytes, and only their sha-256 can tell: it is the content's
        ``Content-Digest`` when one was sent (the body is then never read), else the bytes are
        hashed as they arrive and dropped."""
        if expected_sha256 is None:
            async for _ in metered:
                pass
            expected_sha256 = metered.sha256
        if expected_sha256 != earlier.sha256:
            raise IdempotencyKeyReused

    async def _record(self, document: Document, claim: IdempotencyClaim | None) -> None:
        """Insert the metadata. A store that did not answer may still have applied the write (only its
        reply was lost), and a retry of it then finds the id taken: ids are fresh, so if the stored
        document is this one, the upload succeeded (and its claim, completed in the same commit)."""
        try:
            await self._repository.add(document, claim)
        except (StoreUnavailable, DuplicateDocument) as unconfirmed:
            try:
                stored = await self._repository.get(document.owner, document.id)
            except Exception:
                raise unconfirmed from None
            if stored != document:
                raise
            logger.info("document %s was recorded although the store did not confirm it", document.id)

    async def _release(self, claim: IdempotencyClaim) -> None:
        """Free the key of a failed upload so that a retry need not wait for the lease to run out."""
        try:
            await self._repository.release(claim)
        except Exception:
            logger.warning("idempotency key claim left to expire with its lease", exc_info=True)

    async def _discard(self, blob_key: str) -> None:
        """Delete the staged bytes, but never those of a document that may be listed.

        A commit whose outcome is unknown (the store did not answer, the request was cancelled) may
        still be applied after any read that says it was not, so its bytes are left for fsck, which
        judges them once the grace period is over. A failure here is logged, not raised, so the
        upload's own error reaches the client.
        """
        if self._attempted is not None:
            logger.warning(
                "the blob %s of upload %s, whose commit has an unknown outcome, was left for fsck",
                blob_key,
                self._attempted,
            )
            return
        try:
            await self._blobs.delete(blob_key)
        except Exception:
            logger.warning(
                "the blob %s of a failed upload was left for fsck to reclaim", blob_key, exc_info=True
            )


async def index_now(index: SearchIndex | None, document: Document) -> None:
    """Index ``document`` as it was just committed, so that a search right after finds it by its new
    name: best effort, since the event of the change indexes it too (``pipeline.SearchIndexing``)."""
    if index is None:
        return
    try:
        await index.put(document, None)
    except Exception:
        logger.warning("document %s is indexed once its event is delivered", document.id, exc_info=True)


def _claim_for(owner: str, idempotency_key: str | None, link: UploadGrant | None) -> IdempotencyClaim | None:
    """What makes an upload happen once, if anything: its upload link, or else its Idempotency-Key."""
    if link is not None:
        return link.claim(utc_now())
    if idempotency_key is not None:
        return new_claim(owner, clean_idempotency_key(idempotency_key), utc_now())
    return None


class DocumentService:
    """The use cases over the two ports, each acting for the owner it is given first (another owner's
    documents are as if missing). Values from clients are cleaned here (``domain/fields.py``), and
    values no document can have (an id docpipe never issues, a name longer than any stored one) are
    answered without asking a store."""

    def __init__(
        self,
        blobs: BlobStore,
        repository: DocumentRepository,
        max_upload_bytes: int,
        detect_content_type: ContentTypeDetector = _no_detection,
        index: SearchIndex | None = None,
    ) -> None:
        self._blobs = blobs
        self._repository = repository
        self._index = index
        self._detect_content_type = detect_content_type
        self.max_upload_bytes = max_upload_bytes

    def new_upload(
        self, owner: str, *, idempotency_key: str | None = None, link: UploadGrant | None = None
    ) -> Upload:
        """A unit of work for one upload of ``owner``'s, done at most once per ``idempotency_key`` of
        ``owner``'s or per upload ``link`` of ``owner``'s (one that verified and has not expired): see
        ``Upload``."""
        return Upload(
            self._blobs,
            self._repository,
            self.max_upload_bytes,
            self._detect_content_type,
            owner,
            idempotency_key,
            link,
            self._index,
        )

    async def upload(
        self,
        owner: str,
        chunks: AsyncIterable[bytes],
        description: NewDocument,
        *,
        expected_sha256: str | None = None,
        idempotency_key: str | None = None,
        link: UploadGrant | None = None,
    ) -> Document:
        """Store an upload whose description is known before its bytes: a bad description is refused
        before any byte is stored."""
        cleaned = cleaned_description(description if link is None else link.describe(description))
        async with self.new_upload(owner, idempotency_key=idempotency_key, link=link) as upload:
            await upload.stage(chunks, expected_sha256=expected_sha256)
            return await upload.commit(cleaned)

    async def get(self, owner: str, document_id: str) -> Document:
        _refuse_impossible_id(document_id)
        return await self._repository.get(owner, document_id)

    async def list(
        self,
        owner: str,
        *,
        limit: int = 100,
        cursor: str | None = None,
        prefix: str | None = None,
        tag: str | None = None,
        content_type: str | None = None,
    ) -> Listing:
        if _matches_nothing(prefix=prefix, tag=tag, content_type=content_type):
            return Listing([], None)
        query = ListQuery(
            limit=limit,
            after_id=None if cursor is None else decode_cursor(cursor),
            prefix=prefix,
            tag=tag,
            content_type=content_type,
        )
        page = await self._repository.list(owner, query)
        next_cursor = None if page.resume_after is None else encode_cursor(page.resume_after)
        return Listing(page.documents, next_cursor)

    async def newest_named(self, owner: str, filename: str) -> Document:
        """``owner``'s most recent document called ``filename`` (NFC-normalised, as stored names are)."""
        name = unicodedata.normalize("NFC", filename)
        if _matches_nothing(filename=name):
            raise DocumentNotFound(filename)
        query = ListQuery(limit=1, filename=name)
        while True:
            page = await self._repository.list(owner, query)
            if page.documents:
                return page.documents[0]
            if page.resume_after is None:
                raise DocumentNotFound(filename)
            query = msgspec.structs.replace(query, after_id=page.resume_after)

    async def update(
        self,
        owner: str,
        document_id: str,
        changes: DocumentChanges,
        precondition: Callable[[Document], bool] | None = None,
    ) -> Document:
        """Apply ``changes`` atomically on top of whatever concurrent updates landed first. With a
        ``precondition`` (from If-Match) it is judged on the document the change applies to, and
        a document that does not satisfy it fails with ``PreconditionFailed``. ``changes`` are as the
        client sent them: they are cleaned first (``InvalidInput``)."""
        changes = _cleaned_changes(changes)
        _refuse_impossible_id(document_id)

        def change(current: Document) -> Document:
            if precondition is not None and not precondition(current):
                raise PreconditionFailed
            return msgspec.structs.replace(
                current,
                filename=current.filename if changes.filename is None else changes.filename,
                tags=current.tags if changes.tags is None else tuple(changes.tags),
                metadata=current.metadata if changes.metadata is None else dict(changes.metadata),
                updated_at=utc_now(),
                version=current.version + 1,
            )

        updated = await self._repository.update(owner, document_id, change)
        await index_now(self._index, updated)
        return updated

    async def revoke_links(self, owner: str, document_id: str) -> None:
        """Stop every signed link issued for ``owner``'s document so far: they carry the links epoch they
        were issued at, and this raises it."""
        _refuse_impossible_id(document_id)

        def change(current: Document) -> Document:
            return msgspec.structs.replace(
                current, links_epoch=current.links_epoch + 1, version=current.version + 1
            )

        await self._repository.update(owner, document_id, change)

    async def delete(self, owner: str, document_id: str) -> None:
        """Metadata first, so the document vanishes from every route at once; then its bytes.

        Once the metadata is gone the delete has happened: a blob store that fails to remove the
        bytes (or the extracted text) leaves an orphan for fsck, and is logged rather than reported to
        the client. A document's blob key never changes, so the one read first is the one to delete;
        text extracted after that read is discarded by the processing that finds the document gone.
        """
        document = await self.get(owner, document_id)
        await self._repository.delete(owner, document_id)
        for key in (document.blob_key, document.processing.text_key):
            if key is None:
                continue
            try:
                await asyncio.shield(self._blobs.delete(key))
            except Exception:
                logger.warning(
                    "blob %s of deleted document %s was left for fsck to reclaim",
                    key,
                    document_id,
                    exc_info=True,
                )

    async def delete_by_id_or_filename(self, owner: str, reference: str) -> int:
        """Delete ``owner``'s document with id ``reference`` when it is shaped like an id (and only then),
        or else every one of ``owner``'s documents named ``reference`` (NFC-normalised, as stored names are).

        Returns how many were deleted; raises ``DocumentNotFound`` when none matched.
        """
        if is_document_id(reference):
            await self.delete(owner, reference)
            return 1
        name = unicodedata.normalize("NFC", reference)
        if _matches_nothing(filename=name):
            raise DocumentNotFound(reference)
        deleted = 0
        query = ListQuery(limit=100, filename=name)
        while True:
            page = await self._repository.list(owner, query)
            for document in page.documents:
                try:
                    await self.delete(owner, document.id)
                except DocumentNotFound:
                    continue
                deleted += 1
            if page.resume_after is None:
                break
            query = msgspec.structs.replace(query, after_id=page.resume_after)
        if deleted == 0:
            raise DocumentNotFound(reference)
        return deleted

    async def open_content(
        self, document: Document, byte_range: ByteRange | None = None
    ) -> AsyncIterator[bytes]:
        return await self._blobs.open(document.blob_key, byte_range)

    async def open_text(self, owner: str, document_id: str) -> AsyncIterator[bytes]:
        """The text extracted from ``owner``'s document, UTF-8; ``TextPending`` until it is processed,
        ``TextNotExtracted`` when it was and has no text."""
        document = await self.get(owner, document_id)
        processing = document.processing
        if processing.state is ProcessingState.PENDING:
            raise TextPending(document_id)
        if processing.text_key is None:
            why = processing.error or f"processing ended {processing.state}"
            raise TextNotExtracted(document_id, why)
        try:
            return await self._blobs.open(processing.text_key)
        except BlobNotFound:
            raise TextNotExtracted(document_id, "it is missing from the blob store") from None

    async def check_content(self, document: Document) -> None:
        """Raise ``BlobNotFound`` when ``open_content`` would: a HEAD answers what a GET would."""
        if not await self._blobs.exists(document.blob_key):
            raise BlobNotFound(document.blob_key)

    async def check(self) -> tuple[StoreFailure, ...]:
        """What keeps each store from serving now (nothing when both can); a store that does not
        answer within ``CHECK_TIMEOUT_SECONDS`` is unavailable."""
        outcomes = await asyncio.gather(
            _failure_of(StoreRole.BLOB_STORE, self._blobs.check()),
            _failure_of(StoreRole.REPOSITORY, self._repository.check()),
        )
        return tuple(failure for failure in outcomes if failure is not None)


async def _failure_of(role: StoreRole, check: Awaitable[None]) -> StoreFailure | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await check
    except StoreFailure as failure:
        return failure
    except TimeoutError:
        return StoreUnavailable(role, f"the {role} did not answer within {CHECK_TIMEOUT_SECONDS:g} s")
    return None


def _matches_nothing(
    *,
    prefix: str | None = None,
    tag: str | None = None,
    content_type: str | None = None,
    filename: str | None = None,
) -> bool:
    """Whether a filter is longer than any value docpipe stores, so no document can match it.

    Answering that here spares the stores such values: DynamoDB refuses key attributes over 2048 bytes.
    """
    longest_name = max(len((value or "").encode()) for value in (prefix, filename))
    return (
        longest_name > MAX_FILENAME_BYTES
        or len(tag or "") > MAX_TAG_LENGTH
        or len(content_type or "") > MAX_CONTENT_TYPE_LENGTH
    )


def _refuse_impossible_id(document_id: str) -> None:
    """``DocumentNotFound`` for a value that is no id docpipe issues, without asking a store."""
    if not is_document_id(document_id):
        raise DocumentNotFound(document_id)


def cleaned_description(raw: NewDocument) -> NewDocument:
    """What a client said about an upload, each field cleaned; ``InvalidInput`` for the first bad one."""
    return NewDocument(
        filename=clean_filename(raw.filename),
        content_type=clean_content_type(raw.content_type),
        tags=clean_tags(raw.tags),
        metadata=clean_metadata(raw.metadata),
    )


def _cleaned_changes(raw: DocumentChanges) -> DocumentChanges:
    """A metadata update with each field it sets cleaned; ``InvalidInput`` when it sets none."""
    if raw.filename is None and raw.tags is None and raw.metadata is None:
        raise InvalidInput("nothing to change: give filename, tags or metadata")
    return DocumentChanges(
        filename=None if raw.filename is None else clean_filename(raw.filename),
        tags=None if raw.tags is None else clean_tags(raw.tags),
        metadata=None if raw.metadata is None else clean_metadata(raw.metadata),
    )
