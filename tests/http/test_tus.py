"""``/uploads`` speaks tus 1.0.0, on every adapter pair."""

from __future__ import annotations

import base64
import hashlib

import pytest
from httpx import Response

from tests.http.conftest import MAX_UPLOAD_BYTES
from tests.http.helpers import Client, assert_problem

TUS = {"Tus-Resumable": "1.0.0"}
BYTES = {**TUS, "Content-Type": "application/offset+octet-stream"}
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 300

headers_only = pytest.mark.parametrize(
    "settings",
    [("filesystem", "sqlite"), ("memory", "memory")],
    indirect=True,
    ids=["filesystem+sqlite", "memory+memory"],
)
"""For what the headers alone decide: S3 and DynamoDB are never reached, and cost seconds to set up."""


def metadata(**pairs: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())


async def create(client: Client, length: int, **pairs: str) -> str:
    response = await client.post(
        "/uploads", headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(**pairs)}
    )
    assert response.status_code == 201, response.text
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["upload-offset"] == "0"
    assert response.headers["upload-expires"].endswith(" GMT")
    location: str = response.headers["location"]
    assert location.startswith("/uploads/")
    return location


async def send(client: Client, location: str, offset: int, data: bytes, **headers: str) -> Response:
    response: Response = await client.patch(
        location, content=data, headers={**BYTES, "Upload-Offset": str(offset), **headers}
    )
    return response


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


@headers_only
async def test_options_advertises_version_extensions_limit_and_checksums(client: Client) -> None:
    response = await client.options("/uploads")
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "expiration",
        "checksum",
        "termination",
    }
    assert response.headers["tus-max-size"] == str(MAX_UPLOAD_BYTES)
    assert response.headers["tus-checksum-algorithm"] == "sha1,sha256"


@headers_only
@pytest.mark.parametrize("version", [None, "0.2.2"])
async def test_another_tus_version_is_412_with_the_version_served(
    client: Client, version: str | None
) -> None:
    headers = {"Upload-Length": "10"} | ({} if version is None else {"Tus-Resumable": version})
    response = await client.post("/uploads", headers=headers)
    assert_problem(response, 412)
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-resumable"] == "1.0.0"


async def test_an_upload_in_chunks_becomes_a_document_visible_only_when_complete(client: Client) -> None:
    location = await create(client, len(PDF), filename="Q3 report.pdf", tags="finance,q3")
    chunks = [PDF[i : i + 10_000] for i in range(0, len(PDF), 10_000)]
    offset = 0
    for chunk in chunks[:-1]:
        response = await send(client, location, offset, chunk)
        assert response.status_code == 204, response.text
        offset += len(chunk)
        assert response.headers["upload-offset"] == str(offset)
        assert "location" not in response.headers
        assert (await client.get("/documents")).json()["documents"] == []
    head = await client.head(location, headers=TUS)
    assert head.status_code == 200
    assert (head.headers["upload-offset"], head.headers["upload-length"]) == (str(offset), str(len(PDF)))
    assert head.headers["cache-control"] == "no-store"
    final = await send(client, location, offset, chunks[-1])
    assert final.status_code == 204, final.text
    assert final.headers["upload-offset"] == str(len(PDF))
    document_location = final.headers["location"]
    document = (await client.get(document_location)).json()
    assert document["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert (document["filename"], document["size"], document["tags"]) == (
        "Q3 report.pdf",
        len(PDF),
        ["finance", "q3"],
    )
    assert document["content_type"] == "application/pdf"
    assert (await client.get(f"{document_location}/content")).content == PDF
    again = await client.head(location, headers=TUS)
    assert (again.status_code, again.headers["location"]) == (200, document_location)
    assert again.headers["upload-offset"] == str(len(PDF))
    retried = await send(client, location, len(PDF), b"")
    assert (retried.status_code, retried.headers["location"]) == (204, document_location)
    assert len((await client.get("/documents")).json()["documents"]) == 1


