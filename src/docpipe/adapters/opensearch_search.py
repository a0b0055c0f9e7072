"""The search index in OpenSearch (opensearch-py's async client), for the AWS pair: one index shared by
every owner (``DOCPIPE_OPENSEARCH_INDEX``), created at start-up with the mapping below.

One OpenSearch document per docpipe document, its id ``<owner>/<document id>`` (owners hold no ``/``),
so two owners never share one. It holds the owner, the document id, version, content type and exact
tags (keywords, for filters and paging), and the filename, tags, metadata values and extracted text
(``passages``, an array as ``search_text.passages`` cuts it) as text fields analysed into words as
``search_text`` defines them: runs of letters and digits, lowercased, accents folded (``asciifolding``),
each cut to the longest word a query may hold. The filename is analysed a second time into trigrams
(``filename.inside``) to find words inside names, as the SQLite index's trigram table does.

**Queries** are never query syntax: each folded query word becomes a ``dis_max`` of ``constant_score``
queries, one per place it may match, each worth that place's points (``match_bool_prefix`` for the start
of a word, ``match_phrase`` over trigrams for inside the filename); the words are ``must`` clauses of one
``bool``, whose score is then their sum: exactly the points ``domain.search`` defines, which no corpus
statistic moves. Every query goes through ``_owner_scoped``, the one function that builds the ``bool``
with its owner filter. Pages follow ``search_after`` on (score, document id), the id breaking ties.

**Snippets** are docpipe's own (``search_text.render_snippet``): the filename, tags or metadata value
that matched, or the fragment of text OpenSearch's highlighter picks (``index_options: offsets``, so it
does not analyse 16 Mi characters again), marked again by ``search_text.highlight``.

**Writes** wait for the next refresh (``refresh=wait_for``): when ``put`` returns, searches see what it
wrote, as with the embedded index. A text replaces the old one in one partial update, so searches see
the old text until the new one is complete; it is sent as one request of at most ``MAX_INDEXED_CHARS``
characters, encoded as it is read (OpenSearch's default ``http.max_content_length``, 100 MB, holds it).
Names are written first: a ``remove`` while the text is read deletes the document, and the text's update
then finds nothing to update.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import msgspec
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import (
    ConflictError,
    NotFoundError,
    OpenSearchException,
    RequestError,
    TransportError,
)

from docpipe.config import OpenSearchSettings
from docpipe.domain.errors import StorageFull, StoreMissing, StoreRole, StoreUnavailable
from docpipe.domain.model import Document
from docpipe.domain.search import (
    FILENAME_POINTS,
    FILENAME_SUBSTRING_POINTS,
    MAX_WORD_CHARS,
    METADATA_POINTS,
    TAG_POINTS,
    TEXT_POINTS,
    SearchHit,
    SearchPage,
    SearchPosition,
    SearchQuery,
    fields_snippet,
)
from docpipe.domain.search_text import (
    MIN_SUBSTRING_CHARS,
    SNIPPET_CHARS,
    Segment,
    clean,
    highlight,
    passages,
    render_snippet,
)

logger = logging.getLogger(__name__)

_ROLE = StoreRole.SEARCH_INDEX
REQUEST_TIMEOUT_SECONDS = 60
"""How long one request to OpenSearch may take: a text of ``MAX_INDEXED_CHARS`` is one request."""
MAX_WRITE_ATTEMPTS = 10
"""Reads and conditional writes of a document's names before giving up (``StoreUnavailable``): each
retry means another write to the same document landed between the read and the write."""
MAX_RETRIES = 2
"""Retries of a request whose connection failed (opensearch-py's transport retries those only)."""
_MARK_START = "\x02"
_MARK_END = "\x03"
"""What the highlighter wraps matches in: control characters, which indexed text never holds (``clean``)."""

WORDS_ANALYZER = "docpipe_words"
TRIGRAMS_ANALYZER = "docpipe_trigrams"
INDEX_SETTINGS: dict[str, Any] = {
    "analysis": {
        "tokenizer": {
            WORDS_ANALYZER: {"type": "pattern", "pattern": "[^\\p{L}\\p{N}\\p{Co}]+"},
            TRIGRAMS_ANALYZER: {
                "type": "ngram",
                "min_gram": MIN_SUBSTRING_CHARS,
                "max_gram": MIN_SUBSTRING_CHARS,
            },
        },
        "filter": {"docpipe_word_cap": {"type": "truncate", "length": MAX_WORD_CHARS}},
        "analyzer": {
            WORDS_ANALYZER: {
                "type": "custom",
                "tokenizer": WORDS_ANALYZER,
                "filter": ["lowercase", "asciifolding", "docpipe_word_cap"],
            },
            TRIGRAMS_ANALYZER: {
                "type": "custom",
                "tokenizer": TRIGRAMS_ANALYZER,
                "filter": ["lowercase", "asciifolding"],
            },
        },
    }
}
"""Words cut at whatever is not a letter, digit or private-use character (``search_text``'s words),
folded, and capped at ``MAX_WORD_CHARS`` (a query word is never longer, so a giant word stays findable
by its start, and no term exceeds Lucene's limit). Trigrams of the filename for words inside it."""
INDEX_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "owner": {"type": "keyword"},
        "document_id": {"type": "keyword"},
        "version": {"type": "long"},
        "content_type": {"type": "keyword"},
        "exact_tags": {"type": "keyword"},
        "filename": {
            "type": "text",
            "analyzer": WORDS_ANALYZER,
            "fields": {"inside": {"type": "text", "analyzer": TRIGRAMS_ANALYZER}},
        },
        "tags": {"type": "text", "analyzer": WORDS_ANALYZER},
        "metadata": {"type": "text", "analyzer": WORDS_ANALYZER},
        "passages": {"type": "text", "analyzer": WORDS_ANALYZER, "index_options": "offsets"},
    },
}
_SHOWN = ["document_id", "filename", "tags", "metadata"]
"""What a search reads back of each hit: enough for its snippet when the text holds no query word."""


