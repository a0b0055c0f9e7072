"""Document metadata in a SQLite file (WAL), one writer connection and one reader connection."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import aiosqlite
import msgspec

from docpipe.adapters.disk import has_no_room
from docpipe.adapters.sqlite_files import connections, converted
from docpipe.adapters.sqlite_inline import InlineReader
from docpipe.adapters.sqlite_keys import SCHEMA as KEY_SCHEMA
from docpipe.adapters.sqlite_keys import SqliteKeyRepository
from docpipe.adapters.sqlite_outbox import SCHEMA as OUTBOX_SCHEMA
from docpipe.adapters.sqlite_outbox import SqliteOutbox, write_event
from docpipe.adapters.sqlite_recent import RecentDocuments
from docpipe.adapters.sqlite_uploads import SCHEMA as UPLOAD_SCHEMA
from docpipe.adapters.sqlite_uploads import SqliteUploadRepository
from docpipe.adapters.sqlite_webhooks import SCHEMA as WEBHOOK_SCHEMA
from docpipe.adapters.sqlite_webhooks import SqliteWebhookQueue
from docpipe.domain.errors import (
    DocumentNotFound,
    DuplicateDocument,
    IdempotencyKeyInUse,
    StorageFull,
    StoreRole,
)
from docpipe.domain.events import EventType, event_of
from docpipe.domain.idempotency import CompletedUpload, IdempotencyClaim
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.listing import PREFIX_ENTRY_LENGTH, examine_budget, resume_point
from docpipe.domain.model import Document, ListQuery, Page, Processing, with_processing
from docpipe.domain.outbox import LEASE_SECONDS, Commits

logger = logging.getLogger(__name__)

READER_CONNECTIONS = 4
"""One for the point reads that cannot be made inline, the others for listing pages."""
DATABASE_NAME = "docpipe.sqlite3"
_ROLE = StoreRole.REPOSITORY
_NAME = "SQLite database"

_TAGS_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    owner TEXT NOT NULL,
    tag TEXT NOT NULL,
    id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    PRIMARY KEY (owner, tag, id)
) WITHOUT ROWID"""
_KEYS_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    token TEXT NOT NULL,
    lease_until REAL NOT NULL,
    expires_at REAL NOT NULL,
    document_id TEXT,
    sha256 TEXT,
    PRIMARY KEY (owner, key)
) WITHOUT ROWID"""
"""Idempotency records: a key is scoped to its owner."""

# Every listing index leads with the owner: a listing reads one owner's entries in id order. Files
# written before owners get the owner columns at start-up (see ``_prepare``), before the indexes.
_TABLES = f"""
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT '{DEFAULT_OWNER}',
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    detected_content_type TEXT,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    blob_key TEXT,  -- NULL: the id, for documents stored before blob keys (see _prepare)
    links_epoch INTEGER NOT NULL DEFAULT 0,
    processing TEXT  -- the Processing as msgspec JSON; NULL: pending, as before processing existed
) WITHOUT ROWID;
{_TAGS_TABLE.format(name="document_tags")};
{_KEYS_TABLE.format(name="idempotency_keys")};
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS documents_by_owner ON documents (owner, id);
CREATE INDEX IF NOT EXISTS documents_by_filename ON documents (owner, filename, id);
CREATE INDEX IF NOT EXISTS documents_by_content_type ON documents (owner, content_type, id);
CREATE INDEX IF NOT EXISTS document_tags_by_id ON document_tags (id);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_expiry ON idempotency_keys (expires_at);
"""
_SCHEMA = _TABLES + _INDEXES
"""Every table and index but the prefix entries (``_PREFIX_SCHEMA``)."""
PURGE_BATCH = 100
"""Expired idempotency records deleted per claim: purging is lazy, and bounded per request."""

_LENGTHS = f"(VALUES {', '.join(f'({n})' for n in range(1, PREFIX_ENTRY_LENGTH + 1))})"


def _prefix_entries(row: str) -> str:
    """The SELECT of the prefix entries of one document row (``NEW``, ``OLD``, ``d``), from a FROM that
    already names ``_LENGTHS``."""
    return f"SELECT {row}.owner, substr({row}.filename, 1, column1), {row}.id"


# One entry per document and filename prefix of 1 to PREFIX_ENTRY_LENGTH characters, so that a prefix
# listing reads one owner's ids in order (the filename index yields them in name order, to be
# sorted). The triggers keep it in step with ``documents``, as an index would be.
_PREFIX_TRIGGERS = (
    "document_prefixes_on_insert",
    "document_prefixes_on_delete",
    "document_prefixes_on_rename",
)
_PREFIX_SCHEMA = (
    """CREATE TABLE document_prefixes (
        owner TEXT NOT NULL,
        prefix TEXT NOT NULL,
        id TEXT NOT NULL,
        PRIMARY KEY (owner, prefix, id)
    ) WITHOUT ROWID""",
    f"""CREATE TRIGGER document_prefixes_on_insert AFTER INSERT ON documents BEGIN
        INSERT INTO document_prefixes (owner, prefix, id) {_prefix_entries("NEW")}
        FROM {_LENGTHS} WHERE column1 <= length(NEW.filename);
    END""",
    f"""CREATE TRIGGER document_prefixes_on_delete AFTER DELETE ON documents BEGIN
        DELETE FROM document_prefixes WHERE (owner, prefix, id) IN (
            {_prefix_entries("OLD")} FROM {_LENGTHS}
        );
    END""",  # noqa: S608
    f"""CREATE TRIGGER document_prefixes_on_rename AFTER UPDATE OF filename ON documents
    WHEN OLD.filename IS NOT NEW.filename BEGIN
        DELETE FROM document_prefixes WHERE (owner, prefix, id) IN (
            {_prefix_entries("OLD")} FROM {_LENGTHS}
        );
        INSERT INTO document_prefixes (owner, prefix, id) {_prefix_entries("NEW")}
        FROM {_LENGTHS} WHERE column1 <= length(NEW.filename);
    END""",  # noqa: S608
)
_FILL_PREFIXES = (
    f"INSERT INTO document_prefixes (owner, prefix, id) {_prefix_entries('d')} "
    f"FROM documents AS d CROSS JOIN {_LENGTHS} WHERE column1 <= length(d.filename) ORDER BY 1, 2, 3"
)

_COLUMN_NAMES = (
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
    "processing",
)
_COLUMNS = ", ".join(_COLUMN_NAMES)
_SELECT_FROM = f"SELECT {', '.join('d.' + name for name in _COLUMN_NAMES)} FROM"
_SELECT = f"{_SELECT_FROM} documents AS d"
_SELECT_BY_ID = f"{_SELECT} WHERE d.id = ? AND d.owner = ?"
_INSERT = f"INSERT INTO documents ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMN_NAMES))})"  # noqa: S608
_CHANGEABLE = _COLUMN_NAMES[2:]
"""What an update writes: everything but the id and the owner, which a document keeps."""
_UPDATE = (
    f"UPDATE documents SET {', '.join(f'{name} = ?' for name in _CHANGEABLE)} "  # noqa: S608
    "WHERE id = ?"
)


def _row(document: Document) -> tuple[Any, ...]:
    return (
        document.id,
        document.owner,
        document.filename,
        document.content_type,
        document.detected_content_type,
        document.size,
        document.sha256,
        msgspec.json.encode(document.tags).decode(),
        msgspec.json.encode(document.metadata).decode(),
        document.created_at.isoformat(),
        document.updated_at.isoformat(),
        document.version,
        document.blob_key,
        document.links_epoch,
        msgspec.json.encode(document.processing).decode(),
    )


_TAGS = msgspec.json.Decoder(list[str])
_METADATA = msgspec.json.Decoder(dict[str, str])
_PROCESSING = msgspec.json.Decoder(Processing)
"""Decoders made once: ``msgspec.json.decode(..., type=...)`` looks its type up on every call, and
every point read decodes all three."""


def _document(row: sqlite3.Row | tuple[Any, ...]) -> Document:
    return Document(
        id=row[0],
        owner=row[1],
        blob_key=row[12] or row[0],
        filename=row[2],
        content_type=row[3],
        detected_content_type=row[4],
        size=row[5],
        sha256=row[6],
        tags=tuple(_TAGS.decode(row[7])),
        metadata=_METADATA.decode(row[8]),
        created_at=datetime.fromisoformat(row[9]),
        updated_at=datetime.fromisoformat(row[10]),
        version=row[11],
        links_epoch=row[13],
        processing=Processing() if row[14] is None else _PROCESSING.decode(row[14]),
    )


class _Filter(NamedTuple):
    """One listing filter: how an index answers it in id order, and how a row is checked against it."""

    source: str
    """A FROM clause whose rows, aliased ``e`` or ``d``, are the index's entries of one owner in id order."""
    key: str
    key_parameters: list[Any]
    check: str
    check_parameters: list[Any]
    exact: bool
    """Whether the index entries are exactly the matches, leaving nothing to check."""


