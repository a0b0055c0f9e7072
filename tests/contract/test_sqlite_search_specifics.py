"""What only the SQLite FTS5 index does: its file, the owner filter in every statement, the tokenizer
agreeing with docpipe's folding, integrity checks and rebuilds, full disks and locks."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from docpipe.adapters.sqlite_search import (
    _TEXT_TOKENIZER,
    DATABASE_NAME,
    SqliteSearchIndex,
    _bodies,
    _names,
    _page,
    open_search_index,
)
from docpipe.domain.errors import StorageFull, StoreMissing, StoreUnavailable
from docpipe.domain.search import SearchPosition, SearchQuery
from docpipe.domain.search_text import _WORD, clean, words_of
from tests.contract.search_support import a_document, found, opened_search_index, text
from tests.contract.test_search_matches_naive import ALPHABET
from tests.contract.test_sqlite_specifics import write_lock_held_elsewhere
from tests.small_disk import fill, small_disk

SYNCHRONOUS_NORMAL = 1


def _unicode61_words(text: str) -> list[str]:
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'unicode61 remove_diacritics 2')")
        db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        db.execute("INSERT INTO t VALUES (?)", (text,))
        return [row[0] for row in db.execute("SELECT term FROM v ORDER BY offset")]
    finally:
        db.close()


@pytest.mark.parametrize("char", sorted(set(ALPHABET)))
def test_docpipe_folds_and_splits_words_as_unicode61_does(char: str) -> None:
    for sample in (f"a{char}b", char, f"x {char}", f"{char}{char.upper()}"):
        cleaned = clean(sample)
        assert _unicode61_words(cleaned) == words_of(cleaned), repr(sample)


def test_every_full_text_query_filters_on_the_owner() -> None:
    query = SearchQuery.parse("report q3 résumé", tag="t", content_type="c")
    paged = SearchQuery(
        words=query.words,
        tag="t",
        content_type="c",
        cursor=query.cursor_after(SearchPosition(3, "01a215e0-dfaf-7855-bf62-b07159f0488a")),
    )
    statement, parameters = _page("alice", paged)
    selects = re.split(r"\bSELECT\b", statement)[1:]
    assert sum("MATCH ?" in select for select in selects) == 3 * 5 - 1
    for select in selects:
        if "MATCH ?" in select or "FROM scored" in select:
            assert "e.owner = ?" in select, select
    assert parameters.count("alice") == statement.count("owner = ?")
    for statement, parameters in (_names("alice", [1, 2]), _bodies("alice", [1, 2])):
        assert statement.endswith("AND owner = ?")
        assert parameters[-1] == "alice"


async def test_the_index_is_a_file_of_its_own_in_wal_mode(tmp_path: Path) -> None:
    async with opened_search_index("sqlite", tmp_path) as index:
        await index.put(a_document("a.pdf"), text("words"))
    db = sqlite3.connect(tmp_path / DATABASE_NAME)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        db.close()
    assert os.listdir(tmp_path) == [DATABASE_NAME]


async def test_names_indexed_again_at_the_same_version_write_nothing(tmp_path: Path) -> None:
    """An upload indexes its document's names at once, and its event then brings the same version:
    that second write would hold the index's writer for nothing while uploads wait for it."""
    document = a_document("twice.pdf", tags=["t"], metadata={"k": "v"})
    async with opened_search_index("sqlite", tmp_path) as index:
        await index.put(document, None)
        watcher = sqlite3.connect(tmp_path / DATABASE_NAME)
        try:
            before = watcher.execute("PRAGMA data_version").fetchone()
            await index.put(document, None)
            assert watcher.execute("PRAGMA data_version").fetchone() == before
            renamed = msgspec.structs.replace(document, filename="renamed.pdf", version=2)
            await index.put(renamed, None)
            assert watcher.execute("PRAGMA data_version").fetchone() != before
        finally:
            watcher.close()
        assert await found(index, "renamed") == [document.id]
        assert await found(index, "twice") == []


async def test_the_index_commits_without_syncing(tmp_path: Path) -> None:
    """Derived data: its writer's commits reach the WAL without an fsync, so that uploads, which wait
    for that writer (their names are indexed at once), do not wait for the disk too. A process that
    dies loses nothing; a lost power may lose the last commits (``docpipe reprocess --all``)."""
    async with opened_search_index("sqlite", tmp_path) as index:
        assert isinstance(index, SqliteSearchIndex)
        [(synchronous,)] = await index._writer.execute_fetchall("PRAGMA synchronous")
    assert synchronous == SYNCHRONOUS_NORMAL


