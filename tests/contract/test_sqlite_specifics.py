"""What the SQLite adapter must do beyond the repository contract."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from docpipe.adapters import sqlite
from docpipe.adapters.sqlite import SqliteRepository, open_repository
from docpipe.domain.model import ListQuery
from tests.contract.test_repository_contract import add_all, list_ids, make_document

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
async def test_every_listing_reads_an_index_in_id_order(
    filters: dict[str, str], after: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No filter or combination sorts its matches (a temporary B-tree) or scans a table or index:
    each step seeks into an index, so a page costs what it reads, not what matches. Only the first
    page of the unfiltered listing walks the table itself, newest first, stopped by its LIMIT."""
    statements: list[tuple[str, Sequence[Any]]] = []
    read = SqliteRepository._read

    async def recording_read(
        self: SqliteRepository, statement: str, parameters: Sequence[Any]
    ) -> list[sqlite3.Row]:
        statements.append((statement, parameters))
        return await read(self, statement, parameters)

    monkeypatch.setattr(SqliteRepository, "_read", recording_read)
    async with opened_repository(tmp_path) as repository:
        documents = await add_all(
            repository,
            [make_document(f"invoice-2024-03-0{n}.pdf", tags=("finance", f"n{n}")) for n in range(1, 6)],
        )
        after_id = documents[-1].id if after else None
        await repository.list(ListQuery(limit=2, after_id=after_id, **filters))
    assert statements
    with contextlib.closing(sqlite3.connect(tmp_path / "docpipe.sqlite3")) as db:
        for statement, parameters in statements:
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            if not filters and not after:
                assert plan == ["SCAN d"]
            else:
                assert all(_seeks(step) for step in plan), plan


def _seeks(step: str) -> bool:
    """Whether a plan step looks rows up by key; anything else scans or sorts."""
    return step.startswith("SEARCH ") and " USING " in step and "(" in step


async def test_a_file_from_before_the_prefix_entries_gets_them_at_start_up(tmp_path: Path) -> None:
    """The previous schema had no ``document_prefixes``: opening such a file creates and fills it."""
    documents = [make_document("invoice-1.pdf"), make_document("receipt.pdf"), make_document("inv.txt")]
    with contextlib.closing(sqlite3.connect(tmp_path / "docpipe.sqlite3")) as db:
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
            document.id, lambda current: msgspec.structs.replace(current, filename="c", version=2)
        )
        with contextlib.closing(sqlite3.connect(tmp_path / "docpipe.sqlite3")) as db:
            assert db.execute("SELECT prefix, id FROM document_prefixes").fetchall() == [("c", document.id)]
            await repository.delete(document.id)
            assert db.execute("SELECT count(*) FROM document_prefixes").fetchone() == (0,)
