"""Benchmark 6: listing latency with 1,000 documents against a large collection (1M by default) in SQLite.

Both databases get their schema from ``docpipe.adapters.sqlite.open_repository``; rows are then bulk
inserted with ``sqlite3.executemany`` in the repository's column layout (checked against the table,
so a schema change fails here instead of measuring the wrong thing), with their tags; the schema's
triggers add the filename prefix entries. What is measured goes through docpipe:
``GET /documents?limit=100`` on a docpipe server per database, first page and a deep cursor page, and
the repository's own ``list`` in-process, unfiltered and with each filter and a combination (first
pages, from the same two databases); p50 of many sequential requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench import servers
from bench.common import AUTHORIZATION, MIB, Options, Workspace, median, percentile
from bench.report import Report, Row, Target
from docpipe.adapters.sqlite import open_repository
from docpipe.domain.cursor import encode_cursor
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import ListQuery

LIST_TARGET = Target("<=", 1.5)
SMALL = 1_000
PAGE = 100
SAMPLES_PER_ROUND = 200
WARM_UP_REQUESTS = 20
_BATCH = 50_000
_COLUMNS = (
    "id",
    "owner",
    "filename",
    "content_type",
    "detected_content_type",
    "size",
    "sha256",
    "tags",
    "metadata",
    "created_at",
    "updated_at",
    "version",
    "blob_key",
    "links_epoch",
)
_KINDS = (
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("txt", "text/plain"),
    ("csv", "text/csv"),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("bin", "application/octet-stream"),
)
_WORDS = ("report", "invoice", "scan", "contract", "photo", "notes", "export", "backup", "draft", "slides")
_COMMON_TAG = "common"
"""On about half of the documents; every document also has one of ten other tags."""
_COMBINATION = "tag + content_type"
FILTERS = {
    "tag": ListQuery(limit=PAGE, tag=_COMMON_TAG),
    "prefix": ListQuery(limit=PAGE, prefix="report-"),
    "content_type": ListQuery(limit=PAGE, content_type="application/pdf"),
    _COMBINATION: ListQuery(limit=PAGE, tag=_COMMON_TAG, content_type="application/pdf"),
}
"""First pages of each filter and of a combination; the combination (1 document in 12) examines at
most the page budget of entries, so its page may be short."""

open_repo = contextlib.asynccontextmanager(open_repository)


@dataclass(frozen=True)
class Collection:
    count: int
    data_dir: Path
    deep_after_id: str
    """The id a deep page resumes after: with ``count // 10`` (at least 200) older documents below it."""
    seconds: float
    bytes: int


def _uuid7(millis: int, rand_b: int) -> str:
    return str(uuid.UUID(int=millis << 80 | 0x7 << 76 | 0b10 << 62 | rand_b))


def _rows(count: int, deep_index: int, found: list[str]) -> Iterator[tuple[tuple[Any, ...], list[str]]]:
    """``count`` documents, oldest first, one millisecond apart, ending now, with their tags; ids are
    valid UUIDv7s."""
    rng = random.Random(count)
    first_ms = time.time_ns() // 1_000_000 - count
    for index in range(count):
        millis = first_ms + index
        document_id = _uuid7(millis, rng.getrandbits(62))
        if index == deep_index:
            found.append(document_id)
        extension, content_type = _KINDS[rng.randrange(len(_KINDS))]
        stamp = datetime.fromtimestamp(millis / 1000, UTC).isoformat()
        tags = [f"t{rng.randrange(10)}", *([_COMMON_TAG] if rng.random() < 0.5 else [])]
        row = (
            document_id,
            DEFAULT_OWNER,
            f"{_WORDS[rng.randrange(len(_WORDS))]}-{rng.randrange(10**7):07d}.{extension}",
            content_type,
            None,
            rng.randrange(1, 64 * MIB),
            rng.randbytes(32).hex(),
            msgspec.json.encode(tags).decode(),
            "{}",
            stamp,
            stamp,
            1,
            document_id,
            0,
        )
        yield row, tags


async def _create_schema(data_dir: Path) -> None:
    async with open_repo(data_dir):
        pass


