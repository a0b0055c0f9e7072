"""Streaming content: ranges, validators and conditional requests, on every adapter pair."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from docpipe.domain.streams import CHUNK_SIZE
from tests.http.helpers import Client, assert_problem, upload_ok

DATA = os.urandom(3 * 1024 * 1024 + 123)


async def _stored(client: Client, filename: str = "blob.bin", data: bytes = DATA) -> str:
    document = await upload_ok(client, data, filename, content_type="application/octet-stream")
    return f"/documents/{document['id']}/content"


async def test_download_returns_the_bytes_and_headers(client: Client) -> None:
    url = await _stored(client, "Q3 réport.pdf")
    response = await client.get(url)
    assert response.status_code == 200
    assert response.content == DATA
    headers = response.headers
    assert headers["content-length"] == str(len(DATA))
    assert headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert headers["accept-ranges"] == "bytes"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["last-modified"].endswith("GMT")
    assert (
        headers["repr-digest"] == "sha-256=:" + base64.b64encode(hashlib.sha256(DATA).digest()).decode() + ":"
    )
    disposition = headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''Q3%20r%C3%A9port.pdf" in disposition


async def test_head_gives_the_headers_without_a_body(client: Client) -> None:
    url = await _stored(client)
    response = await client.head(url)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'


async def test_single_ranges(client: Client) -> None:
    url = await _stored(client)
    size = len(DATA)
    for header, start, end in [
        ("bytes=0-0", 0, 0),
        ("bytes=10-99", 10, 99),
        ("bytes=1048570-", 1048570, size - 1),
        ("bytes=-500", size - 500, size - 1),
        ("bytes=100-999999999", 100, size - 1),
    ]:
        response = await client.get(url, headers={"range": header})
        assert response.status_code == 206, header
        assert response.content == DATA[start : end + 1], header
        assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert response.headers["content-length"] == str(end - start + 1)


async def test_unsatisfiable_range_is_416(client: Client) -> None:
    url = await _stored(client)
    response = await client.get(url, headers={"range": f"bytes={len(DATA)}-"})
    assert_problem(response, 416)
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


async def test_malformed_and_multi_ranges_get_the_whole_document(client: Client) -> None:
    url = await _stored(client)
    for header in ("bytes=abc", "items=0-1", "bytes=5-1", "bytes=0-1,5-9"):
        response = await client.get(url, headers={"range": header})
        assert response.status_code == 200, header
        assert len(response.content) == len(DATA)


async def test_if_none_match_gives_304(client: Client) -> None:
    url = await _stored(client)
    etag = (await client.head(url)).headers["etag"]
    response = await client.get(url, headers={"if-none-match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert (await client.get(url, headers={"if-none-match": '"other"'})).status_code == 200


async def test_if_modified_since_gives_304(client: Client) -> None:
    url = await _stored(client)
    last_modified = (await client.head(url)).headers["last-modified"]
    assert (await client.get(url, headers={"if-modified-since": last_modified})).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert (await client.get(url, headers={"if-modified-since": old})).status_code == 200


async def test_if_range_with_a_stale_etag_gives_the_whole_document(client: Client) -> None:
    url = await _stored(client)
    etag = (await client.head(url)).headers["etag"]
    matching = await client.get(url, headers={"range": "bytes=0-9", "if-range": etag})
    assert matching.status_code == 206
    stale = await client.get(url, headers={"range": "bytes=0-9", "if-range": '"stale"'})
    assert stale.status_code == 200
    assert stale.content == DATA


async def test_if_match_on_content(client: Client) -> None:
    url = await _stored(client)
    assert_problem(await client.get(url, headers={"if-match": '"nope"'}), 412)


async def test_inline_only_for_safe_types(client: Client) -> None:
    pdf = await upload_ok(client, b"%PDF-1.4", "a.pdf", content_type="application/pdf")
    html = await upload_ok(client, b"<script>alert(1)</script>", "a.html", content_type="text/html")
    inline = await client.get(f"/documents/{pdf['id']}/content", params={"disposition": "inline"})
    assert inline.headers["content-disposition"].startswith("inline")
    forced = await client.get(f"/documents/{html['id']}/content", params={"disposition": "inline"})
    assert forced.headers["content-disposition"].startswith("attachment")


async def test_download_by_filename_supports_ranges(client: Client) -> None:
    await _stored(client, "named.bin")
    response = await client.get("/download/named.bin", headers={"range": "bytes=-10"})
    assert response.status_code == 206
    assert response.content == DATA[-10:]


async def test_the_schema_describes_every_route(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/documents",
        "/documents/{document_id}",
        "/documents/{document_id}/content",
        "/upload",
        "/download/{filename}",
        "/health/ready",
        "/health/live",
    ):
        assert path in paths, path
    upload_body = paths["/documents"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload_body
    assert "206" in paths["/documents/{document_id}/content"]["get"]["responses"]


async def test_the_stored_content_type_is_served_as_it_is(client: Client) -> None:
    latin1 = await client.post(
        "/documents?filename=a.txt",
        content=b"caf\xe9",
        headers={"content-type": "text/plain; charset=iso-8859-1"},
    )
    url = f"/documents/{latin1.json()['id']}/content"
    assert (await client.get(url)).headers["content-type"] == "text/plain; charset=iso-8859-1"
    assert (await client.head(url)).headers["content-type"] == "text/plain; charset=iso-8859-1"
    csv = await upload_ok(client, b"a,b\n", "t.csv", content_type="text/csv")
    assert (await client.get(f"/documents/{csv['id']}/content")).headers["content-type"] == "text/csv"


async def test_if_unmodified_since(client: Client) -> None:
    url = await _stored(client)
    last_modified = (await client.head(url)).headers["last-modified"]
    assert (await client.get(url, headers={"if-unmodified-since": last_modified})).status_code == 200
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert_problem(await client.get(url, headers={"if-unmodified-since": old}), 412)
    assert (await client.get(url, headers={"if-unmodified-since": "not a date"})).status_code == 200


@pytest.mark.parametrize("size", [1, CHUNK_SIZE, CHUNK_SIZE + 1])
async def test_documents_of_one_chunk_and_more_are_served_whole(client: Client, size: int) -> None:
    """Up to one chunk the body goes out in one piece, above it streams: the same answer either way."""
    data = os.urandom(size)
    url = await _stored(client, data=data)
    response = await client.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(size)
    tail = await client.get(url, headers={"Range": f"bytes={size - 1}-"})
    assert (tail.status_code, tail.content) == (206, data[-1:])
