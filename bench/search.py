"""``python -m bench.search [--documents N] [--queries Q]``: search latency of the SQLite FTS5 index.

Generates ``N`` documents of one owner (a filename of two words and a number, up to two tags, a metadata
value, and a text of ``--words`` words drawn from a Zipf-like vocabulary of 20,000 made-up words),
bulk-loads them in the index's own layout (the tables ``docpipe.adapters.sqlite_search`` creates, checked
so that a schema change fails here rather than measure the wrong thing), then times ``search`` in-process,
first pages of 20 hits with snippets, for each kind of query, and prints p50 and p99. ``put`` through the
adapter is timed on a few hundred more documents, texts included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from bench.common import MIB, median, percentile
from docpipe.adapters.sqlite_search import DATABASE_NAME, PASSAGE_BITS, open_search_index
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import Document, new_document_id
from docpipe.domain.search import SearchQuery
from docpipe.domain.search_text import PASSAGE_CHARS, clean, fold

VOCABULARY = 20_000
TAGS = [f"tag{number}" for number in range(20)]
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "po", "da", "fe", "gu", "hi", "jo", "bé")
_BATCH = 5_000
_TABLES = {
    "entries": ("entry", "owner", "document_id", "version", "content_type", "text"),
    "texts": ("text", "owner", "document_id", "started_at", "complete"),
    "entry_tags": ("entry", "tag"),
}
open_index = contextlib.asynccontextmanager(open_search_index)


def _vocabulary(rng: random.Random) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < VOCABULARY:
        words["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))] = None
    return list(words)


class Corpus:
    """Made-up words, the most frequent first, drawn with weights 1/rank (Zipf)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = _vocabulary(self.rng)
        self._cumulative = list(itertools.accumulate(1 / rank for rank in range(1, len(self.words) + 1)))

    def draw(self, count: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self._cumulative, k=count)

    def document(self, words: int) -> tuple[Document, str]:
        first, second = self.draw(2)
        now = datetime.now(UTC)
        identifier = new_document_id()
        document = Document(
            id=identifier,
            owner=DEFAULT_OWNER,
            blob_key=f"{DEFAULT_OWNER}/{identifier}",
            filename=f"{first.capitalize()} {second}-{self.rng.randrange(10_000)}.pdf",
            content_type="application/pdf" if self.rng.random() < 0.7 else "text/plain",
            size=1,
            sha256="0" * 64,
            tags=tuple(self.rng.sample(TAGS, self.rng.randint(0, 2))),
            metadata={"client": " ".join(self.draw(2))},
            created_at=now,
            updated_at=now,
        )
        return document, " ".join(self.draw(words))


def _check_schema(db: sqlite3.Connection) -> None:
    for table, columns in _TABLES.items():
        found = tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})"))
        if found != columns:
            raise RuntimeError(f"the search table {table} changed: {found}; update bench/search.py")


def populate(data_dir: Path, corpus: Corpus, count: int, words: int) -> float:
    """Bulk-load ``count`` documents with their texts; return the seconds it took."""
    started = time.perf_counter()
    asyncio.run(_create(data_dir))
    db = sqlite3.connect(data_dir / DATABASE_NAME, isolation_level=None)
    try:
        _check_schema(db)
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -262144")
        for start in range(0, count, _BATCH):
            db.execute("BEGIN")
            for number in range(start + 1, min(count, start + _BATCH) + 1):
                _insert(db, number, *corpus.document(words))
            db.execute("COMMIT")
    finally:
        db.close()
    return time.perf_counter() - started


async def _create(data_dir: Path) -> None:
    async with open_index(data_dir):
        pass


def _insert(db: sqlite3.Connection, number: int, document: Document, text: str) -> None:
    """Rows as ``SqliteSearchIndex.put`` writes them; the text in one passage (shorter than one)."""
    if len(text) > PASSAGE_CHARS:
        raise RuntimeError("bench texts must fit in one passage")
    owner = document.owner
    db.execute(
        "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)",
        (number, owner, document.id, document.version, document.content_type, number),
    )
    db.execute("INSERT INTO texts VALUES (?, ?, ?, ?, 1)", (number, owner, document.id, time.time()))
    db.executemany("INSERT INTO entry_tags VALUES (?, ?)", [(number, tag) for tag in document.tags])
    db.execute(
        "INSERT INTO names (rowid, owner, filename, tags, metadata) VALUES (?, ?, ?, ?, ?)",
        (number, owner, document.filename, "\n".join(document.tags), "\n".join(document.metadata.values())),
    )
    db.execute(
        "INSERT INTO filenames (rowid, owner, filename) VALUES (?, ?, ?)",
        (number, owner, fold(document.filename)),
    )
    db.execute(
        "INSERT INTO passages (rowid, owner, body) VALUES (?, ?, ?)",
        (number << PASSAGE_BITS, owner, clean(text)),
    )


