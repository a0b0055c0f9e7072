"""A search index in memory, matching naively: every query reads every document of the owner and applies
``domain.search``'s rules word by word. For tests, and as the reference the SQLite index is checked
against; it passes the same contract suite."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import msgspec

from docpipe.domain.model import Document
from docpipe.domain.search import (
    SearchHit,
    SearchPage,
    SearchPosition,
    SearchQuery,
    fields_snippet,
    word_points,
)
from docpipe.domain.search_text import clean, finds, highlight, passages, render_snippet


class _Names(msgspec.Struct, frozen=True):
    version: int
    filename: str
    tags: tuple[str, ...]
    exact_tags: frozenset[str]
    """The tags as the document has them, for the ``tag`` filter; ``tags`` are cleaned, for matching."""
    values: tuple[str, ...]
    content_type: str


class _Entry(msgspec.Struct):
    names: _Names
    passages: tuple[str, ...] = ()


def _names(document: Document) -> _Names:
    return _Names(
        version=document.version,
        filename=clean(document.filename),
        tags=tuple(clean(tag) for tag in document.tags),
        exact_tags=frozenset(document.tags),
        values=tuple(clean(value) for value in document.metadata.values()),
        content_type=document.content_type,
    )


class MemorySearchIndex:
    """Holds every indexed text whole (capped as any index caps it): for tests only."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._reading: dict[object, tuple[str, str]] = {}
        """The document each text being read is for; ``remove`` forgets them, so they are dropped."""

    async def put(self, document: Document, text: AsyncIterable[str] | None) -> None:
        key = (document.owner, document.id)
        names = _names(document)
        new_passages = None
        if text is not None:
            reading = object()
            self._reading[reading] = key
            try:
                new_passages = tuple([passage async for passage in passages(text)])
            finally:
                removed_meanwhile = self._reading.pop(reading, None) is None
            if removed_meanwhile:
                return
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(names)
        elif entry.names.version <= names.version:
            entry.names = names
        if new_passages is not None:
            entry.passages = new_passages

    async def remove(self, owner: str, document_id: str) -> None:
        key = (owner, document_id)
        self._entries.pop(key, None)
        for reading in [reading for reading, of in self._reading.items() if of == key]:
            del self._reading[reading]

    async def search(self, owner: str, query: SearchQuery) -> SearchPage:
        ranked: list[tuple[int, str]] = []
        for (entry_owner, document_id), entry in self._entries.items():
            if entry_owner != owner or not _passes_filters(entry.names, query):
                continue
            earned = [_points(word, entry) for word in query.words]
            if all(earned):
                ranked.append((sum(earned), document_id))
        ranked.sort(reverse=True)
        after = query.after
        if after is not None:
            ranked = [hit for hit in ranked if hit < (after.points, after.document_id)]
        page = ranked[: query.limit]
        hits = [
            SearchHit(document_id, query.score(points), _snippet(query, self._entries[owner, document_id]))
            for points, document_id in page
        ]
        next_cursor = None
        if len(ranked) > query.limit:
            next_cursor = query.cursor_after(SearchPosition(*page[-1]))
        return SearchPage(hits, next_cursor)

    async def check(self) -> None:
        return None

    async def verify(self) -> list[str]:
        return []

    async def rebuild(self) -> None:
        return None


def _passes_filters(names: _Names, query: SearchQuery) -> bool:
    if query.tag is not None and query.tag not in names.exact_tags:
        return False
    return query.content_type is None or names.content_type == query.content_type


def _points(word: str, entry: _Entry) -> int:
    names = entry.names
    return word_points(
        word, filename=names.filename, tags=names.tags, values=names.values, passages=entry.passages
    )


def _snippet(query: SearchQuery, entry: _Entry) -> str:
    for passage in entry.passages:
        if any(finds(word, passage) for word in query.words):
            return render_snippet(highlight(passage, query.words) or [])
    names = entry.names
    return fields_snippet(query.words, filename=names.filename, tags=names.tags, values=names.values)


async def open_search_index() -> AsyncIterator[MemorySearchIndex]:
    yield MemorySearchIndex()
