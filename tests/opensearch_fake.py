"""A small fake of OpenSearch's REST API: exactly the calls docpipe's OpenSearch adapter makes, on
loopback, in a thread of its own (so every test's event loop can reach it).

It keeps indexes in memory and implements, with OpenSearch's statuses and error bodies: index
create/exists/delete/settings/mapping, cluster health, document get/create/partial update/delete with
``if_seq_no``/``if_primary_term``, and ``_search`` for the query shapes the adapter builds (``bool``,
``dis_max``, ``constant_score``, ``term``, ``match_bool_prefix``, ``match_phrase`` over trigrams), with
``sort``, ``search_after``, ``_source`` includes and a highlighter. Anything else is a 400, as an
unknown query is to OpenSearch. Writes are visible at once (every ``refresh`` is honoured trivially).

Two things are stricter than OpenSearch, on purpose: a search whose ``bool`` has no ``term`` filter on
``owner`` is refused (400), so an adapter that leaves the owner out fails the tests; and documents are
checked against the index's mapping (``dynamic: strict``), fields analysed by the analyzer the mapping
names. The analyzers are docpipe's own word functions (``search_text``), standing in for the pattern
tokenizer, ``lowercase`` and ``asciifolding``: they agree for the words the tests use.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
from aiohttp import web

from docpipe.domain.search_text import fold, words_of


class FakeError(Exception):
    def __init__(self, status: int, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.kind = kind
        self.reason = reason


class _Index:
    def __init__(self, settings: dict[str, Any], mappings: dict[str, Any]) -> None:
        self.settings = settings
        self.mappings = mappings
        self.documents: dict[str, tuple[dict[str, Any], int]] = {}
        self.sequence = 0
        self.read_only_allow_delete = False

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def field(self, name: str) -> dict[str, Any]:
        """The mapping of ``name`` (``filename.inside`` for a sub-field); 400 for an unmapped field."""
        top, _, sub = name.partition(".")
        definition: dict[str, Any] | None = self.mappings["properties"].get(top)
        if definition is not None and sub:
            definition = definition.get("fields", {}).get(sub)
        if definition is None:
            raise FakeError(400, "query_shard_exception", f"no mapping for field [{name}]")
        return definition

    def values(self, source: dict[str, Any], name: str) -> list[Any]:
        value = source.get(name.partition(".")[0])
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    def check_document(self, source: dict[str, Any]) -> None:
        for name in source:
            if name not in self.mappings["properties"]:
                raise FakeError(
                    400,
                    "strict_dynamic_mapping_exception",
                    f"mapping set to strict, dynamic introduction of [{name}]",
                )


def _words(text: str) -> list[str]:
    return [word[:64] for word in words_of(text)]


def _analyzed(index: _Index, field: str, text: str) -> list[str]:
    analyzer = index.field(field).get("analyzer")
    if analyzer == "docpipe_words":
        return _words(text)
    raise FakeError(
        400, "illegal_argument_exception", f"the fake cannot analyse field [{field}] ({analyzer})"
    )


def _query_text(spec: Any) -> str:
    return str(spec["query"] if isinstance(spec, dict) else spec)


def _single(clause: dict[str, Any]) -> tuple[str, Any]:
    if len(clause) != 1:
        raise FakeError(400, "parsing_exception", f"expected one field in {clause}")
    [(field, spec)] = clause.items()
    return field, spec


def _matches(index: _Index, query: dict[str, Any], source: dict[str, Any]) -> float | None:
    """The score of ``source`` for ``query``, ``None`` when it does not match."""
    [(kind, body)] = query.items()
    if kind == "bool":
        return _bool(index, body, source)
    if kind == "dis_max":
        scores = [score for sub in body["queries"] if (score := _matches(index, sub, source)) is not None]
        if not scores:
            return None
        best = max(scores)
        return best + float(body.get("tie_breaker", 0.0)) * (sum(scores) - best)
    if kind == "constant_score":
        return None if _matches(index, body["filter"], source) is None else float(body.get("boost", 1.0))
    if kind == "term":
        field, spec = _single(body)
        wanted = spec["value"] if isinstance(spec, dict) else spec
        if index.field(field).get("type") != "keyword":
            raise FakeError(
                400, "illegal_argument_exception", f"the fake only takes terms on keywords: {field}"
            )
        return 1.0 if wanted in index.values(source, field) else None
    if kind == "match_bool_prefix":
        field, spec = _single(body)
        terms = _analyzed(index, field, _query_text(spec))
        if not terms:
            return None
        words = {word for value in index.values(source, field) for word in _analyzed(index, field, value)}
        found = [term in words for term in terms[:-1]] + [any(word.startswith(terms[-1]) for word in words)]
        return float(sum(found)) if any(found) else None
    if kind == "match_phrase":
        field, spec = _single(body)
        if index.field(field).get("analyzer") != "docpipe_trigrams":
            raise FakeError(
                400, "illegal_argument_exception", f"the fake only takes phrases of trigrams: {field}"
            )
        wanted = fold(_query_text(spec))
        if len(wanted) < 3:
            return None
        return 1.0 if any(wanted in fold(value) for value in index.values(source, field)) else None
    raise FakeError(400, "parsing_exception", f"unknown query [{kind}]")


def _bool(index: _Index, body: dict[str, Any], source: dict[str, Any]) -> float | None:
    def clauses(name: str) -> list[dict[str, Any]]:
        value = body.get(name, [])
        return value if isinstance(value, list) else [value]

    score = 0.0
    for clause in clauses("filter"):
        if _matches(index, clause, source) is None:
            return None
    for clause in clauses("must"):
        matched = _matches(index, clause, source)
        if matched is None:
            return None
        score += matched
    should = [
        matched for clause in clauses("should") if (matched := _matches(index, clause, source)) is not None
    ]
    if clauses("should") and not should and not clauses("must") and not clauses("filter"):
        return None
    return score + sum(should)


def _owner_filtered(query: dict[str, Any]) -> bool:
    """Whether ``query`` is a ``bool`` with a ``term`` filter on ``owner``: the fake's demand."""
    filters = query.get("bool", {}).get("filter", [])
    filters = filters if isinstance(filters, list) else [filters]
    return any(isinstance(clause.get("term", {}).get("owner"), str) for clause in filters)