async def test_creation_with_upload_stores_the_first_bytes(client: Client) -> None:
    response = await client.post(
        "/uploads",
        content=b"hello ",
        headers={
            **BYTES,
            "Upload-Length": "11",
            "Upload-Metadata": metadata(name="hi.txt", filetype="text/plain"),
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["upload-offset"] == "6"
    final = await send(client, response.headers["location"], 6, b"world")
    document = (await client.get(final.headers["location"])).json()
    assert (document["filename"], document["content_type"], document["size"]) == ("hi.txt", "text/plain", 11)


async def test_a_patch_at_the_wrong_offset_is_409_and_changes_nothing(client: Client) -> None:
    location = await create(client, 10, filename="a.bin")
    assert (await send(client, location, 0, b"12345")).status_code == 204
    assert_problem(await send(client, location, 3, b"xx"), 409)
    assert_problem(await send(client, location, 7, b"xx"), 409)
    assert (await client.head(location, headers=TUS)).headers["upload-offset"] == "5"


async def test_a_checksum_mismatch_is_460_the_chunk_discarded_and_a_correct_retry_completes(
    client: Client,
) -> None:
    location = await create(client, 8, filename="c.bin")
    bad = await send(client, location, 0, b"abcd", **{"Upload-Checksum": checksum("sha256", b"abcX")})
    problem = assert_problem(bad, 460)
    assert problem["title"] == "Checksum Mismatch"
    assert bad.headers["tus-resumable"] == "1.0.0"
    assert (await client.head(location, headers=TUS)).headers["upload-offset"] == "0"
    good = await send(client, location, 0, b"abcd", **{"Upload-Checksum": checksum("sha256", b"abcd")})
    assert good.headers["upload-offset"] == "4"
    final = await send(client, location, 4, b"efgh", **{"Upload-Checksum": checksum("sha1", b"efgh")})
    document = (await client.get(final.headers["location"])).json()
    assert document["sha256"] == hashlib.sha256(b"abcdefgh").hexdigest()


@headers_only
@pytest.mark.parametrize("header", ["md5 AAAA", "sha256 not*base64"])
async def test_an_unusable_checksum_header_is_400(client: Client, header: str) -> None:
    location = await create(client, 8, filename="c.bin")
    assert_problem(await send(client, location, 0, b"abcd", **{"Upload-Checksum": header}), 400)


async def test_a_body_past_the_upload_length_is_413_and_stores_nothing(client: Client) -> None:
    location = await create(client, 4, filename="c.bin")
    assert_problem(await send(client, location, 0, b"12345"), 413)
    assert (await client.head(location, headers=TUS)).headers["upload-offset"] == "0"


@headers_only
async def test_a_patch_of_another_type_is_415(client: Client) -> None:
    location = await create(client, 4, filename="c.bin")
    response = await client.patch(
        location, content=b"1234", headers={**TUS, "Upload-Offset": "0", "Content-Type": "text/plain"}
    )
    assert_problem(response, 415)


@headers_only
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 400),
        ({"Upload-Length": "-1"}, 400),
        ({"Upload-Defer-Length": "1"}, 400),
        ({"Upload-Length": "0"}, 400),
        ({"Upload-Length": str(MAX_UPLOAD_BYTES + 1)}, 413),
        ({"Upload-Length": "5", "Upload-Metadata": "filename !!!"}, 400),
        ({"Upload-Length": "5", "Upload-Metadata": "a YQ==,a YQ=="}, 400),
        ({"Upload-Length": "5", "Upload-Metadata": metadata(filename="")}, 201),
        ({"Upload-Length": "5", "Upload-Metadata": metadata(filename="x" * 2000)}, 422),
        ({"Upload-Length": "5", "Upload-Metadata": metadata(filename="a", filetype="not a type")}, 422),
    ],
)
async def test_creation_checks_its_headers(client: Client, headers: dict[str, str], status: int) -> None:
    response = await client.post("/uploads", headers={**TUS, **headers})
    if status == 201:
        assert response.status_code == 201
    else:
        assert_problem(response, status)


async def test_unknown_and_malformed_upload_ids_are_404(client: Client) -> None:
    for path in ("/uploads/" + "A" * 32, "/uploads/..", "/uploads/x"):
        assert (await client.head(path, headers=TUS)).status_code == 404
        assert_problem(await send(client, path, 0, b"1"), 404)
        assert_problem(await client.delete(path, headers=TUS), 404)


async def test_termination_removes_the_upload(client: Client) -> None:
    location = await create(client, 10, filename="t.bin")
    await send(client, location, 0, b"12345")
    response = await client.delete(location, headers=TUS)
    assert response.status_code == 204
    assert response.headers["tus-resumable"] == "1.0.0"
    assert (await client.head(location, headers=TUS)).status_code == 404
    assert_problem(await send(client, location, 5, b"67890"), 404)