def query_kinds(corpus: Corpus) -> dict[str, Callable[[], str]]:
    words = corpus.words
    rng = corpus.rng
    return {
        "1 frequent word (top 10)": lambda: rng.choice(words[:10]),
        "1 middling word (rank 100-1000)": lambda: rng.choice(words[100:1000]),
        "1 rare word (rank 10k+)": lambda: rng.choice(words[10_000:]),
        "2 words, frequent + middling": lambda: f"{rng.choice(words[:10])} {rng.choice(words[100:1000])}",
        "3 middling words": lambda: " ".join(rng.sample(words[100:1000], 3)),
        "prefix of 2 letters": lambda: rng.choice(words[:1000])[:2],
        "inside filenames (4 letters)": lambda: rng.choice(words[:1000])[1:5],
        "middling word + tag filter": lambda: rng.choice(words[100:1000]),
    }


async def _latencies(data_dir: Path, corpus: Corpus, queries: int) -> dict[str, tuple[list[float], int]]:
    results: dict[str, tuple[list[float], int]] = {}
    async with open_index(data_dir) as index:
        for kind, make in query_kinds(corpus).items():
            times: list[float] = []
            hits = 0
            for sample in range(queries + 5):
                tag = corpus.rng.choice(TAGS) if "tag" in kind else None
                query = SearchQuery.parse(make(), tag=tag)
                start = time.perf_counter()
                page = await index.search(DEFAULT_OWNER, query)
                elapsed = (time.perf_counter() - start) * 1000
                if sample >= 5:
                    times.append(elapsed)
                    hits += len(page.hits)
            results[kind] = (times, hits // queries)
    return results


async def _puts(data_dir: Path, corpus: Corpus, count: int, words: int) -> list[float]:
    times = []
    async with open_index(data_dir) as index:
        for _ in range(count):
            document, text = corpus.document(words)
            start = time.perf_counter()
            await index.put(document, _chunks(text))
            times.append((time.perf_counter() - start) * 1000)
    return times


async def _chunks(text: str) -> AsyncIterator[str]:
    yield text


def _file_mib(data_dir: Path) -> float:
    return sum(path.stat().st_size for path in data_dir.iterdir()) / MIB


def _rows(results: dict[str, tuple[list[float], int]]) -> Iterator[str]:
    yield "| query | p50 ms | p99 ms | hits per page |\n|---|---:|---:|---:|"
    for kind, (times, hits) in results.items():
        yield f"| {kind} | {median(times):.2f} | {percentile(times, 0.99):.2f} | {hits} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    parser.add_argument("--documents", type=int, default=10_000, help="documents indexed (default 10,000)")
    parser.add_argument("--words", type=int, default=200, help="words of text per document (default 200)")
    parser.add_argument("--queries", type=int, default=100, help="timed queries per kind (default 100)")
    parser.add_argument("--puts", type=int, default=200, help="puts timed through the adapter (default 200)")
    arguments = parser.parse_args(argv)
    corpus = Corpus(seed=arguments.documents)
    with tempfile.TemporaryDirectory(prefix="docpipe-bench-search-") as folder:
        data_dir = Path(folder)
        seconds = populate(data_dir, corpus, arguments.documents, arguments.words)
        print(
            f"{arguments.documents:,} documents of {arguments.words} words loaded in {seconds:.1f} s; "
            f"index {_file_mib(data_dir):,.1f} MiB",
            flush=True,
        )
        results = asyncio.run(_latencies(data_dir, corpus, arguments.queries))
        print("\n".join(_rows(results)))
        puts = asyncio.run(_puts(data_dir, corpus, arguments.puts, arguments.words))
        print(
            f"put with text through the adapter: p50 {median(puts):.1f}, p99 {percentile(puts, 0.99):.1f} ms"
        )


if __name__ == "__main__":
    main()