def _disk_full(error: TransportError) -> bool:
    """Whether OpenSearch refused a write because its disk passed the flood-stage watermark: it then
    blocks the index (``read_only_allow_delete``) until space is freed."""
    return "cluster_block_exception" in str(error.error) and "read-only-allow-delete" in str(error.info)


@contextlib.contextmanager
def _failures(index: str, *expected: type[TransportError]) -> Iterator[None]:
    """OpenSearch's and its transport's failures as domain errors, in this one place: a disk past the
    flood-stage watermark is ``StorageFull``; anything else (no connection, a timeout, a rejected or
    refused request, an answer that is not JSON) ``StoreUnavailable``. ``expected`` errors (a 404 or a
    409 the caller acts on) pass through."""
    try:
        yield
    except expected:
        raise
    except TransportError as error:
        if _disk_full(error):
            raise StorageFull(_ROLE, f"OpenSearch index {index}: {error}") from None
        raise StoreUnavailable(_ROLE, f"OpenSearch index {index}: {error}") from None
    except OpenSearchException as error:
        raise StoreUnavailable(_ROLE, f"OpenSearch index {index}: {error}") from None


def _index_missing(error: NotFoundError) -> bool:
    """Whether a 404 is for the index itself, not for a document in it."""
    return error.error == "index_not_found_exception"


def entry_id(owner: str, document_id: str) -> str:
    """The id of a document in the index: owners hold no ``/``, so no two owners' ids meet."""
    return f"{owner}/{document_id}"


def _owner_scoped(owner: str, query: SearchQuery) -> dict[str, Any]:
    """The query of ``owner``'s documents matching ``query``: every search's ``bool``, its first filter
    the owner. The one place a search query is built, so none can leave the owner out."""
    filters: list[dict[str, Any]] = [{"term": {"owner": owner}}]
    if query.tag is not None:
        filters.append({"term": {"exact_tags": query.tag}})
    if query.content_type is not None:
        filters.append({"term": {"content_type": query.content_type}})
    return {"bool": {"filter": filters, "must": [_word_points(word) for word in query.words]}}


def _worth(points: int, query: dict[str, Any]) -> dict[str, Any]:
    return {"constant_score": {"filter": query, "boost": points}}


def _word_points(word: str) -> dict[str, Any]:
    """A query scoring what ``word`` earns in a document: the points of the best place it matches."""
    places = [
        _worth(FILENAME_POINTS, {"match_bool_prefix": {"filename": word}}),
        _worth(TAG_POINTS, {"match_bool_prefix": {"tags": word}}),
        _worth(METADATA_POINTS, {"match_bool_prefix": {"metadata": word}}),
        _worth(TEXT_POINTS, {"match_bool_prefix": {"passages": word}}),
    ]
    if len(word) >= MIN_SUBSTRING_CHARS:
        places.append(_worth(FILENAME_SUBSTRING_POINTS, {"match_phrase": {"filename.inside": word}}))
    return {"dis_max": {"tie_breaker": 0, "queries": places}}


def _search_body(owner: str, query: SearchQuery) -> dict[str, Any]:
    """One page of ``query``, and one hit more to tell whether another page follows."""
    body: dict[str, Any] = {
        "size": query.limit + 1,
        "query": _owner_scoped(owner, query),
        "sort": [{"_score": {"order": "desc"}}, {"document_id": {"order": "desc"}}],
        "track_total_hits": False,
        "_source": {"includes": _SHOWN},
        "highlight": {
            "fields": {
                "passages": {
                    "type": "unified",
                    "number_of_fragments": 1,
                    "fragment_size": SNIPPET_CHARS,
                    "no_match_size": 0,
                    "pre_tags": [_MARK_START],
                    "post_tags": [_MARK_END],
                    "highlight_query": {
                        "bool": {
                            "should": [{"match_bool_prefix": {"passages": word}} for word in query.words]
                        }
                    },
                }
            }
        },
    }
    after = query.after
    if after is not None:
        body["search_after"] = [after.points, after.document_id]
    return body


