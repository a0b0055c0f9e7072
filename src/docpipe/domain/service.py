"""The use cases of docpipe. Depends on the two ports only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

import msgspec

from docpipe.domain.cursor import decode_cursor, encode_cursor
from docpipe.domain.errors import (
    ChecksumMismatch,
    DocumentNotFound,
    DuplicateDocument,
    EmptyUpload,
    IdempotencyKeyReused,
    PreconditionFailed,
    StoreFailure,
    StoreRole,
    StoreUnavailable,
    UploadGone,
)
from docpipe.domain.fields import MAX_CONTENT_TYPE_LENGTH, MAX_FILENAME_BYTES, MAX_TAG_LENGTH
from docpipe.domain.idempotency import (
    CompletedUpload,
    IdempotencyClaim,
    clean_idempotency_key,
    completed,
    new_claim,
    renewing,
)
from docpipe.domain.model import (
    ByteRange,
    Document,
    DocumentChanges,
    ListQuery,
    NewDocument,
    new_document_id,
    utc_now,
)
from docpipe.domain.ports import BlobStore, DocumentRepository
from docpipe.domain.streams import MeteredStream, read_ahead, rechunk

logger = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/octet-stream"
CHECK_TIMEOUT_SECONDS = 2.0
"""A store that does not answer a check within this is unavailable: readiness answers in time."""


class Listing(msgspec.Struct, frozen=True):
    documents: list[Document]
    next_cursor: str | None


ContentTypeDetector = Callable[[bytes, str], str | None]
"""Given a document's first bytes and its file name, the media type they look like, if any."""


def _no_detection(head: bytes, filename: str) -> str | None:
    return None


