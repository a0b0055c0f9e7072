"""What the SQLite adapter must do beyond the repository contract: listings that read an index, prefix
entries kept in step, and store failures (a write lock held by another process, a full database) that a
caller can act on, none of which leaves a transaction open."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec
import pytest

from docpipe.adapters import sqlite
from docpipe.adapters.sqlite import DATABASE_NAME, SqliteRepository, open_repository
from docpipe.adapters.sqlite_inline import InlineReader
from docpipe.domain.errors import DocumentNotFound, StorageFull, StoreMissing, StoreUnavailable
from docpipe.domain.model import ListQuery
from tests.contract.test_repository_contract import OWNER, add_all, list_ids, make_document
from tests.test_upgrade import SCHEMA_BEFORE_OWNERS

opened_repository = contextlib.asynccontextmanager(open_repository)

_FILTERS: dict[str, dict[str, str]] = {
    "prefix": {"prefix": "inv"},
    "long prefix": {"prefix": "invoice-2024-03"},
    "tag": {"tag": "finance"},
    "content_type": {"content_type": "application/pdf"},
}
_FILTER_SETS = [
    {},
    {"filename": "invoice-2024-03-01.pdf"},
    *(
        {key: value for name in names for key, value in _FILTERS[name].items()}
        for size in range(1, 4)
        for names in itertools.combinations(_FILTERS, size)
        if not {"prefix", "long prefix"} <= set(names)
    ),
]


@pytest.mark.parametrize("filters", _FILTER_SETS, ids=lambda filters: "+".join(filters) or "none")
@pytest.mark.parametrize("after", [False, True], ids=["first page", "cursor page"])
@pytest.mark.parametrize("upgraded", [False, True], ids=["new file", "file from before owners"])
async def test_every_listing_reads_an_index_in_id_order(
    filters: dict[str, str], after: bool, upgraded: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No filter or combination sorts its matches (a temporary B-tree) or scans a table or index:
    each step seeks into an index, so a page costs what it reads, not what matches. Every listing,
    the unfiltered one included, seeks to its owner's entries: other owners' documents cost nothing.
    A file from before owners gets the same indexes at start-up."""
    statements: list[tuple[str, Sequence[Any]]] = []
    read = SqliteRepository._read

    async def recording_read(
        self: SqliteRepository, statement: str, parameters: Sequence[Any]
    ) -> list[sqlite3.Row]:
        statements.append((statement, parameters))
        return await read(self, statement, parameters)

    monkeypatch.setattr(SqliteRepository, "_read", recording_read)
    if upgraded:
        with contextlib.closing(sqlite3.connect(tmp_path / DATABASE_NAME)) as db:
            db.executescript(SCHEMA_BEFORE_OWNERS)
    async with opened_repository(tmp_path) as repository:
        documents = await add_all(
            repository,
            [make_document(f"invoice-2024-03-0{n}.pdf", tags=("finance", f"n{n}")) for n in range(1, 6)],
        )
        after_id = documents[-1].id if after else None
        await repository.list(OWNER, ListQuery(limit=2, after_id=after_id, **filters))
    assert statements
    with contextlib.closing(sqlite3.connect(tmp_path / DATABASE_NAME)) as db:
        for statement, parameters in statements:
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            assert all(_seeks(step) for step in plan), plan
            assert any("owner=?" in step for step in plan), plan


def _seeks(step: str) -> bool:
    """Whether a plan step looks rows up by key; anything else scans or sorts."""
    return step.startswith("SEARCH ") and " USING " in step and "(" in step


async def test_a_file_from_before_the_prefix_entries_gets_them_at_start_up(tmp_path: Path) -> None:
    """The previous schema had no ``document_prefixes``: opening such a file creates and fills it."""
    documents = [make_document("invoice-1.pdf"), make_document("receipt.pdf"), make_document("inv.txt")]
    with contextlib.closing(sqlite3.connect(tmp_path / DATABASE_NAME)) as db:
        db.executescript(sqlite._SCHEMA)
        db.executemany(sqlite._INSERT, [sqlite._row(document) for document in documents])
        db.commit()
    for _ in range(2):  # the second start-up finds the entries in place
        async with opened_repository(tmp_path) as repository:
            assert await list_ids(repository, ListQuery(prefix="inv")) == [documents[2].id, documents[0].id]
            assert await list_ids(repository, ListQuery(prefix="invoice-1.pdf")) == [documents[0].id]


