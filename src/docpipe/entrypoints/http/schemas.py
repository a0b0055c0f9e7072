"""The JSON shapes clients see, kept apart from the domain model so internals never leak."""

from __future__ import annotations

from datetime import datetime

import msgspec

from docpipe.domain.document_search import SearchResults
from docpipe.domain.model import Document, Processing, ProcessingState
from docpipe.domain.service import Listing


class ProcessingOut(msgspec.Struct, frozen=True, kw_only=True):
    """What processing found, as clients see it: ``error`` is the reason when ``state`` is ``failed``."""

    state: ProcessingState
    pages: int | None
    characters: int | None
    title: str | None
    error: str | None

    @classmethod
    def of(cls, processing: Processing) -> ProcessingOut:
        return cls(
            state=processing.state,
            pages=processing.pages,
            characters=processing.characters,
            title=processing.title,
            error=processing.error,
        )


class DocumentOut(msgspec.Struct, frozen=True, kw_only=True):
    """A document's metadata as clients see it: the domain ``Document`` without its blob key and version,
    and its processing without what only docpipe uses (the processor, the text's blob key)."""

    id: str
    filename: str
    content_type: str
    detected_content_type: str | None
    size: int
    sha256: str
    tags: list[str]
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime
    processing: ProcessingOut

    @classmethod
    def of(cls, document: Document) -> DocumentOut:
        return cls(
            id=document.id,
            filename=document.filename,
            content_type=document.content_type,
            detected_content_type=document.detected_content_type,
            size=document.size,
            sha256=document.sha256,
            tags=list(document.tags),
            metadata=document.metadata,
            created_at=document.created_at,
            updated_at=document.updated_at,
            processing=ProcessingOut.of(document.processing),
        )


class DocumentListOut(msgspec.Struct, frozen=True):
    """A page of ``GET /documents``: follow ``next_cursor`` until it is null."""

    documents: list[DocumentOut]
    next_cursor: str | None

    @classmethod
    def of(cls, listing: Listing) -> DocumentListOut:
        return cls([DocumentOut.of(document) for document in listing.documents], listing.next_cursor)


class SearchResultOut(msgspec.Struct, frozen=True):
    """A matching document, its score (0 to 1) and an HTML snippet, escaped, with matches in ``<mark>``."""

    document: DocumentOut
    score: float
    snippet: str


class SearchResultsOut(msgspec.Struct, frozen=True):
    """A page of ``GET /search``, best match first: follow ``next_cursor`` until it is null."""

    results: list[SearchResultOut]
    next_cursor: str | None

    @classmethod
    def of(cls, found: SearchResults) -> SearchResultsOut:
        return cls(
            [SearchResultOut(DocumentOut.of(hit.document), hit.score, hit.snippet) for hit in found.results],
            found.next_cursor,
        )


class DocumentPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PATCH /documents/{id}``: every field optional; a field that is absent stays as it is."""

    filename: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, str] | None = None


def metadata_etag(document: Document) -> str:
    """The ETag of the metadata representation: changes with every update (its version)."""
    return f'"{document.sha256[:16]}.v{document.version}"'


class KeyIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /keys``: ``expires_in`` in seconds from now; absent, the key never expires."""

    owner: str
    scopes: list[str]
    name: str = ""
    expires_in: int | None = None