def _filters(query: ListQuery) -> list[_Filter]:
    """The filters ``query`` sets, most selective-looking first: the first one picks the index."""
    filters = []
    if query.filename is not None:
        filters.append(
            _Filter(
                "documents AS d INDEXED BY documents_by_filename",
                "d.filename = ?",
                [query.filename],
                "d.filename = ?",
                [query.filename],
                exact=True,
            )
        )
    if query.tag is not None:
        filters.append(
            _Filter(
                "document_tags AS e",
                "e.tag = ?",
                [query.tag],
                "EXISTS (SELECT 1 FROM document_tags AS t "
                "WHERE t.owner = d.owner AND t.tag = ? AND t.id = d.id)",
                [query.tag],
                exact=True,
            )
        )
    if query.prefix:
        filters.append(
            _Filter(
                "document_prefixes AS e",
                "e.prefix = ?",
                [query.prefix[:PREFIX_ENTRY_LENGTH]],
                "substr(d.filename, 1, ?) = ?",
                [len(query.prefix), query.prefix],
                exact=len(query.prefix) <= PREFIX_ENTRY_LENGTH,
            )
        )
    if query.content_type is not None:
        filters.append(
            _Filter(
                "documents AS d INDEXED BY documents_by_content_type",
                "d.content_type = ?",
                [query.content_type],
                "d.content_type = ?",
                [query.content_type],
                exact=True,
            )
        )
    return filters


