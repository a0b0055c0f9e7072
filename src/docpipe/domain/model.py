"""Documents and the value objects the use cases exchange with the ports."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum

import msgspec

from docpipe.domain.errors import InvalidInput
from docpipe.domain.identity import clean_owner


class ProcessingState(StrEnum):
    """Where a document's processing stands: ``pending`` until a processor recorded its result."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    """No processor takes the document's content type."""


class Processing(msgspec.Struct, frozen=True, kw_only=True):
    """What processing found in a document's bytes: ``error`` is a short reason a user can read, when
    ``FAILED``; ``processor`` (``"<name>/<version>"``) produced the result; ``text_key`` is the blob key
    of the extracted text, when ``DONE``."""

    state: ProcessingState = ProcessingState.PENDING
    pages: int | None = None
    characters: int | None = None
    title: str | None = None
    error: str | None = None
    processor: str | None = None
    text_key: str | None = None


class Document(msgspec.Struct, frozen=True, kw_only=True):
    """A stored document of ``owner``: facts about bytes that live in the blob store under ``blob_key``.

    The bytes are staged under a fresh ``blob_key`` before the document exists; ``id`` is minted
    when the upload commits, so ids (and listings) follow the order of commits. Documents stored
    before blob keys existed have their bytes under their id: adapters fill ``blob_key`` in so.

    ``version`` starts at 1 and grows by one on every metadata update; repositories use it for
    compare-and-swap writes and the HTTP layer derives the metadata ETag from it.
    ``detected_content_type`` is what the first bytes look like, kept when it differs from ``content_type``
    (which is what the client declared, or else the detected type). ``links_epoch`` grows by one each
    time the document's signed links are revoked: a link issued at a lower epoch no longer works.
    ``processing`` is ``pending`` until a processor's result is recorded (a change of its own, which
    moves the version on too).
    """

    id: str
    owner: str
    blob_key: str
    filename: str
    content_type: str
    size: int
    sha256: str
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    version: int = 1
    detected_content_type: str | None = None
    links_epoch: int = 0
    processing: Processing = Processing()


def with_processing(document: Document, sha256: str, processing: Processing) -> Document | None:
    """``document`` with ``processing`` recorded, a version on; ``None`` when its bytes no longer have
    ``sha256``: the result is of bytes the document no longer holds, and is dropped."""
    if document.sha256 != sha256:
        return None
    return msgspec.structs.replace(document, processing=processing, version=document.version + 1)


class NewDocument(msgspec.Struct, frozen=True, kw_only=True):
    """What a client tells about an upload besides its bytes, as it said it: the service cleans it.

    ``content_type`` is the declared media type, if any.
    """

    filename: str
    content_type: str | None = None
    tags: Sequence[str] = ()
    metadata: Mapping[str, str] = msgspec.field(default_factory=dict)


class DocumentChanges(msgspec.Struct, frozen=True, kw_only=True):
    """A metadata update as the client sent it; ``None`` leaves a field as it is. The service cleans it."""

    filename: str | None = None
    tags: Sequence[str] | None = None
    metadata: Mapping[str, str] | None = None


class ByteRange(msgspec.Struct, frozen=True):
    """An inclusive, satisfiable byte range ``start..end`` of a blob."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class ListQuery(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a newest-first listing; ``after_id`` is where the previous page said to resume."""

    limit: int = 100
    after_id: str | None = None
    prefix: str | None = None
    tag: str | None = None
    content_type: str | None = None
    filename: str | None = None


class Page(msgspec.Struct, frozen=True):
    """At most ``limit`` matching documents, newest first, and where the next page resumes.

    A repository that must filter beyond its indexes examines a bounded number of entries per page
    (``domain.listing.EXAMINED_PER_PAGE``), so a page may hold fewer documents than ``limit``, even
    none, and still be followed by another. ``resume_after`` is the last id the page accounted for
    (the last one examined, not necessarily the last one returned); ``None`` means no match remains.
    """

    documents: list[Document]
    resume_after: str | None


class BlobEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One thing a blob store holds for docpipe, as its inventory lists it for fsck.

    A ``complete`` entry is the readable blob under ``key``; an incomplete one is what an unfinished
    upload of ``key`` left behind (a temporary file, an S3 multipart upload). ``modified`` is when it
    last grew, so an upload still sending bytes stays recent. ``handle`` is what the adapter needs to
    reclaim the entry (a file name, an upload id): opaque to everyone else.
    """

    key: str
    size: int
    modified: datetime
    complete: bool
    handle: str


def new_document_id() -> str:
    """A UUIDv7 (RFC 9562) string: unique, URL-safe and sortable by creation time.

    The 12 ``rand_a`` bits carry sub-millisecond time (RFC 9562 method 3), so ids made by one
    process sort in creation order even within one millisecond.
    """
    return _uuid7(time.time_ns(), int.from_bytes(os.urandom(8)) & ((1 << 62) - 1))


def new_blob_key(owner: str) -> str:
    """A key for bytes of ``owner`` about to be staged: ``<owner>/<uuid7>``, so a blob store can isolate
    owners by prefix (an S3 IAM policy), and fsck tells docpipe's keys from others (``is_blob_key``).
    ``owner`` is one ``clean_owner`` accepts: never empty, ``.`` or ``..``, never holding a ``/``."""
    return f"{owner}/{new_document_id()}"


def is_blob_key(value: str) -> bool:
    """Whether ``value`` is a key docpipe issues: ``<owner>/<uuid7>``, or a bare id (the key of a document
    stored before blob keys carried their owner)."""
    owner, slash, key_id = value.rpartition("/")
    if not is_document_id(key_id):
        return False
    if not slash:
        return True
    try:
        clean_owner(owner)
    except InvalidInput:
        return False
    return True


def first_id_at(moment: datetime) -> str:
    """The lowest id ``new_document_id`` can mint at ``moment`` or later: a bound for "minted since"."""
    return _uuid7(int(moment.timestamp() * 1_000_000) * 1000, 0)


def _uuid7(nanos: int, rand_b: int) -> str:
    millis, sub_ms = divmod(nanos, 1_000_000)
    rand_a = sub_ms * 4096 // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


_DOCUMENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
"""A UUIDv7 in canonical form: lower-case hex, version digit 7, RFC 9562 variant (8, 9, a or b)."""


def is_document_id(value: str) -> bool:
    """Whether ``value`` is in the canonical form of an id that docpipe issues (checked on every
    request naming a document, so by pattern rather than by parsing a ``uuid.UUID``)."""
    return _DOCUMENT_ID.fullmatch(value) is not None


KEEPABLE_DESCRIPTION = 4096
"""The most characters of tags and metadata a document kept in memory between requests holds."""


def keepable(document: Document) -> bool:
    """Whether copies of ``document`` may be kept between requests (caches of documents and of their
    representations): its tags and metadata may hold about 40,000 characters, a kept one at most
    ``KEEPABLE_DESCRIPTION``, so a cache of n documents holds at most n times some 30 KiB."""
    size = sum(map(len, document.tags))
    for key, value in document.metadata.items():
        size += len(key) + len(value)
    return size <= KEEPABLE_DESCRIPTION


def utc_now() -> datetime:
    return datetime.now(UTC)
