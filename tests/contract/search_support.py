"""What the search index suites share: the adapters under test, documents and texts to index."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from opensearchpy import AsyncOpenSearch

from docpipe.adapters import memory_search, opensearch_search, sqlite_search
from docpipe.config import OpenSearchSettings
from docpipe.domain.model import Document, new_document_id
from docpipe.domain.ports import SearchIndex
from docpipe.domain.search import SearchHit, SearchQuery

LIVE_OPENSEARCH_URL = os.environ.get("DOCPIPE_TEST_OPENSEARCH_URL", "")
"""A real OpenSearch to run the contract against as well (``opensearch-live``), when set."""
SEARCH_INDEXES = ["sqlite", "memory", "opensearch", *(["opensearch-live"] if LIVE_OPENSEARCH_URL else [])]


@contextlib.asynccontextmanager
async def opened_search_index(
    kind: str, data_dir: Path, *, opensearch_url: str = LIVE_OPENSEARCH_URL
) -> AsyncIterator[SearchIndex]:
    """The adapter ``kind`` of the search index, its files (if any) in ``data_dir``; OpenSearch's (the
    fake's or the live one's) at ``opensearch_url``, in an index of its own, deleted afterwards."""
    if kind == "sqlite":
        async with contextlib.asynccontextmanager(sqlite_search.open_search_index)(data_dir) as index:
            yield index
    elif kind.startswith("opensearch"):
        async with opened_opensearch_index(opensearch_url) as index:
            yield index
    else:
        async with contextlib.asynccontextmanager(memory_search.open_search_index)() as fake:
            yield fake


@contextlib.asynccontextmanager
async def opened_opensearch_index(url: str) -> AsyncIterator[opensearch_search.OpenSearchIndex]:
    settings = OpenSearchSettings(url=url, index=f"docpipe-test-{uuid.uuid4().hex[:12]}")
    try:
        async with contextlib.asynccontextmanager(opensearch_search.open_search_index)(settings) as index:
            yield index
    finally:
        client = AsyncOpenSearch(hosts=[url])
        try:
            await client.indices.delete(index=settings.index, params={"ignore_unavailable": "true"})
        finally:
            await client.close()


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