async def test_a_names_write_goes_before_the_text_writes_waiting_for_the_writer(tmp_path: Path) -> None:
    """Uploads index their names at once and wait for it: a text being indexed (a document's processing)
    lets them go first, so that an upload waits for one batch of text at most, not for a queue of them."""
    async with opened_search_index("sqlite", tmp_path) as index:
        assert isinstance(index, SqliteSearchIndex)
        texts_when_named: list[int] = []

        def count_texts(_: object) -> None:
            db = sqlite3.connect(tmp_path / DATABASE_NAME)
            try:
                texts_when_named.append(db.execute("SELECT count(*) FROM texts").fetchone()[0])
            finally:
                db.close()

        async with index._turn(deferrable=False):  # a write in progress
            text_put = asyncio.create_task(index.put(a_document("text.pdf"), text("processed words")))
            await _until_all_wait()
            names_put = asyncio.create_task(index.put(a_document("upload.pdf"), None))
            names_put.add_done_callback(count_texts)
            await _until_all_wait()
        await asyncio.gather(names_put, text_put)
        assert texts_when_named == [0]
        assert await found(index, "processed") != []


async def _until_all_wait() -> None:
    """Let the tasks just created run until they wait (for the writer, here)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_the_index_outlasts_its_process(tmp_path: Path) -> None:
    document = a_document("lasting.pdf")
    async with opened_search_index("sqlite", tmp_path) as index:
        await index.put(document, text("durable words"))
    async with opened_search_index("sqlite", tmp_path) as index:
        assert await found(index, "lasting durable") == [document.id]


async def test_without_create_missing_a_missing_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreMissing, match=DATABASE_NAME):
        await anext(open_search_index(tmp_path, create_missing=False))
    assert os.listdir(tmp_path) == []


async def test_damage_is_found_and_a_rebuild_repairs_it(tmp_path: Path) -> None:
    document = a_document("damaged.pdf")
    async with opened_search_index("sqlite", tmp_path) as index:
        await index.put(document, text("original words"))
        db = sqlite3.connect(tmp_path / DATABASE_NAME)
        try:
            db.execute("UPDATE passages_content SET c1 = 'tampered words'")
            db.commit()
        finally:
            db.close()
        [damage] = await index.verify()
        assert "'passages'" in damage
        await index.rebuild()
        assert await index.verify() == []
        assert await found(index, "tampered") == [document.id]
        assert await found(index, "original") == []


async def test_texts_left_half_written_are_reported_and_dropped_by_a_rebuild(tmp_path: Path) -> None:
    document = a_document("kept.pdf")
    async with opened_search_index("sqlite", tmp_path) as index:
        await index.put(document, text("kept words"))
        db = sqlite3.connect(tmp_path / DATABASE_NAME)
        try:
            db.execute(
                "INSERT INTO texts (text, owner, document_id, started_at) VALUES (99, 'alice', 'x', 0)"
            )
            db.execute("INSERT INTO passages (rowid, owner, body) VALUES (99 << 16, 'alice', 'orphan words')")
            db.execute(
                "INSERT INTO texts (text, owner, document_id, started_at) VALUES (100, 'alice', 'y', ?)",
                (time.time(),),
            )
            db.commit()
        finally:
            db.close()
        assert await index.verify() == ["1 texts were left half-written by a process that stopped"]
        await index.rebuild()
        assert await index.verify() == []
        db = sqlite3.connect(tmp_path / DATABASE_NAME)
        try:
            assert db.execute("SELECT text FROM texts WHERE complete = 0").fetchall() == [(100,)]
            assert db.execute("SELECT count(*) FROM passages WHERE rowid = 99 << 16").fetchone() == (0,)
        finally:
            db.close()
        assert await found(index, "kept words") == [document.id]


@pytest.mark.usefixtures("short_sqlite_busy_timeout")
async def test_a_write_lock_held_elsewhere_makes_puts_unavailable_and_spares_searches(tmp_path: Path) -> None:
    document = a_document("locked.pdf")
    async with opened_search_index("sqlite", tmp_path) as index:
        await index.put(document, None)
        with write_lock_held_elsewhere(tmp_path / DATABASE_NAME):
            with pytest.raises(StoreUnavailable, match="locked") as raised:
                await index.put(a_document("other.pdf"), None)
            assert raised.value.detail == "the search index is unavailable"
            assert await found(index, "locked") == [document.id]
        await index.put(a_document("later.pdf"), None)
        assert len(await found(index, "pdf")) == 2


async def test_a_full_disk_is_storage_full(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        async with opened_search_index("sqlite", disk) as index:
            await index.put(a_document("before.pdf"), None)
            fill(disk)
            with pytest.raises(StorageFull) as raised:
                await index.put(a_document("after.pdf"), text("word " * 200_000))
            assert raised.value.detail == "the search index is full"
            with pytest.raises(StorageFull):
                await index.check()
            assert len(await found(index, "before")) == 1


async def test_a_put_cancelled_while_waiting_for_the_lock_leaves_the_writer_usable(tmp_path: Path) -> None:
    async with opened_search_index("sqlite", tmp_path) as index:
        with write_lock_held_elsewhere(tmp_path / DATABASE_NAME):
            waiting = asyncio.create_task(index.put(a_document("cancelled.pdf"), None))
            await asyncio.sleep(0.3)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        document = a_document("after.pdf")
        await index.put(document, text("later words"))
        assert await found(index, "after later") == [document.id]
        assert await found(index, "cancelled") == []


_EARLIER_TEXT_TABLE = (
    "CREATE VIRTUAL TABLE passages USING fts5(owner UNINDEXED, body, "
    "tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3')"
)
"""The text table as docpipe made it before it kept no word positions (``user_version`` 0)."""


def _text_table(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        [(statement,)] = db.execute("SELECT sql FROM sqlite_master WHERE name = 'passages'").fetchall()
        return str(statement)
    finally:
        db.close()


async def test_an_index_of_the_earlier_layout_is_converted_when_opened(tmp_path: Path) -> None:
    """Indexing text cost the server about 60 ms of CPU per 17-page PDF with word positions and prefixes
    of 3 characters, which no query needs: an index written so is converted when opened, keeping every
    text, and stays whole."""
    kept = a_document("kept.pdf")
    async with opened_search_index("sqlite", tmp_path) as index:
        await index.put(kept, text("earlier words, ", "another passage"))
    db = sqlite3.connect(tmp_path / DATABASE_NAME, isolation_level=None)
    try:
        rows = db.execute("SELECT rowid, owner, body FROM passages").fetchall()
        db.execute("DROP TABLE passages")
        db.execute(_EARLIER_TEXT_TABLE)
        db.executemany("INSERT INTO passages (rowid, owner, body) VALUES (?, ?, ?)", rows)
        db.execute("PRAGMA user_version = 0")
    finally:
        db.close()
    async with opened_search_index("sqlite", tmp_path) as index:
        assert "detail = none" in _text_table(tmp_path / DATABASE_NAME)
        assert await found(index, "earlier") == [kept.id]
        assert await found(index, "anoth pass") == [kept.id]
        assert await index.verify() == []
        added = a_document("added.pdf")
        await index.put(added, text("earlier again"))
        assert sorted(await found(index, "earlier")) == sorted([kept.id, added.id])
    async with opened_search_index("sqlite", tmp_path) as index:
        assert await found(index, "again") == [added.id]


def _word_chars() -> list[str]:
    """Every character beyond ASCII of a docpipe word (``search_text``: ``str.isalnum``, and private use)."""
    chars = [
        char
        for char in map(chr, itertools.chain(range(0x80, 0xD800), range(0xE000, 0xF0000)))
        if char.isalnum() or "\ue000" <= char <= "\uf8ff"
    ]
    assert _WORD.fullmatch("".join(chars))
    return chars


def test_every_character_of_a_docpipe_word_is_a_character_of_a_word_of_the_text_index() -> None:
    """The text index keeps no word positions, so it cannot match a query word that its tokenizer cuts
    in two (a phrase): every character docpipe takes as part of a word must be part of one there too.
    (The private use planes 15 and 16 are left out: ``unicode61`` takes every private use character.)"""
    chars = _word_chars()
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f'CREATE VIRTUAL TABLE t USING fts5(body, tokenize = "{_TEXT_TOKENIZER}")')
        db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        db.execute("INSERT INTO t (rowid, body) VALUES (1, ?)", (" ".join(f"a{char}" for char in chars),))
        cut = [hex(ord(chars[offset])) for (offset,) in db.execute("SELECT offset FROM v WHERE term = 'a'")]
    finally:
        db.close()
    assert cut == []


async def test_a_word_holding_a_character_unicode61_cuts_words_at_is_one_word_of_text(
    tmp_path: Path,
) -> None:
    """U+19B0 (a New Tai Lue vowel sign) is a letter for docpipe, a separator for SQLite's tables."""
    document = a_document("tai-lue.txt")
    async with opened_search_index("sqlite", tmp_path) as index:
        await index.put(document, text("ab\u19b0cd"))
        assert await found(index, "ab\u19b0cd") == [document.id]
        assert await found(index, "ab\u19b0") == [document.id]
        assert await found(index, "cd") == []
