"""Domain errors. The HTTP layer maps each to a status in one table (entrypoints/http/problems.py)."""

from __future__ import annotations

from enum import StrEnum


class DocpipeError(Exception):
    """Base of every error docpipe raises on purpose; ``detail`` is what a client may be told."""

    @property
    def detail(self) -> str:
        return str(self)


class DocumentNotFound(DocpipeError):
    """No document has the id, or the filename, a request names (404)."""

    def __init__(self, reference: str) -> None:
        super().__init__(f"no document matches {reference!r}")


class Unauthenticated(DocpipeError):
    """The request carries no credentials, or ones that are unknown, expired or revoked (401)."""


class MissingScope(DocpipeError):
    """The credentials are good but lack the scope the route needs (403)."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this requires the {scope!r} scope")


class KeyNotFound(DocpipeError):
    """No API key has the id a request names (404)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"no key has the id {key_id!r}")


class DuplicateKey(DocpipeError):
    """A repository already holds a key with this id or secret (409). Ids and secrets are fresh and
    random, so this never happens by chance: adapters refuse rather than overwrite a stored key."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"a key with the id {key_id!r}, or with the same secret, already exists")


class BadLinkToken(DocpipeError):
    """A link whose token this service did not sign, or that was altered since (403)."""

    def __init__(self) -> None:
        super().__init__("the link is not one this service signed, or it was altered")


class LinkGone(DocpipeError):
    """A signed link that verified but no longer works: expired, revoked, or an upload link used (410)."""


class BlobNotFound(DocpipeError):
    """The metadata exists but its bytes do not: a broken invariant that fsck reports."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the content of document {key!r} is missing from the blob store")


class InvalidInput(DocpipeError):
    """A field value the client sent is not acceptable (422)."""


class MalformedInput(DocpipeError):
    """The request itself cannot be understood (400)."""


class EmptyUpload(MalformedInput):
    """An upload of zero bytes (400): almost always a client's mistake, such as a wrong path to upload."""

    def __init__(self) -> None:
        super().__init__("the upload carries no bytes")


class IncompleteBody(MalformedInput):
    """The client went away before sending its whole body: an upload stored nothing of it, a resumable
    upload's PATCH kept what arrived."""

    def __init__(self) -> None:
        super().__init__("the request body ended before it was complete")


class InvalidCursor(MalformedInput):
    """A listing cursor docpipe did not issue, or one altered since (400): cursors are opaque."""

    def __init__(self) -> None:
        super().__init__("the cursor is not one this service issued")


class ChecksumMismatch(MalformedInput):
    """The body's sha-256 differs from its ``Content-Digest`` (400): what arrived is not what the client
    meant to send, so nothing is stored."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(
            f"the body's sha-256 is {actual}, but Content-Digest says {expected}; nothing was stored"
        )


class UploadTooLarge(DocpipeError):
    """An upload larger than ``DOCPIPE_MAX_UPLOAD_BYTES`` (413); ``limit`` is that limit, in bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the upload exceeds the limit of {limit} bytes")


class PreconditionFailed(DocpipeError):
    """A conditional request's ``If-Match`` or ``If-Unmodified-Since`` does not hold (412)."""

    def __init__(self, detail: str = "the document has changed since the given ETag") -> None:
        super().__init__(detail)


class ConcurrentUpdate(DocpipeError):
    """Another writer changed the document between our read and our write (409)."""

    def __init__(self, document_id: str) -> None:
        super().__init__(f"document {document_id!r} was changed by another request; retry")


class DuplicateDocument(DocpipeError):
    """A repository already holds a document with this id (409).

    Ids are fresh, so this means a write whose reply was lost did happen: the service checks and
    treats it as success when the stored document is its own."""

    def __init__(self, document_id: str) -> None:
        super().__init__(f"a document with id {document_id!r} already exists")


class IdempotencyKeyInUse(DocpipeError):
    """Another request with the same Idempotency-Key is in flight (409); retrying later may succeed."""

    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still in progress; retry later")


class IdempotencyKeyReused(DocpipeError):
    """The Idempotency-Key was used for an upload of other bytes (422)."""

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used for an upload of different content; use a new key")


class UploadGone(DocpipeError):
    """The upload an Idempotency-Key names succeeded, but its document was deleted since (410)."""

    def __init__(self, document_id: str) -> None:
        super().__init__(
            f"the upload with this Idempotency-Key created document {document_id!r}, which has since "
            "been deleted; use a new key to upload again"
        )


