"""Idempotency-Key on uploads (draft-ietf-httpapi-idempotency-key-header), on every adapter pair."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import Response

from tests.http.helpers import Client, assert_problem, content_digest, upload

KEY = "7d3c0f1e-upload-1"


async def keyed(
    client: Client, data: bytes = b"once only\n", key: str | bytes = KEY, path: str = "/documents"
) -> Response:
    """A multipart upload: each call draws a new boundary, so retries differ on the wire."""
    response: Response = await client.post(
        path,
        files={"file": ("once.txt", data, "text/plain")},
        data={"tags": "a,b"},
        headers={b"idempotency-key": key.encode() if isinstance(key, str) else key},
    )
    return response


async def keyed_raw(client: Client, data: bytes = b"once only\n", **headers: str) -> Response:
    response: Response = await client.post(
        "/documents",
        params={"filename": "once.txt"},
        content=data,
        headers={"content-type": "text/plain", "idempotency-key": KEY, **headers},
    )
    return response


async def listed(client: Client) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = (await client.get("/documents")).json()["documents"]
    return documents


@pytest.mark.parametrize("path", ["/documents", "/upload"])
async def test_a_retry_gets_the_first_document_and_stores_nothing(client: Client, path: str) -> None:
    first = await keyed(client, path=path)
    assert first.status_code == 201, first.text
    retry = await keyed(client, path=path)
    assert retry.status_code == 201, retry.text
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["etag"] == first.headers["etag"]
    assert [document["id"] for document in await listed(client)] == [first.json()["id"]]


async def test_a_raw_retry_is_recognised_with_or_without_content_digest(client: Client) -> None:
    data = b"raw once\n"
    first = await keyed_raw(client, data)
    assert first.status_code == 201, first.text
    assert (await keyed_raw(client, data)).json() == first.json()
    assert (await keyed_raw(client, data, **{"content-digest": content_digest(data)})).json() == first.json()
    assert len(await listed(client)) == 1


async def test_the_same_key_with_other_content_is_refused(client: Client) -> None:
    first = await keyed(client, b"first\n")
    assert first.status_code == 201
    assert_problem(await keyed(client, b"second\n"), 422)
    assert_problem(
        await keyed_raw(client, b"second\n", **{"content-digest": content_digest(b"second\n")}), 422
    )
    assert [document["id"] for document in await listed(client)] == [first.json()["id"]]


async def test_quoted_and_bare_keys_are_the_same_key(client: Client) -> None:
    first = await keyed(client, key='"quoted \\"key\\""')
    assert first.status_code == 201, first.text
    assert (await keyed(client, key='quoted "key"')).json() == first.json()


async def test_other_keys_and_no_key_store_new_documents(client: Client) -> None:
    first = (await keyed(client, key="one")).json()
    second = (await keyed(client, key="two")).json()
    unkeyed = (await upload(client, b"once only\n", "once.txt")).json()
    assert len({first["id"], second["id"], unkeyed["id"]}) == 3
    assert len(await listed(client)) == 3


@pytest.mark.parametrize(
    "key",
    ["", "   ", "k" * 256, "tab\there", "é".encode(), '"unterminated', '"bad \\n escape"', '""'],
    ids=["empty", "blank", "256-chars", "control", "non-ascii", "unterminated", "bad-escape", "empty-quoted"],
)
async def test_malformed_keys_are_refused_before_anything_is_stored(client: Client, key: str | bytes) -> None:
    assert_problem(await keyed(client, key=key), 400)
    assert await listed(client) == []


async def test_a_key_of_255_printable_characters_is_accepted(client: Client) -> None:
    key = "".join(chr(33 + n % 94) for n in range(255))
    first = await keyed(client, key=key)
    assert first.status_code == 201, first.text
    assert (await keyed(client, key=key)).json()["id"] == first.json()["id"]


async def test_a_failed_upload_frees_its_key_for_the_retry(client: Client) -> None:
    assert_problem(await keyed(client, b""), 400)
    retry = await keyed(client, b"now with content\n")
    assert retry.status_code == 201, retry.text
    assert len(await listed(client)) == 1


async def test_a_retry_after_the_document_was_deleted_is_gone(client: Client) -> None:
    first = (await keyed(client)).json()
    assert (await client.delete(f"/documents/{first['id']}")).status_code == 204
    problem = assert_problem(await keyed(client), 410)
    assert first["id"] in problem["detail"]
    assert await listed(client) == []
