"""Searching one owner's documents: the index finds and ranks, the repository says what each hit is now."""

from __future__ import annotations

import asyncio

import msgspec

from docpipe.domain.errors import DocumentNotFound, NotConfigured
from docpipe.domain.model import Document
from docpipe.domain.ports import DocumentRepository, SearchIndex
from docpipe.domain.search import SearchHit, SearchQuery

SEARCH_NOT_OFFERED = (
    "full-text search needs a search index: DOCPIPE_SEARCH=opensearch (with DOCPIPE_OPENSEARCH_URL), or"
    " sqlite; with DOCPIPE_REPOSITORY=dynamodb there is none unless DOCPIPE_SEARCH names one"
)


class Found(msgspec.Struct, frozen=True):
    """A matching document as it is now, its score (0 to 1) and its snippet."""

    document: Document
    score: float
    snippet: str


class SearchResults(msgspec.Struct, frozen=True):
    """One page of results, best first; ``next_cursor`` resumes after it, ``None`` after the last."""

    results: list[Found]
    next_cursor: str | None


class DocumentSearch:
    """``index`` is ``None`` where the configuration offers no search (``NotConfigured``, 501)."""

    def __init__(self, index: SearchIndex | None, repository: DocumentRepository) -> None:
        self._index = index
        self._repository = repository

    async def search(
        self,
        owner: str,
        text: str,
        *,
        limit: int,
        cursor: str | None = None,
        tag: str | None = None,
        content_type: str | None = None,
    ) -> SearchResults:
        """One page of ``owner``'s documents matching ``text``, best first. The index may lag the
        repository: a hit whose document is gone (deleted since) is left out, and each document is
        shown as it is now. Raises ``InvalidInput`` for a query with no word or too many, and
        ``InvalidCursor`` for a cursor of another query."""
        if self._index is None:
            raise NotConfigured(SEARCH_NOT_OFFERED)
        query = SearchQuery.parse(text, limit=limit, cursor=cursor, tag=tag, content_type=content_type)
        page = await self._index.search(owner, query)
        found = await asyncio.gather(*(self._found(owner, hit) for hit in page.hits))
        return SearchResults([result for result in found if result is not None], page.next_cursor)

    async def _found(self, owner: str, hit: SearchHit) -> Found | None:
        try:
            document = await self._repository.get(owner, hit.document_id)
        except DocumentNotFound:
            return None
        return Found(document, hit.score, hit.snippet)