class _Listing:
    """The statements of one page of an owner's documents: it reads the owner's entries in the index of
    its first filter newest first, joins the documents and checks the other filters on them. When
    anything is left to check, an edge statement first finds the entry ``examine_budget`` entries
    down, and the page reads no further."""

    def __init__(self, owner: str, query: ListQuery) -> None:
        self._query = query
        filters = _filters(query)
        self._source, self._id = "documents AS d INDEXED BY documents_by_owner", "d.id"
        self._keys: list[str] = []
        self._key_parameters: list[Any] = []
        self._checks: list[_Filter] = []
        if filters:
            first, *others = filters
            self._source = first.source
            self._id = "e.id" if first.source.endswith(" AS e") else "d.id"
            self._keys.append(first.key)
            self._key_parameters += first.key_parameters
            self._checks = others if first.exact else filters
        self._keys.insert(0, f"{self._id.removesuffix('.id')}.owner = ?")
        self._key_parameters.insert(0, owner)
        if query.after_id is not None:
            self._keys.append(f"{self._id} < ?")
            self._key_parameters.append(query.after_id)

    @property
    def bounded(self) -> bool:
        """Whether rows are checked beyond the index, so the page must stop at the budget."""
        return bool(self._checks)

    def edge(self) -> tuple[str, list[Any]]:
        """The last entry within the budget, or no row when fewer entries remain."""
        statement = (
            f"SELECT {self._id} FROM {self._source}{self._where(self._keys)} "  # noqa: S608
            f"ORDER BY {self._id} DESC LIMIT 1 OFFSET ?"
        )
        return statement, [*self._key_parameters, examine_budget(self._query.limit) - 1]

    def page(self, edge: str | None) -> tuple[str, list[Any]]:
        """Up to ``limit + 1`` matches, newest first, none past ``edge``."""
        conditions = list(self._keys)
        parameters = list(self._key_parameters)
        if edge is not None:
            conditions.append(f"{self._id} >= ?")
            parameters.append(edge)
        for check in self._checks:
            conditions.append(check.check)
            parameters += check.check_parameters
        source = self._source
        if self._id == "e.id":
            source += " CROSS JOIN documents AS d ON d.id = e.id"
        parameters.append(self._query.limit + 1)
        return (
            f"{_SELECT_FROM} {source}{self._where(conditions)} ORDER BY {self._id} DESC LIMIT ?",
            parameters,
        )

    @staticmethod
    def _where(conditions: list[str]) -> str:
        return f" WHERE {' AND '.join(conditions)}" if conditions else ""


