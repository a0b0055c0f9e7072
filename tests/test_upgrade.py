"""Stores written by earlier versions keep working with no step the user runs: before documents had
blob keys (their bytes under their id), and before documents had owners (every document is then
``DEFAULT_OWNER``'s). They list, serve and delete, take new uploads, and fsck finds them clean."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aioboto3
import msgspec
import pytest

from docpipe.config import ProcessingMode, Settings
from docpipe.container import Container, close
from docpipe.domain.errors import DocumentNotFound
from docpipe.domain.fsck import Fsck
from docpipe.domain.idempotency import CompletedUpload, new_claim
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import Document, ListQuery, new_document_id, utc_now
from docpipe.domain.ports import BlobStore, DocumentRepository
from tests import adapters_under_test
from tests.http.helpers import serve
from tests.moto_server import MotoServer


def settings_for(**selected: Any) -> Settings:
    """The tests' settings with processing off: upgrading is the subject, and a document processed in
    the background would change its ``processing`` under the assertions and write a text blob that
    fsck, with no grace period, may judge between its write and its record."""
    settings = adapters_under_test.settings_for(**selected)
    return msgspec.structs.replace(settings, processing=ProcessingMode.OFF)


CONTENT = b"stored by an earlier docpipe\n"

# The SQLite schema as docpipe created it before blob keys, verbatim.
_SCHEMA_BEFORE_BLOB_KEYS = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    detected_content_type TEXT,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_by_filename ON documents (filename, id);
CREATE INDEX IF NOT EXISTS documents_by_content_type ON documents (content_type, id);
CREATE TABLE IF NOT EXISTS document_tags (
    tag TEXT NOT NULL,
    id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS document_tags_by_id ON document_tags (id);
"""


# The SQLite schema as docpipe created it before owners, from its sqlite_master (two long lines broken).
SCHEMA_BEFORE_OWNERS = """
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
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
    blob_key TEXT  -- NULL: the id, for documents stored before blob keys (see _add_blob_keys)
) WITHOUT ROWID;
CREATE INDEX documents_by_filename ON documents (filename, id);
CREATE INDEX documents_by_content_type ON documents (content_type, id);
CREATE TABLE document_tags (
    tag TEXT NOT NULL,
    id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, id)
) WITHOUT ROWID;
CREATE INDEX document_tags_by_id ON document_tags (id);
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    lease_until REAL NOT NULL,
    expires_at REAL NOT NULL,
    document_id TEXT,
    sha256 TEXT
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
CREATE TABLE document_prefixes (
        prefix TEXT NOT NULL,
        id TEXT NOT NULL,
        PRIMARY KEY (prefix, id)
    ) WITHOUT ROWID;
CREATE TRIGGER document_prefixes_on_insert AFTER INSERT ON documents BEGIN
        INSERT INTO document_prefixes (prefix, id) SELECT substr(NEW.filename, 1, column1), NEW.id
        FROM (VALUES (1), (2), (3), (4), (5), (6), (7), (8)) WHERE column1 <= length(NEW.filename);
    END;
CREATE TRIGGER document_prefixes_on_delete AFTER DELETE ON documents BEGIN
        DELETE FROM document_prefixes WHERE (prefix, id) IN (
            SELECT substr(OLD.filename, 1, column1), OLD.id
            FROM (VALUES (1), (2), (3), (4), (5), (6), (7), (8))
        );
    END;
CREATE TRIGGER document_prefixes_on_rename AFTER UPDATE OF filename ON documents
    WHEN OLD.filename IS NOT NEW.filename BEGIN
        DELETE FROM document_prefixes WHERE (prefix, id) IN (
            SELECT substr(OLD.filename, 1, column1), OLD.id
            FROM (VALUES (1), (2), (3), (4), (5), (6), (7), (8))
        );
        INSERT INTO document_prefixes (prefix, id) SELECT substr(NEW.filename, 1, column1), NEW.id
        FROM (VALUES (1), (2), (3), (4), (5), (6), (7), (8)) WHERE column1 <= length(NEW.filename);
    END;
"""