_WORD = re.compile(r"[^\W_]+")


def _highlight(index: _Index, spec: dict[str, Any], field: str, source: dict[str, Any]) -> list[str]:
    """The fragment around the first match of ``spec``'s ``highlight_query`` in ``field``, matched words
    wrapped in its tags; an empty list when no value of the field matches."""
    prefixes = []
    for clause in spec["highlight_query"]["bool"]["should"]:
        clause_field, body = _single(clause["match_bool_prefix"])
        if clause_field != field:
            raise FakeError(400, "illegal_argument_exception", "the fake highlights the field queried only")
        prefixes += _analyzed(index, field, _query_text(body))
    size = int(spec["fragment_size"])
    for value in index.values(source, field):
        spans = [
            m.span()
            for m in _WORD.finditer(value)
            if any(fold(m.group())[:64].startswith(p) for p in prefixes)
        ]
        if not spans:
            continue
        start = max(0, spans[0][0] - size // 3)
        end = min(len(value), start + size)
        pieces, position = [], start
        for left, right in spans:
            if left < start or right > end:
                continue
            pieces += [value[position:left], spec["pre_tags"][0], value[left:right], spec["post_tags"][0]]
            position = right
        pieces.append(value[position:end])
        return ["".join(pieces)]
    return []


def _after(values: list[Any], after: list[Any], orders: list[str]) -> bool:
    """Whether sort ``values`` come strictly after ``after`` in the sort's order."""
    for value, bound, order in zip(values, after, orders, strict=True):
        if value != bound:
            return bool(value < bound if order == "desc" else value > bound)
    return False


class FakeOpenSearch:
    """The fake's state and its aiohttp routes."""

    def __init__(self) -> None:
        self.indexes: dict[str, _Index] = {}
        self.authorizations: set[str | None] = set()
        """Every ``Authorization`` header received (``None`` for requests without one)."""
        self.searches: list[dict[str, Any]] = []
        """Every search body received, for tests that look at what the adapter sent."""

    def _index(self, name: str) -> _Index:
        index = self.indexes.get(name)
        if index is None:
            raise FakeError(404, "index_not_found_exception", f"no such index [{name}]")
        return index

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024, middlewares=[self._errors])
        app.router.add_route("HEAD", "/{index}", self.index_exists)
        app.router.add_route("PUT", "/{index}", self.create_index)
        app.router.add_route("DELETE", "/{index}", self.delete_index)
        app.router.add_route("GET", "/{index}/_settings", self.index_settings)
        app.router.add_route("GET", "/{index}/_mapping", self.index_mapping)
        app.router.add_route("GET", "/_cluster/health/{index}", self.health)
        app.router.add_route("GET", "/{index}/_doc/{id}", self.get_document)
        app.router.add_route("PUT", "/{index}/_create/{id}", self.create_document)
        app.router.add_route("POST", "/{index}/_update/{id}", self.update_document)
        app.router.add_route("DELETE", "/{index}/_doc/{id}", self.delete_document)
        app.router.add_route("POST", "/{index}/_search", self.search)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.authorizations.add(request.headers.get("Authorization"))
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except FakeError as error:
            cause = {"type": error.kind, "reason": error.reason}
            return _json({"error": {"root_cause": [cause], **cause}, "status": error.status}, error.status)

    async def index_exists(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if request.match_info["index"] in self.indexes else 404)

    async def create_index(self, request: web.Request) -> web.Response:
        name = request.match_info["index"]
        if name in self.indexes:
            raise FakeError(400, "resource_already_exists_exception", f"index [{name}] already exists")
        body = await request.json()
        analyzers = body["settings"]["analysis"]["analyzer"]
        for field in body["mappings"]["properties"].values():
            for definition in (field, *field.get("fields", {}).values()):
                if "analyzer" in definition and definition["analyzer"] not in analyzers:
                    raise FakeError(
                        400, "mapper_parsing_exception", f"analyzer [{definition['analyzer']}] not found"
                    )
        self.indexes[name] = _Index(body["settings"], body["mappings"])
        return _json({"acknowledged": True, "shards_acknowledged": True, "index": name})

    async def delete_index(self, request: web.Request) -> web.Response:
        name = request.match_info["index"]
        if request.query.get("ignore_unavailable") != "true":
            self._index(name)
        self.indexes.pop(name, None)
        return _json({"acknowledged": True})

    async def index_settings(self, request: web.Request) -> web.Response:
        name = request.match_info["index"]
        index = self._index(name)
        settings: dict[str, Any] = {"index": {"number_of_shards": "1"}}
        if index.read_only_allow_delete:
            settings["index"]["blocks"] = {"read_only_allow_delete": "true"}
        return _json({name: {"settings": settings}})

    async def index_mapping(self, request: web.Request) -> web.Response:
        name = request.match_info["index"]
        return _json({name: {"mappings": self._index(name).mappings}})

    async def health(self, request: web.Request) -> web.Response:
        self._index(request.match_info["index"])
        return _json({"status": "green"})

    async def get_document(self, request: web.Request) -> web.Response:
        name, key = request.match_info["index"], request.match_info["id"]
        index = self._index(name)
        stored = index.documents.get(key)
        if stored is None:
            return _json({"_index": name, "_id": key, "found": False}, 404)
        source, sequence = stored
        includes = request.query.get("_source_includes")
        if includes is not None:
            source = {field: source[field] for field in includes.split(",") if field in source}
        return _json(
            {
                "_index": name,
                "_id": key,
                "found": True,
                "_seq_no": sequence,
                "_primary_term": 1,
                "_source": source,
            }
        )

    def _writable(self, index: _Index, name: str) -> None:
        if index.read_only_allow_delete:
            reason = (
                f"index [{name}] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark,"
                " index has read-only-allow-delete block];"
            )
            raise FakeError(429, "cluster_block_exception", reason)

    async def create_document(self, request: web.Request) -> web.Response:
        name, key = request.match_info["index"], request.match_info["id"]
        index = self._index(name)
        self._writable(index, name)
        if key in index.documents:
            raise FakeError(409, "version_conflict_engine_exception", f"[{key}]: document already exists")
        source = await request.json()
        index.check_document(source)
        sequence = index.next_sequence()
        index.documents[key] = (source, sequence)
        return _json(_written(name, key, "created", sequence), 201)

    async def update_document(self, request: web.Request) -> web.Response:
        name, key = request.match_info["index"], request.match_info["id"]
        index = self._index(name)
        self._writable(index, name)
        stored = index.documents.get(key)
        if stored is None:
            raise FakeError(404, "document_missing_exception", f"[{key}]: document missing")
        expected = request.query.get("if_seq_no")
        if expected is not None and (
            int(expected) != stored[1] or request.query.get("if_primary_term") != "1"
        ):
            raise FakeError(409, "version_conflict_engine_exception", f"[{key}]: version conflict")
        changes = (await request.json())["doc"]
        index.check_document(changes)
        sequence = index.next_sequence()
        index.documents[key] = ({**stored[0], **changes}, sequence)
        return _json(_written(name, key, "updated", sequence))

    async def delete_document(self, request: web.Request) -> web.Response:
        name, key = request.match_info["index"], request.match_info["id"]
        index = self._index(name)
        if index.documents.pop(key, None) is None:
            return _json(_written(name, key, "not_found", index.next_sequence()), 404)
        return _json(_written(name, key, "deleted", index.next_sequence()))

    async def search(self, request: web.Request) -> web.Response:
        name = request.match_info["index"]
        index = self._index(name)
        body = await request.json()
        self.searches.append(body)
        query = body["query"]
        if not _owner_filtered(query):
            raise FakeError(400, "fake_refusal", "the fake refuses a search without a term filter on owner")
        sort = body["sort"]
        fields = [next(iter(spec)) for spec in sort]
        orders = [spec[field]["order"] for spec, field in zip(sort, fields, strict=True)]
        hits: list[dict[str, Any]] = []
        for key, (source, _) in index.documents.items():
            score = _matches(index, query, source)
            if score is None:
                continue
            values = [score if field == "_score" else source[field] for field in fields]
            hits.append({"_index": name, "_id": key, "_score": None, "_source": source, "sort": values})
        for position in reversed(range(len(fields))):
            hits.sort(key=lambda hit: hit["sort"][position], reverse=orders[position] == "desc")
        after = body.get("search_after")
        if after is not None:
            hits = [hit for hit in hits if _after(hit["sort"], after, orders)]
        hits = hits[: int(body.get("size", 10))]
        includes = body.get("_source", {}).get("includes")
        for hit in hits:
            source = hit["_source"]
            highlighted = {
                field: fragments
                for field, spec in body.get("highlight", {}).get("fields", {}).items()
                if (fragments := _highlight(index, spec, field, source))
            }
            if highlighted:
                hit["highlight"] = highlighted
            if includes is not None:
                hit["_source"] = {field: source[field] for field in includes if field in source}
        return _json({"took": 1, "timed_out": False, "hits": {"hits": hits}})


