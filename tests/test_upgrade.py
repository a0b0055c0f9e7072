"""Stores written before documents had blob keys (their bytes under their id) keep working: they
list, serve and delete, and fsck finds them clean."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aioboto3
import msgspec
from litestar.testing import AsyncTestClient

from docpipe.config import Settings
from docpipe.container import Container, close
from docpipe.domain.fsck import Fsck
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import Document, new_document_id, utc_now
from docpipe.domain.ports import BlobStore, DocumentRepository
from docpipe.entrypoints.http.app import create_app
from tests.adapters_under_test import settings_for
from tests.moto_server import MotoServer

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
    async with AsyncTestClient(app=create_app(settings)) as client:
        listed = (await client.get("/documents", params={"tag": "old"})).json()["documents"]
        assert [item["id"] for item in listed] == [document.id]
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
    async with AsyncTestClient(app=create_app(settings)) as client:
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
    """The table layout is unchanged; only the document JSON of older items lacks ``blob_key`` and
    ``owner``."""
    settings = settings_for(
        blob_store="s3", repository="dynamodb", data_dir=tmp_path, aws_endpoint_url=moto_server.endpoint_url
    )
    document = old_document()
    async with opened(settings) as (blobs, repository, _):
        await repository.add(document)
        await blobs.put(document.id, chunks(CONTENT))
    as_before = msgspec.json.decode(msgspec.json.encode(document))
    del as_before["blob_key"], as_before["owner"]
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