def write_store_before_owners(data_dir: Path, documents: list[Document], idempotency_key: str) -> None:
    """A data folder as docpipe wrote it before owners: its SQLite file, and each document's bytes at
    ``blobs/<last two characters>/<blob key>`` (a blob key NULL in the file for a document whose key is
    its id). ``idempotency_key`` is the completed key of the first document's upload."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(data_dir / "docpipe.sqlite3")) as db, db:
        db.executescript(SCHEMA_BEFORE_OWNERS)
        for document in documents:
            db.execute(
                "INSERT INTO documents VALUES (?, ?, ?, NULL, ?, ?, ?, '{}', ?, ?, 1, ?)",
                (
                    document.id,
                    document.filename,
                    document.content_type,
                    document.size,
                    document.sha256,
                    msgspec.json.encode(document.tags).decode(),
                    document.created_at.isoformat(),
                    document.updated_at.isoformat(),
                    None if document.blob_key == document.id else document.blob_key,
                ),
            )
            db.executemany(
                "INSERT INTO document_tags VALUES (?, ?)", [(tag, document.id) for tag in document.tags]
            )
        later = (utc_now() + timedelta(hours=1)).timestamp()
        db.execute(
            "INSERT INTO idempotency_keys VALUES (?, 'token', ?, ?, ?, ?)",
            (idempotency_key, later, later, documents[0].id, documents[0].sha256),
        )
    for document in documents:
        blob = data_dir / "blobs" / document.blob_key[-2:] / document.blob_key
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(CONTENT)


def old_document() -> Document:
    now = utc_now()
    document_id = new_document_id()
    return Document(
        id=document_id,
        owner=DEFAULT_OWNER,
        blob_key=document_id,
        filename="old.txt",
        content_type="text/plain",
        size=len(CONTENT),
        sha256=hashlib.sha256(CONTENT).hexdigest(),
        tags=("old",),
        created_at=now,
        updated_at=now,
    )


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[tuple[BlobStore, DocumentRepository, Container]]:
    container = Container(settings=settings)
    try:
        blobs: BlobStore = await container.blob_store()
        repository: DocumentRepository = await container.repository()
        yield blobs, repository, container
    finally:
        await close(container)


async def assert_fsck_clean(settings: Settings) -> None:
    async with opened(settings) as (_, _, container):
        check: Fsck = await container.fsck(grace=timedelta(0))  # type: ignore[misc]
        report = await check.run(verify_content=True)
    assert report.findings == []
    assert report.clean


async def assert_lists_serves_and_deletes(settings: Settings, document: Document) -> None:
    """Through the API, on a fresh app over the old store; fsck is clean before and after the delete."""
    await assert_fsck_clean(settings)
    async with serve(settings) as client:
        listed = (await client.get("/documents", params={"tag": "old"})).json()["documents"]
        assert [item["id"] for item in listed] == [document.id]
        shown = (await client.get(f"/documents/{document.id}")).json()
        assert shown["processing"] == {
            "state": "pending",
            "pages": None,
            "characters": None,
            "title": None,
            "error": None,
        }
        assert (await client.get(f"/documents/{document.id}/content")).content == CONTENT
        assert (await client.head(f"/documents/{document.id}/content")).status_code == 200
        assert (await client.get("/download/old.txt")).content == CONTENT
        patched = await client.patch(f"/documents/{document.id}", json={"tags": ["older"]})
        assert patched.status_code == 200, patched.text
        assert (await client.get(f"/documents/{document.id}/content")).content == CONTENT
        new = await client.post("/documents", params={"filename": "new.txt"}, content=b"new")
        assert new.status_code == 201
        assert [item["id"] for item in (await client.get("/documents")).json()["documents"]] == [
            new.json()["id"],
            document.id,
        ]
    await assert_fsck_clean(settings)
    async with serve(settings) as client:
        assert (await client.delete(f"/documents/{document.id}")).status_code == 204
    async with opened(settings) as (blobs, _, _):
        assert not await blobs.exists(document.id)
    await assert_fsck_clean(settings)


async def test_a_sqlite_file_from_before_blob_keys(tmp_path: Path) -> None:
    settings = settings_for(blob_store="filesystem", repository="sqlite", data_dir=tmp_path)
    document = old_document()
    with contextlib.closing(sqlite3.connect(tmp_path / "docpipe.sqlite3")) as db, db:
        db.executescript(_SCHEMA_BEFORE_BLOB_KEYS)
        db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, NULL, ?, ?, ?, '{}', ?, ?, 1)",
            (
                document.id,
                document.filename,
                document.content_type,
                document.size,
                document.sha256,
                '["old"]',
                document.created_at.isoformat(),
                document.updated_at.isoformat(),
            ),
        )
        db.execute("INSERT INTO document_tags VALUES ('old', ?)", (document.id,))
    async with opened(settings) as (blobs, _, _):
        await blobs.put(document.id, chunks(CONTENT))
    await assert_lists_serves_and_deletes(settings, document)


async def test_a_dynamodb_table_from_before_blob_keys(tmp_path: Path, moto_server: MotoServer) -> None:
    """The table layout is unchanged; only the document JSON of older items lacks ``blob_key``,
    ``owner`` and ``processing``."""
    settings = settings_for(
        blob_store="s3", repository="dynamodb", data_dir=tmp_path, aws_endpoint_url=moto_server.endpoint_url
    )
    document = old_document()
    async with opened(settings) as (blobs, repository, _):
        await repository.add(document)
        await blobs.put(document.id, chunks(CONTENT))
    as_before = msgspec.json.decode(msgspec.json.encode(document))
    del as_before["blob_key"], as_before["owner"], as_before["processing"]
    async with aioboto3.Session().client("dynamodb", endpoint_url=moto_server.endpoint_url) as client:
        await client.update_item(
            TableName=settings.dynamodb.table,
            Key={"pk": {"S": f"DOC#{document.id}"}, "sk": {"S": "DOC"}},
            UpdateExpression="SET #document = :document",
            ExpressionAttributeNames={"#document": "document"},
            ExpressionAttributeValues={":document": {"S": msgspec.json.encode(as_before).decode()}},
        )
        item = await client.get_item(
            TableName=settings.dynamodb.table, Key={"pk": {"S": f"DOC#{document.id}"}, "sk": {"S": "DOC"}}
        )
    assert "blob_key" not in item["Item"]["document"]["S"]
    await assert_lists_serves_and_deletes(settings, document)


async def test_a_sqlite_and_filesystem_store_from_before_owners(tmp_path: Path) -> None:
    """Its documents, tag and prefix entries and Idempotency-Key records become the default owner's;
    new uploads land beside them, under keys that carry the owner."""
    settings = settings_for(blob_store="filesystem", repository="sqlite", data_dir=tmp_path)
    from_before_blob_keys = old_document()
    with_blob_key = msgspec.structs.replace(
        old_document(), filename="older-report.txt", tags=("old", "report"), blob_key=new_document_id()
    )
    documents = [with_blob_key, from_before_blob_keys]
    write_store_before_owners(tmp_path, documents, "upload-1")
    await assert_fsck_clean(settings)
    async with opened(settings) as (_, repository, _):
        for document in documents:
            assert await repository.get(DEFAULT_OWNER, document.id) == document
            with pytest.raises(DocumentNotFound):
                await repository.get("tenant-b", document.id)
        assert [owner async for owner in repository.owners()] == [DEFAULT_OWNER]
        assert (await repository.list("tenant-b", ListQuery(tag="old"))).documents == []
        now = utc_now()
        retried = await repository.claim(new_claim(DEFAULT_OWNER, "upload-1", now), now)
        assert retried == CompletedUpload(with_blob_key.id, with_blob_key.sha256)
        assert await repository.claim(new_claim("tenant-b", "upload-1", now), now) is None

    newest_first = [with_blob_key.id, from_before_blob_keys.id]
    async with serve(settings) as client:
        for params in ({}, {"tag": "old"}, {"prefix": "old"}, {"content_type": "text/plain"}):
            listed = (await client.get("/documents", params=params)).json()["documents"]
            assert [item["id"] for item in listed] == newest_first, params
        listed = (await client.get("/documents", params={"prefix": "older-"})).json()["documents"]
        assert [item["id"] for item in listed] == [with_blob_key.id]
        for document in documents:
            assert (await client.get(f"/documents/{document.id}/content")).content == CONTENT
            assert (await client.get(f"/download/{document.filename}")).content == CONTENT
        new = await client.post("/documents", params={"filename": "new.txt", "tags": "old"}, content=b"new")
        assert new.status_code == 201, new.text
        listed = (await client.get("/documents", params={"tag": "old"})).json()["documents"]
        assert [item["id"] for item in listed] == [new.json()["id"], *newest_first]
        assert (await client.get("/download/new.txt")).content == b"new"

    async with opened(settings) as (_, repository, _):
        stored = await repository.get(DEFAULT_OWNER, new.json()["id"])
    assert stored.blob_key.startswith(f"{DEFAULT_OWNER}/")
    assert (
        tmp_path / "blobs" / DEFAULT_OWNER / stored.blob_key[-2:] / stored.blob_key.split("/")[1]
    ).is_file()
    await assert_fsck_clean(settings)
    async with serve(settings) as client:
        for document in documents:
            assert (await client.delete(f"/documents/{document.id}")).status_code == 204
        assert [item["id"] for item in (await client.get("/documents")).json()["documents"]] == [stored.id]
    assert sorted(path.name for path in (tmp_path / "blobs").rglob("*") if path.is_file()) == [
        stored.blob_key.split("/")[1]
    ]
    await assert_fsck_clean(settings)