async def _insert_tags(db: aiosqlite.Connection, owner: str, document_id: str, tags: Sequence[str]) -> None:
    await db.executemany(
        "INSERT INTO document_tags (owner, tag, id) VALUES (?, ?, ?)",
        [(owner, tag, document_id) for tag in tags],
    )


def _claimable(row: sqlite3.Row, token: str, moment: float) -> bool:
    """Whether a live key record (token, lease_until, document_id, sha256) may be claimed by ``token``."""
    held_by, lease_until, document_id, _ = row
    return document_id is None and (held_by == token or lease_until <= moment)


def _failures() -> contextlib.AbstractContextManager[None]:
    """SQLite's failures as domain errors, in this one place (see ``sqlite_files.converted``)."""
    return converted(_ROLE, _NAME)


async def _fetch(
    reader: aiosqlite.Connection, statement: str, parameters: Sequence[Any]
) -> list[sqlite3.Row]:
    """One round trip to a reader's thread: execute and fetch together."""
    with _failures():
        return list(await reader.execute_fetchall(statement, parameters))


class SqliteRepository:
    """Writes go through one connection under a lock, so no reader ever sees an uncommitted write.

    Point reads (a document by its id, the readiness check) are made by ``inline`` on the event
    loop's thread (see ``sqlite_inline``); one that would wait for a lock goes to the first reader
    connection instead; a document read since the file last changed is not read again (see
    ``sqlite_recent``). The other reads go to a few reader connections: each aiosqlite connection is
    one thread, and WAL lets readers run side by side (SQLite releases the GIL while it works).
    Listing pages, which may take milliseconds, take turns over the others and so never hold a point
    read up. ``folder`` holds the database file.
    """

    def __init__(
        self,
        writer: aiosqlite.Connection,
        readers: Sequence[aiosqlite.Connection],
        inline: InlineReader,
        folder: Path,
    ) -> None:
        self._writer = writer
        point_reader, *list_readers = readers
        self._point_reader = point_reader
        self._inline = inline
        self._recent = RecentDocuments(self._data_version)
        self._list_readers = itertools.cycle(list_readers or [point_reader])
        self._write_lock = asyncio.Lock()
        self._folder = folder
        self._commits = Commits()

    async def _read(self, statement: str, parameters: Sequence[Any]) -> list[sqlite3.Row]:
        """A statement of a listing page, on the next listing reader."""
        return await _fetch(next(self._list_readers), statement, parameters)

    async def _point_read(self, statement: str, parameters: Sequence[Any]) -> list[sqlite3.Row]:
        """A statement that reads a row or two: inline, else (SQLite would wait) on the point reader."""
        with _failures():
            rows = self._inline.fetch(statement, parameters)
        if rows is None:
            return await _fetch(self._point_reader, statement, parameters)
        return rows

    async def _write_alone(self, statement: str, parameters: Sequence[Any]) -> list[sqlite3.Row]:
        """One writing statement as a transaction of its own (SQLite's autocommit: one trip to the
        writer's thread, where BEGIN, the statement and COMMIT take three), its rows fetched. It takes
        its turn with the transactions under the same lock; cancelled, it still ends committed or not
        before the next one begins, SQLite's thread running them in order."""
        async with self._write_lock:
            with _failures():
                return list(await self._writer.execute_fetchall(statement, parameters))

    async def add(self, document: Document, claim: IdempotencyClaim | None = None) -> None:
        async with self._transaction() as db:
            try:
                await db.execute(_INSERT, _row(document))
            except sqlite3.IntegrityError:
                raise DuplicateDocument(document.id) from None
            await _insert_tags(db, document.owner, document.id, document.tags)
            if claim is not None:
                completion = await db.execute(
                    "UPDATE idempotency_keys SET document_id = ?, sha256 = ?, expires_at = ? "
                    "WHERE owner = ? AND key = ? AND token = ? AND document_id IS NULL",
                    (
                        document.id,
                        document.sha256,
                        claim.expires_at.timestamp(),
                        claim.owner,
                        claim.key,
                        claim.token,
                    ),
                )
                if completion.rowcount == 0:
                    raise IdempotencyKeyInUse
            await write_event(db, event_of(EventType.CREATED, document))
        self._commits.ring()

    def _data_version(self) -> int | None:
        """SQLite's change counter of the file as the inline reader sees it; ``None`` if it would wait."""
        rows = self._inline.fetch("PRAGMA data_version", ())
        return None if rows is None else int(rows[0][0])

    async def get(self, owner: str, document_id: str) -> Document:
        """A document read since the file last changed is not read again (see ``sqlite_recent``)."""
        with _failures():
            kept = self._recent.find(owner, document_id)
        if kept is not None:
            return kept
        reading = self._recent.reading()
        rows = await self._point_read(_SELECT_BY_ID, (document_id, owner))
        if not rows:
            raise DocumentNotFound(document_id)
        document = _document(rows[0])
        self._recent.keep(document, reading)
        return document

    async def list(self, owner: str, query: ListQuery) -> Page:
        """Where filters remain to be checked, the edge is read first and the page after: a write
        in between can only add entries to the window the page reads, never make it skip any."""
        listing = _Listing(owner, query)
        edge = None
        if listing.bounded:
            edges = await self._read(*listing.edge())
            edge = edges[0][0] if edges else None
        rows = await self._read(*listing.page(edge))
        documents = [_document(row) for row in rows[: query.limit]]
        return Page(documents, resume_point([row[0] for row in rows], query.limit, edge))

    async def update(self, owner: str, document_id: str, change: Callable[[Document], Document]) -> Document:
        return await self._change(owner, document_id, change, EventType.UPDATED)

    async def record_processing(
        self, owner: str, document_id: str, sha256: str, processing: Processing
    ) -> Document:
        def recorded(current: Document) -> Document | None:
            return with_processing(current, sha256, processing)

        return await self._change(owner, document_id, recorded, EventType.PROCESSED)

    async def _change(
        self,
        owner: str,
        document_id: str,
        change: Callable[[Document], Document | None],
        event_type: EventType,
    ) -> Document:
        """Read, change and write with its event inside one write transaction: other writers wait their
        turn. ``change`` returning ``None`` leaves the document as it is, and writes no event."""
        async with self._transaction() as db:
            current = await _current(db, owner, document_id)
            updated = change(current)
            if updated is None:
                return current
            await db.execute(_UPDATE, (*_row(updated)[2:], document_id))
            await db.execute("DELETE FROM document_tags WHERE id = ?", (document_id,))
            await _insert_tags(db, current.owner, document_id, updated.tags)
            await write_event(db, event_of(event_type, updated))
        self._commits.ring()
        return updated

    async def delete(self, owner: str, document_id: str) -> None:
        async with self._transaction() as db:
            current = await _current(db, owner, document_id)
            await db.execute("DELETE FROM documents WHERE id = ?", (document_id,))
            await write_event(db, event_of(EventType.DELETED, current))
        self._commits.ring()

    async def claim(self, claim: IdempotencyClaim, now: datetime) -> CompletedUpload | None:
        moment = now.timestamp()
        async with self._transaction() as db:
            await db.execute(
                "DELETE FROM idempotency_keys WHERE (owner, key) IN "
                "(SELECT owner, key FROM idempotency_keys WHERE expires_at <= ? LIMIT ?)",
                (moment, PURGE_BATCH),
            )
            async with db.execute(
                "SELECT token, lease_until, document_id, sha256 FROM idempotency_keys "
                "WHERE owner = ? AND key = ? AND expires_at > ?",
                (claim.owner, claim.key, moment),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None or _claimable(row, claim.token, moment):
                await db.execute(
                    "INSERT OR REPLACE INTO idempotency_keys (owner, key, token, lease_until, expires_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        claim.owner,
                        claim.key,
                        claim.token,
                        claim.lease_until.timestamp(),
                        claim.expires_at.timestamp(),
                    ),
                )
                return None
        # Raised once the transaction has ended, so that its purge is kept.
        _, _, document_id, sha256 = row
        if document_id is None:
            raise IdempotencyKeyInUse
        return CompletedUpload(document_id, sha256)

    async def release(self, claim: IdempotencyClaim) -> None:
        async with self._transaction() as db:
            await db.execute(
                "DELETE FROM idempotency_keys "
                "WHERE owner = ? AND key = ? AND token = ? AND document_id IS NULL",
                (claim.owner, claim.key, claim.token),
            )

    async def owners(self) -> AsyncIterator[str]:
        """One seek into the owner index per owner, however many documents each has."""
        owner = ""
        while True:
            rows = await self._read(
                "SELECT owner FROM documents INDEXED BY documents_by_owner WHERE owner > ? "
                "ORDER BY owner LIMIT 1",
                (owner,),
            )
            if not rows:
                return
            owner = rows[0][0]
            yield owner

    async def check(self) -> None:
        await self._point_read("SELECT 1", ())
        if await asyncio.to_thread(has_no_room, self._folder):
            raise StorageFull(_ROLE, f"the file system of SQLite's folder {self._folder} has no room left")

    def api_keys(self) -> SqliteKeyRepository:
        """The API keys in the same file, read and written through these connections (see ``sqlite_keys``)."""
        return SqliteKeyRepository(self._read, self._transaction, self.check)

    def uploads(self) -> SqliteUploadRepository:
        """Resumable upload sessions in the same file, through these connections (see ``sqlite_uploads``)."""
        return SqliteUploadRepository(self._read, self._transaction, self._write_alone)

    def outbox(self, lease_seconds: float = LEASE_SECONDS) -> SqliteOutbox:
        """The events of these documents in the same file, for one relay (see ``sqlite_outbox``)."""
        return SqliteOutbox(self._read, self._transaction, self._commits, lease_seconds)

    def webhook_queue(self, lease_seconds: float = LEASE_SECONDS) -> SqliteWebhookQueue:
        """The webhooks not yet delivered, in the same file, for one dispatcher (see ``sqlite_webhooks``)."""
        return SqliteWebhookQueue(self._read, self._transaction, lease_seconds)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._writer, self._write_lock)