class StoreRole(StrEnum):
    """What a backing store is for: all a client is told about a store that failed."""

    BLOB_STORE = "blob store"
    REPOSITORY = "metadata repository"
    SEARCH_INDEX = "search index"
    PROCESSING_QUEUE = "processing queue"


class StoreFailure(DocpipeError):
    """A backing store cannot do what was asked.

    ``detail`` names only the store's role; ``str(error)`` is the store's own account (endpoint,
    bucket, table, key, the underlying error), for logs and operators only.
    """

    state = "cannot be used"

    def __init__(self, role: StoreRole, cause: str) -> None:
        super().__init__(cause)
        self.role = role

    @property
    def detail(self) -> str:
        return f"the {self.role} {self.state}"


class StoreUnavailable(StoreFailure):
    """The store cannot be reached or is failing (503 with Retry-After): a retry may succeed."""

    state = "is unavailable"


class StoreMissing(StoreFailure):
    """The bucket, table or folder does not exist, and docpipe may not create it (503 without
    Retry-After): only an operator can bring it back."""

    state = "is missing"

    def __init__(self, role: StoreRole, store: str) -> None:
        super().__init__(
            role, f"{store} does not exist, and DOCPIPE_CREATE_MISSING=false forbids creating it"
        )
        self.store = store


class StorageFull(StoreFailure):
    """The store has no room left (507 without Retry-After: retrying cannot help until space is freed)."""

    state = "is full"


class RangeNotSatisfiable(DocpipeError):
    """No byte of the requested range lies inside the document (416)."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"the requested range lies outside the document's {size} bytes")


class UnsupportedMediaType(DocpipeError):
    """The request body is of a type this route does not take (415)."""


class UploadNotFound(DocpipeError):
    """No resumable upload has the id a request names, or it is another owner's (404)."""

    def __init__(self, upload_id: str) -> None:
        super().__init__(f"no upload matches {upload_id!r}")


class UploadExpired(DocpipeError):
    """The resumable upload expired (410): its bytes are, or are about to be, reclaimed."""

    def __init__(self, upload_id: str) -> None:
        super().__init__(f"upload {upload_id!r} has expired; create a new one")


class UploadBusy(DocpipeError):
    """Another request is writing to the resumable upload right now (409); retry once it is done."""

    def __init__(self, upload_id: str) -> None:
        super().__init__(f"another request is writing to upload {upload_id!r}; retry with a HEAD first")


class OffsetMismatch(DocpipeError):
    """A PATCH whose ``Upload-Offset`` is not the upload's current offset (409)."""

    def __init__(self, sent: int, current: int) -> None:
        self.current = current
        super().__init__(f"Upload-Offset is {sent}, but the upload is at offset {current}")


class UploadComplete(DocpipeError):
    """A write to a resumable upload that is already complete: to tus an offset mismatch (409), to the
    IETF draft a refusal of its own (400)."""

    def __init__(self, upload_id: str, length: int) -> None:
        super().__init__(f"upload {upload_id!r} is complete ({length} bytes); it takes no more bytes")


class UploadLengthMismatch(MalformedInput):
    """A body that says it ends a resumable upload but ends before its length, or says it does not but
    reaches it (400): the IETF draft's ``Upload-Complete`` disagreeing with ``Upload-Length``."""

    def __init__(self, end: int, length: int, final: bool) -> None:
        says = "ends" if final else "does not end"
        super().__init__(f"the body ends at byte {end} of an upload of {length} bytes, yet says it {says} it")


class UploadChecksumMismatch(DocpipeError):
    """A PATCH body whose ``Upload-Checksum`` does not match (tus 460): the chunk was discarded."""

    def __init__(self, algorithm: str) -> None:
        super().__init__(f"the body's {algorithm} does not match Upload-Checksum; the chunk was discarded")


class NotConfigured(DocpipeError):
    """A capability whose backend the configured adapters do not offer (501)."""


class TextNotExtracted(DocpipeError):
    """The document has no extracted text: no processor reads its type, or extraction failed (404)."""

    def __init__(self, document_id: str, why: str) -> None:
        super().__init__(f"document {document_id} has no extracted text: {why}")


class TextPending(TextNotExtracted):
    """The document's text is not extracted yet (404 with Retry-After)."""

    def __init__(self, document_id: str) -> None:
        super().__init__(document_id, "its processing is pending")


class WebhookNotDelivered(DocpipeError):
    """The webhook receiver did not take a webhook: an answer other than 2xx, a timeout, or no connection.
    The message says which, without the receiver URL's query string (it may hold a token)."""
