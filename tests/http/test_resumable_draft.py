"""``/uploads`` also speaks the IETF resumable uploads draft (-05, interop version 6), over the uploads tus
uses. The storage is tus's, tested over every adapter pair in test_tus.py; here only the draft's wire, on
one pair."""

from __future__ import annotations

import base64
import hashlib

import pytest
from httpx import Request, Response

from tests.http.conftest import MAX_UPLOAD_BYTES
from tests.http.helpers import Client, assert_problem

pytestmark = pytest.mark.parametrize("settings", [("filesystem", "sqlite")], indirect=True, ids=["fs+sqlite"])

DRAFT = {"Upload-Draft-Interop-Version": "6"}
PART = {**DRAFT, "Content-Type": "application/partial-upload"}
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 200


async def create(client: Client, length: int, **headers: str) -> str:
    response = await client.post(
        "/uploads", headers={**DRAFT, "Upload-Complete": "?0", "Upload-Length": str(length), **headers}
    )
    assert response.status_code == 201, response.text
    assert (response.headers["upload-complete"], response.headers["upload-offset"]) == ("?0", "0")
    location: str = response.headers["location"]
    assert location.startswith("/uploads/")
    return location


async def append(
    client: Client, location: str, offset: int, data: bytes, final: bool, **headers: str
) -> Response:
    response: Response = await client.patch(
        location,
        content=data,
        headers={**PART, "Upload-Offset": str(offset), "Upload-Complete": "?1" if final else "?0", **headers},
    )
    return response


async def test_an_upload_in_appends_becomes_a_document_visible_only_when_complete(client: Client) -> None:
    options = await client.options("/uploads")
    assert options.headers["upload-limit"] == f"max-size={MAX_UPLOAD_BYTES}, min-size=1"
    name = base64.b64encode(b"draft.pdf").decode()
    location = await create(client, len(PDF), **{"Upload-Metadata": f"filename {name},tags {name}"})
    first = await append(client, location, 0, PDF[:20_000], final=False)
    assert first.status_code == 201, first.text
    assert (first.headers["upload-offset"], first.headers["upload-complete"]) == ("20000", "?0")
    assert first.headers["upload-draft-interop-version"] == "6"
    assert "tus-resumable" not in first.headers
    assert "location" not in first.headers
    assert (await client.get("/documents")).json()["documents"] == []
    head = await client.head(location, headers=DRAFT)
    assert head.status_code == 204
    assert (head.headers["upload-offset"], head.headers["upload-complete"]) == ("20000", "?0")
    assert (head.headers["upload-length"], head.headers["cache-control"]) == (str(len(PDF)), "no-store")
    assert head.headers["upload-limit"].startswith(f"max-size={len(PDF)}, expires=")
    final = await append(client, location, 20_000, PDF[20_000:], final=True)
    assert final.status_code == 201, final.text
    assert (final.headers["upload-offset"], final.headers["upload-complete"]) == (str(len(PDF)), "?1")
    document_location = final.headers["location"]
    assert final.headers["content-location"] == document_location
    document = (await client.get(document_location)).json()
    assert (document["filename"], document["content_type"]) == ("draft.pdf", "application/pdf")
    assert document["sha256"] == hashlib.sha256(PDF).hexdigest()
    done = await client.head(location, headers=DRAFT)
    assert (done.headers["upload-complete"], done.headers["content-location"]) == ("?1", document_location)
    tus = await client.head(location, headers={"Tus-Resumable": "1.0.0"})
    assert (tus.status_code, tus.headers["location"]) == (200, document_location)
    problem = assert_problem(await append(client, location, 0, b"more", final=True), 400)
    assert "complete" in problem["detail"]
    retried = await append(client, location, len(PDF), b"", final=True)
    assert (retried.status_code, retried.headers["location"]) == (201, document_location)
    assert len((await client.get("/documents")).json()["documents"]) == 1


