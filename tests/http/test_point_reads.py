"""The most frequent reads, answered before Litestar routes them (``point_reads``), answer as their
routes do: the same request with a query (one the routes ignore) takes the route, and the two
answers match in status, headers and body, errors included. What they answer on each adapter pair
is the subject of the other HTTP tests, which send most such reads plain; here one pair is enough."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar.types import Receive, Scope, Send

from docpipe.config import ProcessingMode
from docpipe.domain.fields import MAX_METADATA_VALUE_LENGTH
from docpipe.entrypoints.http import documents
from docpipe.entrypoints.http.authentication import Authentication
from tests.adapters_under_test import settings_for
from tests.http.helpers import Client, serve, upload_ok


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    embedded = settings_for(blob_store="filesystem", repository="sqlite", data_dir=tmp_path / "data")
    async with serve(msgspec.structs.replace(embedded, processing=ProcessingMode.OFF)) as test_client:
        yield test_client


_VARYING = {"x-request-id", "date"}
"""Headers that differ between any two requests."""


def _another(document_id: str) -> str:
    """An id of the same shape, of no document."""
    return document_id[:-1] + ("1" if document_id[-1] == "0" else "0")


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {name: value for name, value in response.headers.items() if name not in _VARYING}
    body: Any = response.content
    if response.content and response.headers["content-type"].startswith("application/problem+json"):
        body = {**response.json(), "request_id": None}
    return response.status_code, headers, body


async def test_a_plain_read_answers_as_its_route_does(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = await upload_ok(client, b"0123456789" * 100, "notes.txt", content_type="text/plain")
    metadata = f"/documents/{document['id']}"
    content = f"{metadata}/content"
    etag = (await client.get(content)).headers["etag"]
    requests: list[tuple[str, str, dict[str, str]]] = [
        ("GET", metadata, {}),
        ("GET", content, {}),
        ("HEAD", content, {}),
        ("GET", content, {"range": "bytes=2-5"}),
        ("GET", content, {"if-none-match": etag}),
        ("GET", content, {"if-match": '"another"'}),
        ("HEAD", content, {"range": "bytes=5000-"}),
        ("GET", f"/documents/{_another(document['id'])}", {}),
        ("GET", metadata, {"authorization": "Bearer not-a-key"}),
        ("GET", metadata, {"authorization": ""}),
    ]
    routed: list[str] = []
    route_middleware = Authentication.__call__

    async def counted(self: Authentication, scope: Scope, receive: Receive, send: Send) -> None:
        routed.append(scope["path"])
        await route_middleware(self, scope, receive, send)

    monkeypatch.setattr(Authentication, "__call__", counted)
    for method, path, headers in requests:
        plain = await client.request(method, path, headers=headers)
        assert not routed, (method, path, headers)
        with_query = await client.request(method, path, headers=headers, params={"unused": "1"})
        assert routed, (method, path, headers)
        routed.clear()
        assert _answer(plain) == _answer(with_query), (method, path, headers)


async def test_a_host_litestar_refuses_is_refused_still(client: Client) -> None:
    document = await upload_ok(client)
    response = await client.get(f"/documents/{document['id']}", headers={"host": "docpipe\\evil"})
    assert response.status_code == 400


async def test_metadata_read_again_shows_a_change_another_server_made_to_the_same_files(
    tmp_path: Path,
) -> None:
    """A representation kept between reads (``documents.read_metadata``) is never one a write made stale,
    even a write by another server (another worker) on the same SQLite file."""
    embedded = settings_for(blob_store="filesystem", repository="sqlite", data_dir=tmp_path / "data")
    settings = msgspec.structs.replace(embedded, processing=ProcessingMode.OFF)
    async with serve(settings) as one, serve(settings) as other:
        document_id = (await upload_ok(one, b"kept", filename="a.txt"))["id"]
        before = await one.get(f"/documents/{document_id}")
        changed = await other.patch(f"/documents/{document_id}", json={"tags": ["changed"]})
        assert changed.status_code == 200, changed.text
        after = await one.get(f"/documents/{document_id}")
    assert (before.json()["tags"], after.json()["tags"]) == ([], ["changed"])
    assert after.headers["etag"] == changed.headers["etag"] != before.headers["etag"]


async def test_the_representation_of_a_document_described_at_length_is_not_kept(client: Client) -> None:
    """Kept representations stay small (``model.keepable``): a document's metadata may hold about
    40,000 characters, and a thousand such kept would hold tens of MiB."""
    metadata = {f"k{n}": "v" * MAX_METADATA_VALUE_LENGTH for n in range(8)}
    short = await upload_ok(client, b"kept", filename="short.txt")
    long = await upload_ok(client, b"kept", filename="long.txt")
    changed = await client.patch(f"/documents/{long['id']}", json={"metadata": metadata})
    assert changed.status_code == 200, changed.text
    for document in (short, long):
        assert (await client.get(f"/documents/{document['id']}")).status_code == 200
    kept = {document_id for document_id, _ in documents._representations}
    assert (short["id"] in kept, long["id"] in kept) == (True, False)