def _written(name: str, key: str, result: str, sequence: int) -> dict[str, Any]:
    return {"_index": name, "_id": key, "result": result, "_seq_no": sequence, "_primary_term": 1}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


class RunningFake:
    """A fake served on loopback: ``url`` to reach it, ``state`` to look into it."""

    def __init__(self, url: str, state: FakeOpenSearch) -> None:
        self.url = url
        self.state = state


@contextmanager
def running_fake_opensearch() -> Iterator[RunningFake]:
    """Serve a fresh fake on a free loopback port, in a thread running an event loop of its own (the
    caller's thread may be running one already), until exit."""
    state = FakeOpenSearch()
    ready = threading.Event()
    ports: list[int] = []
    loops: list[asyncio.AbstractEventLoop] = []
    stop: list[asyncio.Event] = []

    async def serve() -> None:
        runner = web.AppRunner(state.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports.append(runner.addresses[0][1])
        loops.append(asyncio.get_running_loop())
        stop.append(asyncio.Event())
        ready.set()
        try:
            await stop[0].wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="fake-opensearch", daemon=True)
    thread.start()
    if not ready.wait(timeout=30):
        raise RuntimeError("the fake OpenSearch did not start")
    try:
        yield RunningFake(f"http://127.0.0.1:{ports[0]}", state)
    finally:
        loops[0].call_soon_threadsafe(stop[0].set)
        thread.join(timeout=30)