class DocumentService:
    def __init__(
        self,
        blobs: BlobStore,
        repository: DocumentRepository,
        max_upload_bytes: int,
        detect_content_type: ContentTypeDetector = _no_detection,
    ) -> None:
        self._blobs = blobs
        self._repository = repository
        self._detect_content_type = detect_content_type
        self.max_upload_bytes = max_upload_bytes

    async def upload(
        self,
        chunks: AsyncIterable[bytes],
        describe: Callable[[], NewDocument],
        *,
        expected_sha256: str | None = None,
        idempotency_key: str | None = None,
    ) -> Document:
        """``_upload``, at most once per ``idempotency_key`` (see ``domain/idempotency.py``).

        The key is claimed before any byte is read: a retry of a completed upload gets its document
        (``_replay``), one of an upload in flight ``IdempotencyKeyInUse``. The claim is renewed while
        the bytes arrive, completed with the document, and released when the upload fails.
        """
        if idempotency_key is None:
            return await self._upload(chunks, describe, expected_sha256, None)
        claim = new_claim(clean_idempotency_key(idempotency_key), utc_now())
        earlier = await self._repository.claim(claim, utc_now())
        if earlier is not None:
            return await self._replay(earlier, chunks, describe, expected_sha256)
        try:
            return await self._upload(chunks, describe, expected_sha256, claim)
        except BaseException:
            await asyncio.shield(self._release(claim))
            raise

    async def _upload(
        self,
        chunks: AsyncIterable[bytes],
        describe: Callable[[], NewDocument],
        expected_sha256: str | None,
        claim: IdempotencyClaim | None,
    ) -> Document:
        """Store the bytes, then record the document: it is visible only once both have succeeded.

        The blob goes first under a key no one else uses (the new id); the metadata insert is the
        commit point. On any failure, cancellation included, the blob is deleted again, unless the
        metadata may have been written after all (see ``_discard_blob``).
        ``describe`` is called once the bytes are in, because multipart form fields may follow
        the file part.
        """
        document_id = new_document_id()
        metered = MeteredStream(rechunk(chunks), self.max_upload_bytes)
        recording = False
        try:
            async with renewing(self._repository, claim):
                stored = await self._blobs.put(document_id, read_ahead(metered))
            if stored != metered.size:
                raise RuntimeError(f"blob store kept {stored} of {metered.size} bytes")
            if metered.size == 0:
                raise EmptyUpload
            if expected_sha256 is not None and expected_sha256 != metered.sha256:
                raise ChecksumMismatch(expected_sha256, metered.sha256)
            details = describe()
            detected = self._detect_content_type(metered.head, details.filename)
            content_type = details.content_type or detected or DEFAULT_CONTENT_TYPE
            now = utc_now()
            document = Document(
                id=document_id,
                filename=details.filename,
                content_type=content_type,
                detected_content_type=detected if detected != content_type else None,
                size=metered.size,
                sha256=metered.sha256,
                tags=details.tags,
                metadata=details.metadata,
                created_at=now,
                updated_at=now,
            )
            recording = True
            await self._record(document, None if claim is None else completed(claim, utc_now()))
        except BaseException:
            await asyncio.shield(self._discard_blob(document_id, maybe_recorded=recording))
            raise
        return document

    async def _record(self, document: Document, claim: IdempotencyClaim | None) -> None:
        """Insert the metadata. A store that did not answer may still have applied the write (only its
        reply was lost), and a retry of it then finds the id taken: ids are fresh, so if the stored
        document is this one, the upload succeeded (and its claim, completed in the same commit)."""
        try:
            await self._repository.add(document, claim)
        except (StoreUnavailable, DuplicateDocument) as unconfirmed:
            try:
                stored = await self._repository.get(document.id)
            except Exception:
                raise unconfirmed from None
            if stored != document:
                raise
            logger.info("document %s was recorded although the store did not confirm it", document.id)

    async def _replay(
        self,
        earlier: CompletedUpload,
        chunks: AsyncIterable[bytes],
        describe: Callable[[], NewDocument],
        expected_sha256: str | None,
    ) -> Document:
        """Answer a retry of a completed upload with its document, if the retry's bytes are the same.

        Only their sha-256 can tell: it is the content's ``Content-Digest`` when one was sent (the
        body is then never read), else the bytes are hashed as they arrive and dropped. The
        document may have been deleted since: that is ``UploadGone``, not a second upload.
        """
        if expected_sha256 is None:
            metered = MeteredStream(rechunk(chunks), self.max_upload_bytes)
            async for _ in metered:
                pass
            describe()  # verifies what only the whole body can, such as a form's Content-Digest
            expected_sha256 = metered.sha256
        if expected_sha256 != earlier.sha256:
            raise IdempotencyKeyReused
        try:
            return await self._repository.get(earlier.document_id)
        except DocumentNotFound:
            raise UploadGone(earlier.document_id) from None

    async def _release(self, claim: IdempotencyClaim) -> None:
        """Free the key of a failed upload so that a retry need not wait for the lease to run out."""
        try:
            await self._repository.release(claim)
        except Exception:
            logger.warning("idempotency key claim left to expire with its lease", exc_info=True)

    async def _discard_blob(self, document_id: str, *, maybe_recorded: bool) -> None:
        """Delete the bytes of a failed upload, but never those of a document that may be listed.

        Once the metadata write was attempted its outcome may be unknown; the blob is then deleted
        only when the repository says the document does not exist, and otherwise left for fsck. A
        failure here is logged, not raised, so the upload's own error reaches the client.
        """
        try:
            if maybe_recorded:
                try:
                    await self._repository.get(document_id)
                except DocumentNotFound:
                    pass
                else:
                    return
            await self._blobs.delete(document_id)
        except Exception:
            logger.warning(
                "the blob of failed upload %s was left for fsck to reclaim", document_id, exc_info=True
            )

    async def get(self, document_id: str) -> Document:
        return await self._repository.get(document_id)

    async def list(
        self,
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
        page = await self._repository.list(query)
        next_cursor = None if page.resume_after is None else encode_cursor(page.resume_after)
        return Listing(page.documents, next_cursor)

    async def newest_named(self, filename: str) -> Document:
        """The most recent document called ``filename``."""
        if _matches_nothing(filename=filename):
            raise DocumentNotFound(filename)
        query = ListQuery(limit=1, filename=filename)
        while True:
            page = await self._repository.list(query)
            if page.documents:
                return page.documents[0]
            if page.resume_after is None:
                raise DocumentNotFound(filename)
            query = msgspec.structs.replace(query, after_id=page.resume_after)

    async def update(
        self,
        document_id: str,
        changes: DocumentChanges,
        precondition: Callable[[Document], bool] | None = None,
    ) -> Document:
        """Apply ``changes`` atomically on top of whatever concurrent updates landed first. With a
        ``precondition`` (from If-Match) it is judged on the document the change applies to, and
        a document that does not satisfy it fails with ``PreconditionFailed``."""

        def change(current: Document) -> Document:
            if precondition is not None and not precondition(current):
                raise PreconditionFailed
            return msgspec.structs.replace(
                current,
                filename=current.filename if changes.filename is None else changes.filename,
                tags=current.tags if changes.tags is None else changes.tags,
                metadata=current.metadata if changes.metadata is None else changes.metadata,
                updated_at=utc_now(),
                version=current.version + 1,
            )

        return await self._repository.update(document_id, change)

    async def delete(self, document_id: str) -> None:
        """Metadata first, so the document vanishes from every route at once; then its bytes.

        Once the metadata is gone the delete has happened: a blob store that fails to remove the
        bytes leaves an orphan for fsck, and is logged rather than reported to the client.
        """
        await self._repository.delete(document_id)
        try:
            await asyncio.shield(self._blobs.delete(document_id))
        except Exception:
            logger.warning(
                "the blob of deleted document %s was left for fsck to reclaim", document_id, exc_info=True
            )

    async def delete_by_id_or_filename(self, reference: str) -> int:
        """Delete the document with id ``reference``, or else every document named ``reference``.

        Returns how many were deleted; raises ``DocumentNotFound`` when none matched.
        """
        try:
            await self.delete(reference)
        except DocumentNotFound:
            pass
        else:
            return 1
        deleted = 0
        query = ListQuery(limit=100, filename=reference)
        while True:
            page = await self._repository.list(query)
            for document in page.documents:
                try:
                    await self.delete(document.id)
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
        return await self._blobs.open(document.id, byte_range)

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
