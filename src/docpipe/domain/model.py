"""Documents and the value objects the use cases exchange with the ports."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime

import msgspec


class Document(msgspec.Struct, frozen=True, kw_only=True):
    """A stored document: facts about bytes that live in the blob store under ``id``.

    ``version`` starts at 1 and grows by one on every metadata update; repositories use it for
    compare-and-swap writes and the HTTP layer derives the metadata ETag from it.
    ``detected_content_type`` is what the first bytes look like, kept when it differs from ``content_type``
    (which is what the client declared, or else the detected type).
    """

    id: str
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


class NewDocument(msgspec.Struct, frozen=True, kw_only=True):
    """What a client tells about an upload besides its bytes, already validated."""

    filename: str
    content_type: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class DocumentChanges(msgspec.Struct, frozen=True, kw_only=True):
    """A metadata update; ``None`` leaves a field as it is."""

    filename: str | None = None
    tags: tuple[str, ...] | None = None
    metadata: dict[str, str] | None = None


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
    nanos = time.time_ns()
    millis, sub_ms = divmod(nanos, 1_000_000)
    rand_a = sub_ms * 4096 // 1_000_000
    rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def is_document_id(value: str) -> bool:
    """Whether ``value`` is in the canonical form of an id that docpipe issues."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return str(parsed) == value and parsed.version == 7


def utc_now() -> datetime:
    return datetime.now(UTC)