def _names(document: Document) -> dict[str, Any]:
    """What the index holds of ``document`` but its text."""
    return {
        "owner": document.owner,
        "document_id": document.id,
        "version": document.version,
        "content_type": document.content_type,
        "exact_tags": list(document.tags),
        "filename": clean(document.filename),
        "tags": [clean(tag) for tag in document.tags],
        "metadata": [clean(value) for value in document.metadata.values()],
    }


async def _text_update(text: AsyncIterable[str]) -> bytes:
    """The body of the partial update that replaces a document's text with ``text``'s passages, encoded
    passage by passage: what is held is the encoded body, at most ``MAX_INDEXED_CHARS`` characters."""
    body = bytearray(b'{"doc":{"passages":[')
    first = True
    async for passage in passages(text):
        if not first:
            body += b","
        body += msgspec.json.encode(passage)
        first = False
    body += b"]}}"
    return bytes(body)


def _snippet(query: SearchQuery, hit: Mapping[str, Any]) -> str:
    fragments: Sequence[str] = hit.get("highlight", {}).get("passages", [])
    if fragments:
        fragment = fragments[0].replace(_MARK_START, "").replace(_MARK_END, "")
        return render_snippet(highlight(fragment, query.words) or [Segment(fragment, marked=False)])
    shown = hit.get("_source", {})
    return fields_snippet(
        query.words,
        filename=shown.get("filename", ""),
        tags=shown.get("tags", []),
        values=shown.get("metadata", []),
    )


def _mapping_damage(mapping: Mapping[str, Any], expected: Mapping[str, Any], path: str = "") -> list[str]:
    """How the index's field definitions differ from the mapping docpipe creates it with."""
    damage = []
    for field, wanted in expected.items():
        actual = mapping.get(field)
        name = f"{path}{field}"
        if actual is None:
            damage.append(f"the index's mapping has no field {name!r}")
            continue
        for key, value in wanted.items():
            if key == "fields":
                damage += _mapping_damage(actual.get("fields", {}), value, f"{name}.")
            elif actual.get(key) != value:
                damage.append(f"the index's field {name!r} has {key} {actual.get(key)!r}, not {value!r}")
    return damage


