"""What the SQLite adapter must do beyond the repository contract."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from docpipe.adapters.sqlite import SqliteRepository, open_repository
from docpipe.domain.model import ListQuery
from tests.contract.test_repository_contract import add_all, make_document

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
            [
                make_document(f"invoice-2024-03-0{n}.pdf", tags=("finance", f"n{n}"))
                for n in range(1, 6)
            ],
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