async def test_prefix_entries_follow_renames_and_deletes(tmp_path: Path) -> None:
    async with opened_repository(tmp_path) as repository:
        (document,) = await add_all(repository, [make_document("ab.pdf")])
        await repository.update(
            OWNER, document.id, lambda current: msgspec.structs.replace(current, filename="c", version=2)
        )
        with contextlib.closing(sqlite3.connect(tmp_path / DATABASE_NAME)) as db:
            assert db.execute("SELECT prefix, id FROM document_prefixes").fetchall() == [("c", document.id)]
            await repository.delete(OWNER, document.id)
            assert db.execute("SELECT count(*) FROM document_prefixes").fetchone() == (0,)


@contextlib.contextmanager
def write_lock_held_elsewhere(path: Path) -> Iterator[None]:
    """Another connection, as another process would, holding the database's write lock."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


@pytest.mark.usefixtures("short_sqlite_busy_timeout")
async def test_a_write_lock_held_elsewhere_makes_writes_unavailable_and_spares_reads(tmp_path: Path) -> None:
    async with opened_repository(tmp_path) as repository:
        document = make_document()
        await repository.add(document)
        with write_lock_held_elsewhere(tmp_path / DATABASE_NAME):
            with pytest.raises(StoreUnavailable, match="locked"):
                await repository.add(make_document())
            assert await repository.get(OWNER, document.id) == document
        later = make_document()
        await repository.add(later)
        assert await repository.get(OWNER, later.id) == later


def test_an_inline_read_that_would_wait_for_a_lock_is_given_back(tmp_path: Path) -> None:
    """The inline reader never waits (it runs on the event loop): a lock held elsewhere (here the
    exclusive lock of a rollback-journal file; WAL readers meet one more rarely) makes it answer
    ``None``, and once the lock is gone it reads."""
    path = tmp_path / "rollback-journal.sqlite3"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("CREATE TABLE t (value INTEGER)")
        holder.execute("INSERT INTO t VALUES (1)")
        inline = InlineReader(path)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            assert inline.fetch("SELECT value FROM t", ()) is None
            holder.execute("COMMIT")
            assert inline.fetch("SELECT value FROM t", ()) == [(1,)]
        finally:
            inline.close()


async def test_a_document_read_again_while_the_file_is_unchanged_is_not_read_from_sqlite_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads of a document by id make one statement while nothing commits; a commit by another
    connection (another process, say) makes the next turn's read a fresh one, of the new row."""
    rows_read: list[str] = []
    fetch = InlineReader.fetch

    def counting_fetch(self: InlineReader, statement: str, parameters: Sequence[Any]) -> list[Any] | None:
        if not statement.startswith("PRAGMA"):
            rows_read.append(statement)
        return fetch(self, statement, parameters)

    monkeypatch.setattr(InlineReader, "fetch", counting_fetch)
    async with opened_repository(tmp_path) as repository:
        document = make_document()
        await repository.add(document)
        await asyncio.sleep(0)
        for _ in range(3):
            assert await repository.get(OWNER, document.id) == document
            await asyncio.sleep(0)
        assert len(rows_read) == 1
        with contextlib.closing(sqlite3.connect(tmp_path / DATABASE_NAME, isolation_level=None)) as other:
            other.execute("UPDATE documents SET filename = 'renamed.pdf' WHERE id = ?", (document.id,))
        await asyncio.sleep(0)
        assert (await repository.get(OWNER, document.id)).filename == "renamed.pdf"
        assert len(rows_read) == 2


class _AlwaysWaiting(InlineReader):
    def fetch(self, statement: str, parameters: Sequence[Any]) -> list[Any] | None:
        return None