async def _current(db: aiosqlite.Connection, owner: str, document_id: str) -> Document:
    """``owner``'s document as the writer's transaction sees it; ``DocumentNotFound`` when there is none."""
    async with db.execute(_SELECT_BY_ID, (document_id, owner)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise DocumentNotFound(document_id)
    return _document(row)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` on the writer, one at a time, rolled back on any error; SQLite's
    failures, in the body as in BEGIN and COMMIT, leave it as domain errors."""

    def __init__(self, db: aiosqlite.Connection, lock: asyncio.Lock) -> None:
        self._db = db
        self._lock = lock

    async def __aenter__(self) -> aiosqlite.Connection:
        await self._lock.acquire()
        begin = asyncio.ensure_future(self._begin())
        try:
            await asyncio.shield(begin)
        except BaseException:
            await asyncio.shield(self._abandon(begin))
            raise
        return self._db

    async def _begin(self) -> None:
        with _failures():
            await self._db.execute("BEGIN IMMEDIATE")

    async def _abandon(self, begin: asyncio.Future[None]) -> None:
        """After a BEGIN that failed, or whose caller was cancelled while SQLite's thread still carried it
        out: wait for it, undo whatever it began, and only then give the next writer its turn."""
        try:
            with contextlib.suppress(Exception):
                await begin
            with contextlib.suppress(sqlite3.Error):
                await self._roll_back()
        finally:
            self._lock.release()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        try:
            with _failures():
                if error is None:
                    try:
                        await asyncio.shield(self._db.commit())
                    except BaseException:
                        await self._roll_back()
                        raise
                else:
                    await self._roll_back()
                    if isinstance(error, sqlite3.Error):
                        raise error
        finally:
            self._lock.release()

    async def _roll_back(self) -> None:
        """Roll back, unless SQLite already has: it does after SQLITE_FULL, not after a refused COMMIT,
        and either way no transaction may stay open for the next writer."""
        if self._db.in_transaction:
            await asyncio.shield(self._db.rollback())


def database_file(data_dir: Path) -> Path:
    return data_dir / DATABASE_NAME


async def _prepare(db: aiosqlite.Connection) -> None:
    """Bring the file to this schema in one transaction, so a crash leaves none of a change and
    concurrent start-ups make each once. A file written by an earlier docpipe keeps its data: its
    documents get a blob key column (NULL, meaning "the id"), a links epoch (0) and a processing
    column (NULL, meaning pending), and its
    documents, tag entries and idempotency records an owner, ``DEFAULT_OWNER``, ahead of the indexes
    that lead with it."""
    async with _Transaction(db, asyncio.Lock()):
        columns = await _columns(db, "documents")
        if "blob_key" not in columns:
            await db.execute("ALTER TABLE documents ADD COLUMN blob_key TEXT")
        if "links_epoch" not in columns:
            await db.execute("ALTER TABLE documents ADD COLUMN links_epoch INTEGER NOT NULL DEFAULT 0")
        if "processing" not in columns:
            await db.execute("ALTER TABLE documents ADD COLUMN processing TEXT")
        if "owner" not in columns:
            await db.execute(
                f"ALTER TABLE documents ADD COLUMN owner TEXT NOT NULL DEFAULT '{DEFAULT_OWNER}'"
            )
            for index in ("documents_by_filename", "documents_by_content_type"):
                await db.execute(f"DROP INDEX IF EXISTS {index}")
            logger.info("the stored documents belong to owner %r", DEFAULT_OWNER)
        if "owner" not in await _columns(db, "document_tags"):
            await _rebuild_with_owner(db, "document_tags", _TAGS_TABLE, "tag, id")
        if "owner" not in await _columns(db, "idempotency_keys"):
            await _rebuild_with_owner(
                db,
                "idempotency_keys",
                _KEYS_TABLE,
                "key, token, lease_until, expires_at, document_id, sha256",
            )
        for statement in _INDEXES.split(";"):
            await db.execute(statement)
        await _create_prefix_entries(db)


async def _columns(db: aiosqlite.Connection, table: str) -> set[str]:
    return {row[1] for row in await db.execute_fetchall(f"PRAGMA table_info({table})")}


async def _rebuild_with_owner(db: aiosqlite.Connection, table: str, schema: str, columns: str) -> None:
    """Copy ``table`` into its layout with an owner column, every row ``DEFAULT_OWNER``'s (a primary
    key cannot gain a column in place)."""
    await db.execute(schema.format(name=f"{table}_with_owner"))
    await db.execute(
        f"INSERT INTO {table}_with_owner (owner, {columns}) SELECT ?, {columns} FROM {table}",  # noqa: S608
        (DEFAULT_OWNER,),
    )
    await db.execute(f"DROP TABLE {table}")
    await db.execute(f"ALTER TABLE {table}_with_owner RENAME TO {table}")


async def _create_prefix_entries(db: aiosqlite.Connection) -> None:
    """Create ``document_prefixes`` with its triggers, filled from the documents already stored: a
    file from before it existed, or from before owners, gets it at start-up."""
    exists = await db.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'document_prefixes'"
    )
    if exists and "owner" in await _columns(db, "document_prefixes"):
        return
    for trigger in _PREFIX_TRIGGERS:
        await db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    await db.execute("DROP TABLE IF EXISTS document_prefixes")
    for statement in _PREFIX_SCHEMA:
        await db.execute(statement)
    filled = await db.execute(_FILL_PREFIXES)
    if filled.rowcount:
        logger.info("indexed the filename prefixes of the stored documents: %d entries", filled.rowcount)


async def open_repository(data_dir: Path, *, create_missing: bool = True) -> AsyncIterator[SqliteRepository]:
    """The repository in ``<data_dir>/docpipe.sqlite3``; folder, file and schema are created when
    missing, unless ``create_missing`` is false."""
    async with connections(
        database_file(data_dir),
        create_missing=create_missing,
        role=_ROLE,
        name=_NAME,
        readers=READER_CONNECTIONS,
        prepare=_create,
    ) as (writer, readers):
        with _failures():
            inline = await asyncio.to_thread(InlineReader, database_file(data_dir))
        try:
            yield SqliteRepository(writer, readers, inline, data_dir)
        finally:
            inline.close()


async def _create(writer: aiosqlite.Connection) -> None:
    for schema in (_TABLES, KEY_SCHEMA, UPLOAD_SCHEMA, OUTBOX_SCHEMA, WEBHOOK_SCHEMA):
        await writer.executescript(schema)
    await _prepare(writer)