def populate(data_dir: Path, count: int) -> Collection:
    started = time.perf_counter()
    asyncio.run(_create_schema(data_dir))
    path = data_dir / "docpipe.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        columns = tuple(row[1] for row in db.execute("PRAGMA table_info(documents)"))
        if columns != _COLUMNS:
            raise RuntimeError(f"the documents table changed: {columns}; update bench/listing.py")
        # The prefix entries are dropped with the triggers that keep them for the bulk load, and the
        # repository rebuilds them from the loaded rows when it next opens the file, as it does for a
        # file from before they existed: much faster than keeping them up to date row by row.
        for (trigger,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            db.execute(f'DROP TRIGGER "{trigger}"')
        db.execute("DROP TABLE document_prefixes")
        # Bulk-load settings for this connection only; the file is left in WAL mode as docpipe keeps it.
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -262144")
        insert = f"INSERT INTO documents ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        deep_index = min(count - 1, max(count // 10, 2 * PAGE))
        found: list[str] = []
        rows = _rows(count, deep_index, found)
        db.execute("BEGIN")
        while batch := [row for _, row in zip(range(_BATCH), rows, strict=False)]:
            db.executemany(insert, [row for row, _ in batch])
            db.executemany(
                "INSERT INTO document_tags (owner, tag, id) VALUES (?, ?, ?)",
                [(DEFAULT_OWNER, tag, row[0]) for row, tags in batch for tag in tags],
            )
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode = WAL")
    finally:
        db.close()
    asyncio.run(_create_schema(data_dir))
    return Collection(count, data_dir, found[0], time.perf_counter() - started, path.stat().st_size)


async def _repository_latencies(
    collections: dict[int, Collection], samples: int
) -> dict[int, dict[str, list[float]]]:
    """``SqliteRepository.list`` in-process, both databases open, samples interleaved as over HTTP."""
    queries = {
        count: {
            "first": ListQuery(limit=PAGE),
            "deep": ListQuery(limit=PAGE, after_id=collection.deep_after_id),
            **FILTERS,
        }
        for count, collection in collections.items()
    }
    latencies: dict[int, dict[str, list[float]]] = {
        count: {name: [] for name in queries[count]} for count in collections
    }
    async with contextlib.AsyncExitStack() as stack:
        repositories = {
            count: await stack.enter_async_context(open_repo(collection.data_dir))
            for count, collection in collections.items()
        }
        for sample in range(WARM_UP_REQUESTS + samples):
            for count, repository in repositories.items():
                for name, query in queries[count].items():
                    start = time.perf_counter()
                    page = await repository.list(DEFAULT_OWNER, query)
                    elapsed = (time.perf_counter() - start) * 1000
                    least = 1 if name == _COMBINATION else PAGE
                    if not least <= len(page.documents) <= PAGE:
                        raise RuntimeError(f"{name} page holds {len(page.documents)} documents")
                    if sample >= WARM_UP_REQUESTS:
                        latencies[count][name].append(elapsed)
    return latencies


def _http_round(
    clients: dict[int, httpx.Client], paths: dict[int, dict[str, str]], samples: int
) -> dict[int, dict[str, list[float]]]:
    """``samples`` requests of every page of every server, interleaved so that drift hits all alike."""
    latencies: dict[int, dict[str, list[float]]] = {
        count: {name: [] for name in paths[count]} for count in clients
    }
    for _ in range(samples):
        for count, client in clients.items():
            for name, path in paths[count].items():
                start = time.perf_counter()
                response = client.get(path)
                elapsed = (time.perf_counter() - start) * 1000
                response.raise_for_status()
                if len(response.json()["documents"]) != PAGE:
                    raise RuntimeError(f"{name} page from {path} does not hold {PAGE} documents")
                latencies[count][name].append(elapsed)
    return latencies


def run(options: Options, workspace: Workspace, report: Report) -> None:
    collections: dict[int, Collection] = {}
    for count in (SMALL, options.documents):
        data_dir = workspace.folder(f"listing/{count}")
        print(f"  populating {count:,} documents ...", flush=True)
        collections[count] = collection = populate(data_dir, count)
        report.note(
            f"Listing: {count:,} documents inserted in {collection.seconds:.1f} s "
            f"(SQLite file {collection.bytes / MIB:,.1f} MiB)."
        )
    small, large = collections[SMALL], collections[options.documents]

    repository = asyncio.run(_repository_latencies(collections, options.repeat * SAMPLES_PER_ROUND))

    logs = workspace.folder("logs")
    docpipes = {count: servers.docpipe(c.data_dir, logs) for count, c in collections.items()}
    http: dict[int, dict[str, list[float]]] = {count: {"first": [], "deep": []} for count in collections}
    with servers.running(*docpipes.values()), contextlib.ExitStack() as stack:
        clients = {
            count: stack.enter_context(
                httpx.Client(base_url=server.base_url, headers=AUTHORIZATION, timeout=30)
            )
            for count, server in docpipes.items()
        }
        paths = {
            count: {
                "first": f"/documents?limit={PAGE}",
                "deep": f"/documents?limit={PAGE}&cursor={encode_cursor(c.deep_after_id)}",
            }
            for count, c in collections.items()
        }
        _http_round(clients, paths, WARM_UP_REQUESTS)
        for round_number in range(1, options.repeat + 1):
            this_round = _http_round(clients, paths, SAMPLES_PER_ROUND)
            for count, pages in this_round.items():
                for name, values in pages.items():
                    http[count][name] += values
            print(
                f"  round {round_number}: "
                + ", ".join(
                    f"{count:,} docs {name} p50 {median(values):.2f} ms"
                    for count, pages in this_round.items()
                    for name, values in pages.items()
                ),
                flush=True,
            )

    big = f"{large.count // 1_000_000}M" if large.count % 1_000_000 == 0 else f"{large.count // 1000}k"
    titles = [("first", "first page"), ("deep", "deep cursor page")]
    titles += [(name, f"first page `{name}`") for name in FILTERS]
    for source, latencies in (("HTTP `GET /documents`", http), ("`SqliteRepository.list`", repository)):
        for name, title in titles:
            if name not in latencies[large.count]:
                continue
            at_large, at_small = latencies[large.count][name], latencies[small.count][name]
            report.add(
                Row(
                    f"list {title}, {big} vs 1k docs, p50: {source}",
                    median(at_large),
                    "ms",
                    "1k docs",
                    median(at_small),
                    LIST_TARGET,
                    samples={
                        f"{big} p99": [percentile(at_large, 0.99)],
                        "1k p99": [percentile(at_small, 0.99)],
                    },
                )
            )
