"""What the search index suites share: the adapters under test, documents and texts to index."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from docpipe.adapters import memory_search, sqlite_search
from docpipe.domain.model import Document, new_document_id
from docpipe.domain.ports import SearchIndex
from docpipe.domain.search import SearchHit, SearchQuery

SEARCH_INDEXES = ["sqlite", "memory"]


@contextlib.asynccontextmanager
async def opened_search_index(kind: str, data_dir: Path) -> AsyncIterator[SearchIndex]:
    """The adapter ``kind`` of the search index, its files (if any) in ``data_dir``."""
    if kind == "sqlite":
        async with contextlib.asynccontextmanager(sqlite_search.open_search_index)(data_dir) as index:
            yield index
    else:
        async with contextlib.asynccontextmanager(memory_search.open_search_index)() as fake:
            yield fake


def a_document(
    filename: str,
    *,
    owner: str = "alice",
    tags: Sequence[str] = (),
    metadata: Mapping[str, str] | None = None,
    content_type: str = "application/pdf",
    version: int = 1,
    document_id: str | None = None,
) -> Document:
    now = datetime.now(UTC)
    identifier = document_id or new_document_id()
    return Document(
        id=identifier,
        owner=owner,
        blob_key=f"{owner}/{identifier}",
        filename=filename,
        content_type=content_type,
        size=1,
        sha256="0" * 64,
        tags=tuple(tags),
        metadata=dict(metadata or {}),
        created_at=now,
        updated_at=now,
        version=version,
    )


async def text(*pieces: str) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece


async def every_hit(index: SearchIndex, owner: str, query: SearchQuery) -> list[SearchHit]:
    """The hits of every page of ``query``, following the cursors."""
    hits: list[SearchHit] = []
    while True:
        page = await index.search(owner, query)
        hits += page.hits
        if page.next_cursor is None:
            return hits
        query = SearchQuery(
            words=query.words,
            limit=query.limit,
            cursor=page.next_cursor,
            tag=query.tag,
            content_type=query.content_type,
        )


async def found(index: SearchIndex, words: str, *, owner: str = "alice", **filters: str) -> list[str]:
    """The ids of ``owner``'s documents a search for ``words`` finds, best first."""
    query = SearchQuery.parse(words, limit=100, **filters)
    return [hit.document_id for hit in await every_hit(index, owner, query)]
