"""The search index in SQLite FTS5, in a file of its own: ``<data dir>/search.sqlite3`` (WAL).

A file of its own, not tables beside the documents' metadata: SQLite lets one writer at a time into a
file, and indexing a long text holds the writer far longer than any metadata write, which would then wait
behind it (uploads, renames, deletes). The index is derived data, kept in step by the pipeline, so it
needs no transaction shared with the metadata. Rows are written from code, not triggers.

Three FTS5 tables, each row with its owner in an UNINDEXED column:

- ``names``: one row per document (rowid = its entry): filename, tags and metadata values, each in a
  column of its own so a query can tell where a word matched (``unicode61 remove_diacritics 2``).
- ``filenames``: the folded filename again, with the ``trigram`` tokenizer, to find words inside names.
- ``passages``: the extracted text in passages (``search_text.passages``), rowid = text id << 16 | passage
  number, so the passages of one text are one rowid range; indexed for which passages hold a word, not
  where (``_TEXT_WORDS``). An index an earlier docpipe made with word positions is converted when
  opened (``PRAGMA user_version``).

``entries`` maps an owner's document id to its entry, its version, content type and current text;
``entry_tags`` holds exact tags for the ``tag`` filter; ``texts`` lists every text written or being
written. A text is written in batches, each its own short transaction, then attached to its entry in
one transaction that drops the text it replaces: searches see the old text until the new one is whole,
and other writers wait for one batch at most. ``remove`` deletes the document's ``texts`` rows, so a
text still being read finds its row gone and is dropped.

Every statement filters on the owner: a full-text match through the owner of the entry it belongs to
(the join every match needs anyway, on a covering index: reading the owner from the FTS5 row instead
costs a lookup into its content per match, which doubled the time of a frequent word), and a read of
stored rows (filenames, passages for snippets) through the row's own owner column.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from docpipe.adapters.disk import has_no_room
from docpipe.adapters.sqlite_files import connections, converted
from docpipe.domain.errors import StorageFull, StoreRole
from docpipe.domain.model import Document
from docpipe.domain.search import (
    FILENAME_POINTS,
    FILENAME_SUBSTRING_POINTS,
    METADATA_POINTS,
    TAG_POINTS,
    TEXT_POINTS,
    SearchHit,
    SearchPage,
    SearchPosition,
    SearchQuery,
    fields_snippet,
)
from docpipe.domain.search_text import MIN_SUBSTRING_CHARS, clean, fold, highlight, passages, render_snippet

logger = logging.getLogger(__name__)

DATABASE_NAME = "search.sqlite3"
READER_CONNECTIONS = 2
BATCH_CHARS = 32 * 1024
"""Characters of text written per transaction: other writers, uploads indexing their names among
them, wait for one batch at most, which FTS5 takes about 10 ms of CPU to tokenize."""
PASSAGE_BITS = 16
"""Passage numbers take the low bits of a passage's rowid: a capped text has about 4,100 passages at
most (each but the last holds more than half of ``PASSAGE_CHARS``), far below 65,536."""
ABANDONED_AFTER_SECONDS = 3600
"""A text unfinished for this long was left by a process that died: ``rebuild`` drops it."""
_FTS_TABLES = ("names", "filenames", "passages")
_TOKENIZER = "unicode61 remove_diacritics 2"
"""Words as ``search_text`` folds them."""
_WORDS = f"tokenize = '{_TOKENIZER}', prefix = '1 2 3'"
"""Names' words, with indexes of their first 1, 2 and 3 characters: a query word that short would
otherwise merge the entries of every word it starts (``ka`` 1,250 of 20,000)."""
_CUT_BY_UNICODE61 = "".join(map(chr, [*range(0x19B0, 0x19C1), 0x19C8, 0x19C9, 0x1CF2, 0x1CF3]))
"""Letters for docpipe (``str.isalnum``) that SQLite's older Unicode tables take for marks, which
separate words: New Tai Lue vowel signs and two Vedic signs."""
_TEXT_TOKENIZER = f"{_TOKENIZER} tokenchars '{_CUT_BY_UNICODE61}'"
_TEXT_WORDS = f"tokenize = \"{_TEXT_TOKENIZER}\", prefix = '1 2', detail = none, columnsize = 0"
"""The text's words, for what queries ask of it, which is only which passages hold a word starting so:
no positions (``detail = none``: a query word is never a phrase of several, since every character of a
docpipe word is one of a word here too, ``tokenchars``), no word counts (ranking is docpipe's points),
prefix indexes of 1 and 2 characters only. Indexing a 17-page PDF's text so takes about a third of the
CPU it took with positions and a prefix index of 3 characters too, and searches read less."""
_TEXT_LAYOUT = 1
"""``PRAGMA user_version`` of an index whose ``passages`` are made with ``_TEXT_WORDS``; 0 before."""
_ROLE = StoreRole.SEARCH_INDEX
_NAME = "SQLite search index"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    entry INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    document_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    text INTEGER,
    UNIQUE (owner, document_id)
);
CREATE INDEX IF NOT EXISTS entries_by_text_owner ON entries (text, owner, entry);
CREATE TABLE IF NOT EXISTS entry_tags (
    entry INTEGER NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (entry, tag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS texts (
    text INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    document_id TEXT NOT NULL,
    started_at REAL NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS texts_by_document ON texts (owner, document_id);
CREATE VIRTUAL TABLE IF NOT EXISTS names USING fts5(owner UNINDEXED, filename, tags, metadata, {_WORDS});
CREATE VIRTUAL TABLE IF NOT EXISTS filenames USING fts5(owner UNINDEXED, filename,
    tokenize = 'trigram case_sensitive 1');
"""
_TEXT_TABLE = f"passages USING fts5(owner UNINDEXED, body, {_TEXT_WORDS})"
_SEPARATOR = "\n"
"""Between the tags, and the metadata values, of a ``names`` row: cleaned text holds no control character."""


def _failures() -> contextlib.AbstractContextManager[None]:
    """SQLite's failures as domain errors, in this one place (see ``sqlite_files.converted``)."""
    return converted(_ROLE, _NAME)


def _phrase(word: str) -> str:
    """``word`` as an FTS5 string: quoted, so nothing in it is query syntax (words hold no quote, but
    doubling one is what FTS5 asks)."""
    return '"' + word.replace('"', '""') + '"'


def _first_passage(text_id: int) -> int:
    return text_id << PASSAGE_BITS


def _last_passage(text_id: int) -> int:
    return (text_id + 1 << PASSAGE_BITS) - 1


_PLACES = (("filename", FILENAME_POINTS), ("tags", TAG_POINTS), ("metadata", METADATA_POINTS))


def _hits(owner: str, words: Sequence[str]) -> tuple[str, list[Any]]:
    """A SELECT of (entry, word number, points, passage) for every place in ``owner``'s documents where a
    word matches, ``passage`` the rowid of the passage for matches in the text: one FTS5 query per word
    and place, each joined to its entry and filtered on the entry's owner."""
    selects: list[str] = []
    parameters: list[Any] = []
    for number, word in enumerate(words):
        prefix = f"{_phrase(word)}*"
        for column, points in _PLACES:
            selects.append(
                f"SELECT e.entry, {number}, {points}, NULL FROM names "  # noqa: S608
                "CROSS JOIN entries AS e ON e.entry = names.rowid WHERE names MATCH ? AND e.owner = ?"
            )
            parameters += [f"{{{column}}} : {prefix}", owner]
        if len(word) >= MIN_SUBSTRING_CHARS:
            selects.append(
                f"SELECT e.entry, {number}, {FILENAME_SUBSTRING_POINTS}, NULL FROM filenames "  # noqa: S608
                "CROSS JOIN entries AS e ON e.entry = filenames.rowid WHERE filenames MATCH ? AND e.owner = ?"
            )
            parameters += [_phrase(word), owner]
        selects.append(
            f"SELECT e.entry, {number}, {TEXT_POINTS}, p.rowid FROM passages AS p "  # noqa: S608
            f"CROSS JOIN entries AS e ON e.text = p.rowid >> {PASSAGE_BITS} "
            "WHERE passages MATCH ? AND e.owner = ?"
        )
        parameters += [prefix, owner]
    return " UNION ALL ".join(selects), parameters


def _page(owner: str, query: SearchQuery) -> tuple[str, list[Any]]:
    """The statement of one page: ``owner``'s entries where every word matched, with their points (each
    word's best place) and the first passage where a word matched, filtered, after ``query.after``,
    best first and then newest first."""
    hits, parameters = _hits(owner, query.words)
    conditions = ["e.owner = ?"]
    parameters += [len(query.words), owner]
    if query.content_type is not None:
        conditions.append("e.content_type = ?")
        parameters.append(query.content_type)
    if query.tag is not None:
        conditions.append("EXISTS (SELECT 1 FROM entry_tags AS t WHERE t.entry = e.entry AND t.tag = ?)")
        parameters.append(query.tag)
    after = query.after
    if after is not None:
        conditions.append("(s.points < ? OR (s.points = ? AND e.document_id < ?))")
        parameters += [after.points, after.points, after.document_id]
    parameters.append(query.limit + 1)
    statement = (
        f"WITH hits (entry, word, points, passage) AS ({hits}), "  # noqa: S608
        "best (entry, word, points, passage) AS "
        "(SELECT entry, word, max(points), min(passage) FROM hits GROUP BY entry, word), "
        "scored (entry, points, passage) AS "
        "(SELECT entry, sum(points), min(passage) FROM best GROUP BY entry HAVING count(*) = ?) "
        "SELECT e.document_id, s.points, e.entry, s.passage FROM scored AS s "
        "CROSS JOIN entries AS e ON e.entry = s.entry "
        f"WHERE {' AND '.join(conditions)} ORDER BY s.points DESC, e.document_id DESC LIMIT ?"
    )
    return statement, parameters


def _in(values: Sequence[int]) -> str:
    return f"({', '.join('?' * len(values))})"


def _names(owner: str, entries: Sequence[int]) -> tuple[str, list[Any]]:
    """The filename, tags and metadata values of ``entries``."""
    statement = (
        f"SELECT rowid, filename, tags, metadata FROM names WHERE rowid IN {_in(entries)} AND owner = ?"  # noqa: S608
    )
    return statement, [*entries, owner]


def _bodies(owner: str, passages: Sequence[int]) -> tuple[str, list[Any]]:
    """The text of ``passages``."""
    statement = f"SELECT rowid, body FROM passages WHERE rowid IN {_in(passages)} AND owner = ?"  # noqa: S608
    return statement, [*passages, owner]


async def _numbered(items: AsyncIterable[str]) -> AsyncIterator[tuple[int, str]]:
    number = 0
    async for item in items:
        yield number, item
        number += 1


def _fields(stored: str) -> list[str]:
    return stored.split(_SEPARATOR) if stored else []


class SqliteSearchIndex:
    """Writes go through one connection, one at a time, a text's batches after every other write
    waiting (``_turn``); searches take turns over a few readers (WAL lets them run beside the writer).
    ``folder`` holds the database file."""

    def __init__(
        self, writer: aiosqlite.Connection, readers: Sequence[aiosqlite.Connection], folder: Path
    ) -> None:
        self._writer = writer
        self._readers = itertools.cycle(readers)
        self._write_lock = asyncio.Lock()
        self._waiting = 0
        """Writes waiting for the writer that do not defer to others."""
        self._none_waiting = asyncio.Event()
        self._none_waiting.set()
        self._folder = folder

    async def _read(self, statement: str, parameters: Sequence[Any]) -> list[sqlite3.Row]:
        with _failures():
            return list(await next(self._readers).execute_fetchall(statement, parameters))

    @contextlib.asynccontextmanager
    async def _turn(self, *, deferrable: bool) -> AsyncIterator[None]:
        """The writer to oneself. A ``deferrable`` write (a text being indexed, batch by batch) takes it
        only when no other write waits: uploads index their names at once and wait for it, so they
        wait for one batch at most, never for the batches of every document being processed."""
        if deferrable:
            while True:
                await self._none_waiting.wait()
                await self._write_lock.acquire()
                if not self._waiting:
                    break
                self._write_lock.release()
        else:
            self._waiting += 1
            self._none_waiting.clear()
            try:
                await self._write_lock.acquire()
            finally:
                self._waiting -= 1
                if not self._waiting:
                    self._none_waiting.set()
        try:
            yield
        finally:
            self._write_lock.release()

    @contextlib.asynccontextmanager
    async def _transaction(self, *, deferrable: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` on the writer, one at a time (``_turn``), rolled back on any
        error or cancellation, so the next writer always finds no transaction open."""
        async with self._turn(deferrable=deferrable):
            with _failures():
                try:
                    await _to_the_end(self._writer.execute("BEGIN IMMEDIATE"))
                    yield self._writer
                    await _to_the_end(self._writer.commit())
                except BaseException:
                    if self._writer.in_transaction:
                        await _to_the_end(self._writer.rollback())
                    raise

    async def put(self, document: Document, text: AsyncIterable[str] | None) -> None:
        if text is None:
            async with self._transaction() as db:
                await _write_names(db, document)
            return
        text_id = await self._begin_text(document)
        try:
            if await self._write_passages(document.owner, text_id, text):
                async with self._transaction(deferrable=True) as db:
                    await _attach(db, document, text_id)
        finally:
            await asyncio.shield(self._drop_if_unattached(text_id))

    async def _begin_text(self, document: Document) -> int:
        async with self._transaction(deferrable=True) as db:
            cursor = await db.execute(
                "INSERT INTO texts (owner, document_id, started_at) VALUES (?, ?, ?)",
                (document.owner, document.id, time.time()),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    async def _write_passages(self, owner: str, text_id: int, text: AsyncIterable[str]) -> bool:
        """Write the passages of ``text`` in batches; ``False`` once the text is no longer wanted (its
        document was removed meanwhile)."""
        batch: list[tuple[int, str, str]] = []
        batch_chars = 0
        async for number, passage in _numbered(passages(text)):
            batch.append((_first_passage(text_id) + number, owner, passage))
            batch_chars += len(passage)
            if batch_chars >= BATCH_CHARS:
                if not await self._append(text_id, batch):
                    return False
                batch, batch_chars = [], 0
        return await self._append(text_id, batch)

    async def _append(self, text_id: int, batch: list[tuple[int, str, str]]) -> bool:
        async with self._transaction(deferrable=True) as db:
            if not await _exists(db, "SELECT 1 FROM texts WHERE text = ?", (text_id,)):
                return False
            await db.executemany("INSERT INTO passages (rowid, owner, body) VALUES (?, ?, ?)", batch)
        return True

    async def _drop_if_unattached(self, text_id: int) -> None:
        """Remove the text unless an entry holds it: what a failed, cancelled or overtaken put left."""
        async with self._transaction(deferrable=True) as db:
            if not await _exists(db, "SELECT 1 FROM entries WHERE text = ?", (text_id,)):
                await _delete_text(db, text_id)

    async def remove(self, owner: str, document_id: str) -> None:
        async with self._transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT entry FROM entries WHERE owner = ? AND document_id = ?", (owner, document_id)
            )
            for (entry,) in rows:
                await _delete_names(db, entry)
                await db.execute("DELETE FROM entries WHERE entry = ?", (entry,))
            texts = await db.execute_fetchall(
                "SELECT text FROM texts WHERE owner = ? AND document_id = ?", (owner, document_id)
            )
            for (text_id,) in texts:
                await _delete_text(db, text_id)

    async def search(self, owner: str, query: SearchQuery) -> SearchPage:
        rows = await self._read(*_page(owner, query))
        page = rows[: query.limit]
        if not page:
            return SearchPage([], None)
        names = {row[0]: row[1:] for row in await self._read(*_names(owner, [row[2] for row in page]))}
        first_passages = [row[3] for row in page if row[3] is not None]
        bodies: dict[int, str] = {}
        if first_passages:
            bodies = {row[0]: row[1] for row in await self._read(*_bodies(owner, first_passages))}
        hits = []
        for document_id, points, entry, passage in page:
            if passage is not None:
                snippet = render_snippet(highlight(bodies[passage], query.words) or [])
            else:
                filename, tags, values = names[entry]
                snippet = fields_snippet(
                    query.words, filename=filename, tags=_fields(tags), values=_fields(values)
                )
            hits.append(SearchHit(document_id, query.score(points), snippet))
        next_cursor = None
        if len(rows) > query.limit:
            document_id, points, _, _ = page[-1]
            next_cursor = query.cursor_after(SearchPosition(points, document_id))
        return SearchPage(hits, next_cursor)

    async def check(self) -> None:
        await self._read("SELECT 1 FROM entries LIMIT 1", ())
        if await asyncio.to_thread(has_no_room, self._folder):
            raise StorageFull(_ROLE, f"the file system of the search index's folder {self._folder} is full")

    async def verify(self) -> list[str]:
        """FTS5's ``integrity-check`` of each table, and texts left unfinished by a process that died."""
        damage = [
            f"the full-text index {table!r} is damaged: {problem}"
            for table in _FTS_TABLES
            if (problem := await self._integrity_problem(table))
        ]
        abandoned = await self._read(
            "SELECT count(*) FROM texts WHERE complete = 0 AND started_at < ?",
            (time.time() - ABANDONED_AFTER_SECONDS,),
        )
        if abandoned[0][0]:
            damage.append(f"{abandoned[0][0]} texts were left half-written by a process that stopped")
        return damage

    async def _integrity_problem(self, table: str) -> str | None:
        """What FTS5's ``integrity-check`` of ``table`` finds wrong, ``None`` when nothing."""
        async with self._turn(deferrable=False):
            try:
                check = f"INSERT INTO {table} ({table}) VALUES ('integrity-check')"  # noqa: S608
                await _to_the_end(self._writer.execute(check))
            except sqlite3.DatabaseError as error:
                if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_CORRUPT:
                    with _failures():
                        raise
                return str(error)
        return None

    async def rebuild(self) -> None:
        """Drop abandoned texts, then rebuild each FTS5 index from the rows it stores (``rebuild``)."""
        async with self._transaction() as db:
            abandoned = list(
                await db.execute_fetchall(
                    "SELECT text FROM texts WHERE complete = 0 AND started_at < ?",
                    (time.time() - ABANDONED_AFTER_SECONDS,),
                )
            )
            for (text_id,) in abandoned:
                await _delete_text(db, text_id)
        for table in _FTS_TABLES:
            async with self._transaction() as db:
                await db.execute(f"INSERT INTO {table} ({table}) VALUES ('rebuild')")  # noqa: S608
        logger.info("rebuilt the search index; dropped %d abandoned texts", len(abandoned))


async def _to_the_end(step: Awaitable[Any]) -> None:
    """Await a statement of the writer until its thread has run it, even when cancelled meanwhile (the
    thread runs it anyway: a ``BEGIN`` waiting for another process's lock opens its transaction later),
    then let the cancellation through, with the connection's state known."""
    running = asyncio.ensure_future(step)
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])
        raise


async def _exists(db: aiosqlite.Connection, statement: str, parameters: Sequence[Any]) -> bool:
    return bool(await db.execute_fetchall(statement, parameters))


async def _write_names(db: aiosqlite.Connection, document: Document) -> int:
    """Index the document's filename, tags, metadata values and content type, unless this version or
    a higher one is indexed already (a version's names never change: an upload indexes them at once,
    and its event brings them again); return its entry."""
    rows = list(
        await db.execute_fetchall(
            "SELECT entry, version FROM entries WHERE owner = ? AND document_id = ?",
            (document.owner, document.id),
        )
    )
    if rows and rows[0][1] >= document.version:
        entry: int = rows[0][0]
        return entry
    if rows:
        entry = rows[0][0]
        await _delete_names(db, entry)
        await db.execute(
            "UPDATE entries SET version = ?, content_type = ? WHERE entry = ?",
            (document.version, document.content_type, entry),
        )
    else:
        cursor = await db.execute(
            "INSERT INTO entries (owner, document_id, version, content_type) VALUES (?, ?, ?, ?)",
            (document.owner, document.id, document.version, document.content_type),
        )
        assert cursor.lastrowid is not None
        entry = cursor.lastrowid
    filename = clean(document.filename)
    tags = [clean(tag) for tag in document.tags]
    values = [clean(value) for value in document.metadata.values()]
    await db.execute(
        "INSERT INTO names (rowid, owner, filename, tags, metadata) VALUES (?, ?, ?, ?, ?)",
        (entry, document.owner, filename, _SEPARATOR.join(tags), _SEPARATOR.join(values)),
    )
    await db.execute(
        "INSERT INTO filenames (rowid, owner, filename) VALUES (?, ?, ?)",
        (entry, document.owner, fold(filename)),
    )
    await db.executemany(
        "INSERT OR IGNORE INTO entry_tags (entry, tag) VALUES (?, ?)", [(entry, tag) for tag in document.tags]
    )
    return entry


async def _attach(db: aiosqlite.Connection, document: Document, text_id: int) -> None:
    """Make the written text the document's, dropping the one it replaces; nothing when the document was
    removed while its text was written (its ``texts`` row is gone)."""
    if not await _exists(db, "SELECT 1 FROM texts WHERE text = ?", (text_id,)):
        return
    entry = await _write_names(db, document)
    replaced = await db.execute_fetchall("SELECT text FROM entries WHERE entry = ?", (entry,))
    await db.execute("UPDATE entries SET text = ? WHERE entry = ?", (text_id, entry))
    await db.execute("UPDATE texts SET complete = 1 WHERE text = ?", (text_id,))
    for (old,) in replaced:
        if old is not None and old != text_id:
            await _delete_text(db, old)


async def _delete_names(db: aiosqlite.Connection, entry: int) -> None:
    await db.execute("DELETE FROM names WHERE rowid = ?", (entry,))
    await db.execute("DELETE FROM filenames WHERE rowid = ?", (entry,))
    await db.execute("DELETE FROM entry_tags WHERE entry = ?", (entry,))


async def _delete_text(db: aiosqlite.Connection, text_id: int) -> None:
    await db.execute(
        "DELETE FROM passages WHERE rowid BETWEEN ? AND ?", (_first_passage(text_id), _last_passage(text_id))
    )
    await db.execute("DELETE FROM texts WHERE text = ?", (text_id,))


def database_file(data_dir: Path) -> Path:
    return data_dir / DATABASE_NAME


async def open_search_index(
    data_dir: Path, *, create_missing: bool = True
) -> AsyncIterator[SqliteSearchIndex]:
    """The index in ``<data_dir>/search.sqlite3``; folder, file and tables are created when missing,
    unless ``create_missing`` is false. Its commits are not synced to the disk (``synchronous =
    NORMAL``, still atomic and kept by a process that dies): uploads wait for its writer, since they
    index their names at once, and the index is derived data, which ``docpipe reprocess --all`` makes
    again after a lost power."""
    async with connections(
        database_file(data_dir),
        create_missing=create_missing,
        role=_ROLE,
        name=_NAME,
        readers=READER_CONNECTIONS,
        prepare=_create,
        synced=False,
    ) as (writer, readers):
        yield SqliteSearchIndex(writer, readers, data_dir)


async def _create(writer: aiosqlite.Connection) -> None:
    await writer.executescript(_SCHEMA)
    if await _text_layout(writer) >= _TEXT_LAYOUT:
        return
    await writer.execute("BEGIN IMMEDIATE")
    try:
        await _make_text_table(writer)
        await writer.commit()
    except BaseException:
        await writer.rollback()
        raise


async def _text_layout(writer: aiosqlite.Connection) -> int:
    [(layout,)] = await writer.execute_fetchall("PRAGMA user_version")
    return int(layout)


async def _make_text_table(writer: aiosqlite.Connection) -> None:
    """Create ``passages``, or convert the one an earlier docpipe made (with positions), keeping its
    rows; unless another process did meanwhile (checked again under the write lock)."""
    layout = await _text_layout(writer)
    if layout >= _TEXT_LAYOUT:
        return
    if await _exists(writer, "SELECT 1 FROM sqlite_master WHERE name = 'passages'", ()):
        logger.info("converting the search index's text table to its layout %d", _TEXT_LAYOUT)
        await writer.execute(f"CREATE VIRTUAL TABLE converted_{_TEXT_TABLE}")
        await writer.execute(
            "INSERT INTO converted_passages (rowid, owner, body) SELECT rowid, owner, body FROM passages"
        )
        await writer.execute("DROP TABLE passages")
        await writer.execute("ALTER TABLE converted_passages RENAME TO passages")
    else:
        await writer.execute(f"CREATE VIRTUAL TABLE {_TEXT_TABLE}")
    await writer.execute(f"PRAGMA user_version = {_TEXT_LAYOUT}")