class OpenSearchIndex:
    """The SearchIndex port over one OpenSearch index; ``client`` is closed by ``open_search_index``."""

    def __init__(self, client: AsyncOpenSearch, index: str, *, create_missing: bool) -> None:
        self._client = client
        self._index = index
        self._create_missing = create_missing

    def _failures(self, *expected: type[TransportError]) -> contextlib.AbstractContextManager[None]:
        return _failures(self._index, *expected)

    async def ensure_index(self) -> None:
        """Create the index with docpipe's settings and mapping when it does not exist (``StoreMissing``
        when ``create_missing`` is false); another process creating it meanwhile is just as good."""
        with self._failures():
            if await self._client.indices.exists(index=self._index):
                return
        if not self._create_missing:
            raise StoreMissing(_ROLE, f"OpenSearch index {self._index}")
        try:
            with self._failures(RequestError):
                await self._client.indices.create(
                    index=self._index, body={"settings": INDEX_SETTINGS, "mappings": INDEX_MAPPINGS}
                )
        except RequestError as error:
            if error.error != "resource_already_exists_exception":
                raise StoreUnavailable(_ROLE, f"OpenSearch index {self._index}: {error}") from None
        logger.info("created the OpenSearch index %s", self._index)

    async def put(self, document: Document, text: AsyncIterable[str] | None) -> None:
        await self._write_names(document, refresh=text is None)
        if text is None:
            return
        body = await _text_update(text)
        try:
            with self._failures(NotFoundError):
                await self._client.update(
                    index=self._index,
                    id=entry_id(document.owner, document.id),
                    body=body,
                    params={"refresh": "wait_for", "retry_on_conflict": 3},
                )
        except NotFoundError as error:
            if _index_missing(error):
                raise StoreUnavailable(_ROLE, f"OpenSearch index {self._index} went missing") from None
            return  # removed while its text was read: the remove wins

    async def _write_names(self, document: Document, *, refresh: bool) -> None:
        """Index ``document``'s names unless a higher version of it is indexed already: read the indexed
        version, then write only if the document is unchanged since (its sequence number), else read
        again. An index gone missing is created again first (``DOCPIPE_CREATE_MISSING``)."""
        key = entry_id(document.owner, document.id)
        params = {"refresh": "wait_for" if refresh else "false"}
        for _ in range(MAX_WRITE_ATTEMPTS):
            try:
                with self._failures(NotFoundError):
                    stored = await self._client.get(
                        index=self._index, id=key, params={"_source_includes": "version"}
                    )
            except NotFoundError as error:
                if _index_missing(error):
                    # Writing now would let OpenSearch create it with a mapping of its own guessing.
                    await self.ensure_index()
                    continue
                stored = None
            try:
                with self._failures(ConflictError):
                    if stored is None:
                        await self._client.create(
                            index=self._index, id=key, body=_names(document), params=params
                        )
                    elif stored["_source"]["version"] <= document.version:
                        await self._client.update(
                            index=self._index,
                            id=key,
                            body={"doc": _names(document)},
                            params={
                                **params,
                                "if_seq_no": stored["_seq_no"],
                                "if_primary_term": stored["_primary_term"],
                            },
                        )
                return
            except ConflictError:
                continue  # written meanwhile: read the version again
        raise StoreUnavailable(
            _ROLE, f"OpenSearch index {self._index}: {key} changed under each of {MAX_WRITE_ATTEMPTS} writes"
        )

    async def remove(self, owner: str, document_id: str) -> None:
        with contextlib.suppress(NotFoundError), self._failures(NotFoundError):
            await self._client.delete(
                index=self._index, id=entry_id(owner, document_id), params={"refresh": "wait_for"}
            )

    async def search(self, owner: str, query: SearchQuery) -> SearchPage:
        with self._failures():
            answer = await self._client.search(index=self._index, body=_search_body(owner, query))
        found: list[dict[str, Any]] = answer["hits"]["hits"]
        page = found[: query.limit]
        hits = [
            SearchHit(hit["sort"][1], query.score(round(hit["sort"][0])), _snippet(query, hit))
            for hit in page
        ]
        next_cursor = None
        if len(found) > query.limit:
            last = page[-1]["sort"]
            next_cursor = query.cursor_after(SearchPosition(round(last[0]), last[1]))
        return SearchPage(hits, next_cursor)

    async def check(self) -> None:
        """The index answers, exists, and is not blocked for a full disk."""
        with self._failures():
            answer = await self._client.indices.get_settings(index=self._index)
        blocks = answer.get(self._index, {}).get("settings", {}).get("index", {}).get("blocks", {})
        if str(blocks.get("read_only_allow_delete")).lower() == "true":
            raise StorageFull(_ROLE, f"OpenSearch blocked index {self._index} for writes: its disk is full")

    async def verify(self) -> list[str]:
        """What docpipe can check of an index OpenSearch keeps: that it exists, its health is not red (a
        primary shard lost), and its fields are analysed as docpipe created them (an index made by hand
        or by another version would find other words). OpenSearch checks its own segments."""
        with self._failures():
            if not await self._client.indices.exists(index=self._index):
                return [f"the OpenSearch index {self._index} does not exist"]
            health = await self._client.cluster.health(index=self._index)
            mapping = await self._client.indices.get_mapping(index=self._index)
        damage = []
        if health.get("status") == "red":
            damage.append(f"the OpenSearch index {self._index} is red: a primary shard is not allocated")
        properties = mapping.get(self._index, {}).get("mappings", {}).get("properties", {})
        damage += _mapping_damage(properties, INDEX_MAPPINGS["properties"])
        return damage

    async def rebuild(self) -> None:
        """Create the index when it is missing. A write is one request, so no unfinished write leaves
        anything to drop. A lost shard or fields analysed otherwise are not repaired in place (OpenSearch
        cannot change a field's analysis): ``StoreUnavailable`` tells the operator to delete the index
        and run ``docpipe reprocess --all``, which fills the one docpipe then creates."""
        await self.ensure_index()
        if damage := await self.verify():
            raise StoreUnavailable(
                _ROLE,
                f"OpenSearch index {self._index} cannot be repaired in place ({'; '.join(damage)}):"
                " delete it, start docpipe (which creates it again) and run docpipe reprocess --all",
            )


async def open_search_index(
    settings: OpenSearchSettings, *, create_missing: bool = True
) -> AsyncIterator[OpenSearchIndex]:
    """The index ``settings.index`` at ``settings.url``, created with docpipe's mapping when missing
    (unless ``create_missing`` is false)."""
    auth = None
    if settings.username is not None and settings.password is not None:
        auth = (settings.username, settings.password.reveal())
    client = AsyncOpenSearch(
        hosts=[settings.url],
        http_auth=auth,
        timeout=REQUEST_TIMEOUT_SECONDS,
        max_retries=MAX_RETRIES,
        retry_on_timeout=False,
    )
    try:
        index = OpenSearchIndex(client, settings.index, create_missing=create_missing)
        await index.ensure_index()
        yield index
    finally:
        await client.close()