async def test_a_point_read_the_inline_reader_gives_back_is_made_on_a_thread(tmp_path: Path) -> None:
    async with opened_repository(tmp_path) as repository:
        document = make_document()
        await repository.add(document)
    path = tmp_path / DATABASE_NAME
    async with (
        aiosqlite.connect(path, isolation_level=None) as writer,
        aiosqlite.connect(path, isolation_level=None) as reader,
    ):
        inline = _AlwaysWaiting(path)
        try:
            waiting = SqliteRepository(writer, [reader], inline, tmp_path)
            assert await waiting.get(OWNER, document.id) == document
            with pytest.raises(DocumentNotFound):
                await waiting.get(OWNER, make_document().id)
            await waiting.check()
        finally:
            inline.close()


@contextlib.asynccontextmanager
async def size_capped_repository(
    folder: Path,
) -> AsyncIterator[tuple[SqliteRepository, aiosqlite.Connection]]:
    """A repository whose writer may not grow the database past its size at the start, so a write
    that needs a new page gets SQLite's own SQLITE_FULL, as on a full disk."""
    async with opened_repository(folder):
        pass  # creates the file and its schema
    async with (
        aiosqlite.connect(folder / DATABASE_NAME, isolation_level=None) as writer,
        aiosqlite.connect(folder / DATABASE_NAME, isolation_level=None) as reader,
    ):
        ((pages,),) = await writer.execute_fetchall("PRAGMA page_count")
        await writer.execute(f"PRAGMA max_page_count = {pages}")
        inline = InlineReader(folder / DATABASE_NAME)
        try:
            yield SqliteRepository(writer, [reader], inline, folder), writer
        finally:
            inline.close()


def _big_metadata() -> dict[str, str]:
    return {"notes": "x" * 200_000}  # overflow pages: more than the database may grow


async def test_a_full_database_makes_writes_storage_full_and_leaves_no_transaction_open(
    tmp_path: Path,
) -> None:
    async with size_capped_repository(tmp_path) as (repository, writer):
        with pytest.raises(StorageFull, match="full"):
            await repository.add(make_document(metadata=_big_metadata()))
        assert not writer.in_transaction

        await writer.execute("PRAGMA max_page_count = 100000")
        small = make_document()
        await repository.add(small)
        ((pages,),) = await writer.execute_fetchall("PRAGMA page_count")
        await writer.execute(f"PRAGMA max_page_count = {pages}")
        grown = msgspec.structs.replace(small, metadata=_big_metadata(), version=small.version + 1)
        with pytest.raises(StorageFull):
            await repository.update(OWNER, small.id, lambda _: grown)
        assert not writer.in_transaction
        assert await repository.get(OWNER, small.id) == small


async def test_without_create_missing_a_folder_without_a_database_is_refused_and_left_alone(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with pytest.raises(StoreMissing, match=DATABASE_NAME):
        async with opened_repository(data_dir, create_missing=False):
            pass
    assert not data_dir.exists()
    async with opened_repository(data_dir):
        pass
    async with opened_repository(data_dir, create_missing=False) as repository:
        await repository.check()


@pytest.mark.parametrize("turns", range(24))
async def test_a_write_cancelled_at_any_point_leaves_no_transaction_open(tmp_path: Path, turns: int) -> None:
    """A cancelled caller (a client gone, a relay stopping) may leave at any await, BEGIN and COMMIT
    included, which SQLite's thread still carries out: the caller sees its cancellation (or its write
    done), never a store failure, and the next writer finds no transaction open."""
    async with opened_repository(tmp_path) as repository:
        write = asyncio.create_task(repository.add(make_document()))
        for _ in range(turns):
            await asyncio.sleep(0)
        write.cancel()
        (outcome,) = await asyncio.gather(write, return_exceptions=True)
        assert outcome is None or isinstance(outcome, asyncio.CancelledError)
        document = make_document()
        await repository.add(document)
        assert await repository.get(OWNER, document.id) == document