async def test_a_creation_may_carry_the_whole_content_described_by_its_own_headers(client: Client) -> None:
    response = await client.post(
        "/uploads",
        content=b"hello, draft",
        headers={
            **DRAFT,
            "Upload-Complete": "?1",
            "Content-Type": "text/plain",
            "Content-Disposition": 'attachment; filename="hello.txt"',
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"].startswith("/uploads/")
    assert (response.headers["upload-complete"], response.headers["upload-length"]) == ("?1", "12")
    document = (await client.get(response.headers["content-location"])).json()
    assert (document["filename"], document["content_type"], document["size"]) == (
        "hello.txt",
        "text/plain",
        12,
    )


async def test_a_creation_may_carry_the_first_part(client: Client) -> None:
    response = await client.post(
        "/uploads",
        content=b"hello ",
        headers={**PART, "Upload-Complete": "?0", "Upload-Length": "11"},
    )
    assert (response.status_code, response.headers["upload-offset"]) == (201, "6")
    final = await append(client, response.headers["location"], 6, b"world", final=True)
    assert (await client.get(f"{final.headers['location']}/content")).content == b"hello world"


CREATION_REFUSALS = [
    ("no Upload-Complete", {"Upload-Length": "5"}, b"", 400),
    ("Upload-Complete not a boolean", {"Upload-Complete": "yes", "Upload-Length": "5"}, b"", 400),
    ("unknown length", {"Upload-Complete": "?0"}, b"", 400),
    ("Upload-Offset", {"Upload-Complete": "?0", "Upload-Length": "5", "Upload-Offset": "0"}, b"", 400),
    ("complete but short", {"Upload-Complete": "?1", "Upload-Length": "10"}, b"12345", 400),
    ("incomplete but whole", {"Upload-Complete": "?0", "Upload-Length": "5"}, b"12345", 400),
    ("empty", {"Upload-Complete": "?1"}, b"", 400),
    ("too large", {"Upload-Complete": "?0", "Upload-Length": str(MAX_UPLOAD_BYTES + 1)}, b"", 413),
]


async def test_creation_checks_its_headers(client: Client) -> None:
    """One app for every case: each is a request refused before anything is stored."""
    for case, headers, content, status in CREATION_REFUSALS:
        response = await client.post("/uploads", content=content, headers={**DRAFT, **headers})
        assert response.status_code == status, case
        assert_problem(response, status)
        assert response.headers["upload-draft-interop-version"] == "6", case
    other = await client.post("/uploads", headers={"Upload-Draft-Interop-Version": "5", "Upload-Length": "5"})
    assert_problem(other, 412)
    assert (await client.get("/documents")).json()["documents"] == []


async def test_appends_are_checked_and_a_refused_one_changes_nothing(client: Client) -> None:
    location = await create(client, 8)
    assert (await append(client, location, 0, b"abcd", final=False)).status_code == 201
    mismatch = assert_problem(response := await append(client, location, 2, b"cd", final=False), 409)
    assert (response.headers["upload-offset"], mismatch["status"]) == ("4", 409)
    assert_problem(await client.patch(location, content=b"ef", headers={**PART, "Upload-Offset": "4"}), 400)
    wrong_type = {**DRAFT, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "4"}
    assert_problem(
        await client.patch(location, content=b"ef", headers={**wrong_type, "Upload-Complete": "?0"}), 415
    )
    assert_problem(await append(client, location, 4, b"ef", final=True), 400)  # Content-Length: short of 8
    assert_problem(
        await append(client, location, 4, b"efgh", final=False), 400
    )  # reaches 8, says it does not
    digest = base64.b64encode(hashlib.sha256(b"efgX").digest()).decode()
    assert_problem(
        await append(client, location, 4, b"efgh", final=True, **{"Content-Digest": f"sha-256=:{digest}:"}),
        400,
    )
    assert (await client.head(location, headers={**DRAFT, "Upload-Offset": "4"})).status_code == 400
    assert (await client.head(location, headers=DRAFT)).headers["upload-offset"] == "4"


def chunked_append(client: Client, location: str, offset: int, data: bytes, final: bool) -> Request:
    """An append whose size is known once its body has arrived (the test client cannot stream one)."""
    complete = "?1" if final else "?0"
    request = client.build_request(
        "PATCH",
        location,
        content=data,
        headers={
            **PART,
            "Upload-Offset": str(offset),
            "Upload-Complete": complete,
            "Transfer-Encoding": "chunked",
        },
    )
    del request.headers["Content-Length"]
    return request


async def test_chunked_appends_are_checked_once_they_have_arrived(client: Client) -> None:
    location = await create(client, 8)
    assert_problem(await client.send(chunked_append(client, location, 0, b"abc", final=True)), 400)
    head = await client.head(location, headers=DRAFT)
    assert (head.headers["upload-offset"], head.headers["upload-complete"]) == ("3", "?0")
    reaching = await client.send(chunked_append(client, location, 3, b"defgh", final=False))
    assert (reaching.status_code, reaching.headers["upload-complete"]) == (201, "?1")
    assert (await client.get(f"{reaching.headers['location']}/content")).content == b"abcdefgh"


async def test_cancellation_removes_the_upload_and_uploads_are_their_owners_alone(client: Client) -> None:
    location = await create(client, 8)
    key = (await client.post("/keys", json={"owner": "bob", "scopes": ["read", "write"]})).json()["key"]
    bob = {"Authorization": f"Bearer {key}"}
    assert (await client.head(location, headers={**DRAFT, **bob})).status_code == 404
    assert_problem(await client.delete(location, headers={**DRAFT, **bob}), 404)
    assert_problem(await client.delete(location, headers={**DRAFT, "Upload-Complete": "?0"}), 400)
    response = await client.delete(location, headers=DRAFT)
    assert (response.status_code, response.headers["upload-draft-interop-version"]) == (204, "6")
    assert (await client.head(location, headers=DRAFT)).status_code == 404
