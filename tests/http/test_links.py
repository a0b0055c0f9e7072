"""Signed links over every adapter pair: what a holder of a link can and cannot do with it."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from dependency_injector import providers

from docpipe.config import Settings
from docpipe.container import Container
from docpipe.domain.model import NewDocument, utc_now
from docpipe.domain.service import DocumentService
from tests.adapters_under_test import settings_for
from tests.http.helpers import Client, assert_problem, serve, stores_of, upload_ok

DATA = os.urandom(300_000)


class Clock:
    """The time links are issued and checked at: now, moved forward by the tests."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset


@pytest.fixture
def clock(container: Container) -> Clock:
    clock = Clock()
    container.link_clock.override(providers.Object(clock))
    return clock


@pytest.fixture
async def client(settings: Settings, container: Container, clock: Clock) -> AsyncIterator[Client]:
    """The app on a container whose link clock the test moves."""
    async with serve(settings, container) as test_client:
        yield test_client


async def stored(client: Client, data: bytes = DATA, filename: str = "shared.bin", **kw: Any) -> str:
    document = await upload_ok(client, data, filename, **kw)
    document_id: str = document["id"]
    return document_id


async def share(client: Client, document_id: str, expires_in: int = 60, **fields: Any) -> str:
    """The path of a new link to the document (the url is checked to be absolute on the way)."""
    response = await client.post(f"/documents/{document_id}/links", json={"expires_in": expires_in, **fields})
    assert response.status_code == 201, response.text
    url = urlsplit(str(response.json()["url"]))
    assert (url.scheme, url.netloc) == ("http", "testserver.local")
    assert url.path.startswith("/l/")
    return url.path


async def invite(client: Client, **fields: Any) -> str:
    response = await client.post("/links/upload", json={"expires_in": 60, **fields})
    assert response.status_code == 201, response.text
    return urlsplit(str(response.json()["url"])).path


def tampered(path: str, position: int) -> str:
    prefix, token = path[:3], path[3:]
    replacement = "A" if token[position] != "A" else "B"
    return prefix + token[:position] + replacement + token[position + 1 :]


async def test_a_link_serves_the_content_without_credentials(client: Client) -> None:
    document_id = await stored(client)
    before = utc_now()
    response = await client.post(f"/documents/{document_id}/links", json={"expires_in": 3600})
    assert response.status_code == 201, response.text
    expires_at = datetime.fromisoformat(response.json()["expires_at"])
    assert before + timedelta(seconds=3600) <= expires_at <= utc_now() + timedelta(seconds=3601)
    link = urlsplit(str(response.json()["url"])).path
    served = await client.get(link)
    assert served.status_code == 200
    assert served.content == DATA
    direct = await client.get(f"/documents/{document_id}/content")
    for header in ("etag", "last-modified", "content-type", "content-disposition", "repr-digest"):
        assert served.headers[header] == direct.headers[header]
    assert served.headers["content-disposition"].startswith("attachment;")
    assert served.headers["referrer-policy"] == "no-referrer"
    head = await client.head(link)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(DATA))


async def test_ranges_and_conditional_requests_work_through_a_link(client: Client) -> None:
    link = await share(client, await stored(client))
    etag = f'"{hashlib.sha256(DATA).hexdigest()}"'
    ranged = await client.get(link, headers={"range": "bytes=10-99"})
    assert ranged.status_code == 206
    assert ranged.content == DATA[10:100]
    assert ranged.headers["content-range"] == f"bytes 10-99/{len(DATA)}"
    assert (await client.get(link, headers={"if-none-match": etag})).status_code == 304
    resumed = await client.get(link, headers={"range": "bytes=100-", "if-range": etag})
    assert (resumed.status_code, resumed.content) == (206, DATA[100:])
    changed = await client.get(link, headers={"range": "bytes=100-", "if-range": '"other"'})
    assert (changed.status_code, changed.content) == (200, DATA)


async def test_a_link_serves_inline_only_what_is_safe_inline(client: Client) -> None:
    text = await share(
        client, await stored(client, b"plain\n", "a.txt", content_type="text/plain"), disposition="inline"
    )
    assert (await client.get(text)).headers["content-disposition"].startswith("inline;")
    page = await share(
        client,
        await stored(client, b"<script></script>", "a.html", content_type="text/html"),
        disposition="inline",
    )
    assert (await client.get(page)).headers["content-disposition"].startswith("attachment;")


async def test_a_tampered_link_is_forbidden(client: Client) -> None:
    link = await share(client, await stored(client))
    for position in (0, 5, 20, len(link) - 4, len(link) - 4):
        assert_problem(await client.get(tampered(link, min(position, len(link) - 4))), 403)
    for bogus in ("/l/x", "/l/" + "A" * 200, link + "A", link[:-1]):
        assert_problem(await client.get(bogus), 403)
    assert (await client.get(link)).status_code == 200


async def test_an_expired_link_is_gone(client: Client, clock: Clock) -> None:
    link = await share(client, await stored(client), expires_in=60)
    clock.offset = timedelta(seconds=59)
    assert (await client.head(link)).status_code == 200
    clock.offset = timedelta(seconds=62)
    assert_problem(await client.get(link), 410)
    assert (await client.head(link)).status_code == 410


async def test_revoked_links_are_gone_and_new_ones_work(client: Client) -> None:
    document_id = await stored(client)
    first, second = await share(client, document_id), await share(client, document_id)
    assert (await client.delete(f"/documents/{document_id}/links")).status_code == 204
    assert_problem(await client.get(first), 410)
    assert_problem(await client.get(second), 410)
    third = await share(client, document_id)
    assert (await client.get(third)).content == DATA
    metadata = await client.get(f"/documents/{document_id}")
    assert metadata.status_code == 200
    assert (await client.get(f"/documents/{document_id}/content")).content == DATA


async def test_a_link_to_a_deleted_document_is_not_found(client: Client) -> None:
    document_id = await stored(client)
    link = await share(client, document_id)
    assert (await client.delete(f"/documents/{document_id}")).status_code == 204
    assert_problem(await client.get(link), 404)


async def test_no_link_to_a_document_that_does_not_exist(client: Client) -> None:
    missing = "0193f4d2-0000-7000-8000-000000000000"
    assert_problem(await client.post(f"/documents/{missing}/links", json={"expires_in": 60}), 404)
    assert_problem(await client.delete(f"/documents/{missing}/links"), 404)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"expires_in": 0},
        {"expires_in": 604801},
        {"expires_in": 60, "disposition": "sideways"},
        {"expires_in": 60, "x": 1},
    ],
)
async def test_a_bad_link_request_is_refused(client: Client, body: dict[str, Any]) -> None:
    document_id = await stored(client, b"x")
    response = await client.post(f"/documents/{document_id}/links", json=body)
    assert response.status_code in (400, 422), response.text
    assert_problem(response, response.status_code)


async def test_an_upload_link_uploads_once_as_its_owner(client: Client) -> None:
    link = await invite(client, filename="from-customer.pdf", tags=["inbox"], max_bytes=1000)
    response = await client.post(link, content=b"%PDF-1.4 the upload", params={"tags": "signed"})
    assert response.status_code == 201, response.text
    document = response.json()
    assert (document["filename"], document["tags"]) == ("from-customer.pdf", ["inbox", "signed"])
    listed = (await client.get("/documents")).json()["documents"]
    assert [item["id"] for item in listed] == [document["id"]]
    assert (await client.get(f"/documents/{document['id']}/content")).content == b"%PDF-1.4 the upload"
    assert_problem(await client.post(link, content=b"again", params={"filename": "b.txt"}), 410)
    assert len((await client.get("/documents")).json()["documents"]) == 1


async def test_an_upload_link_takes_a_multipart_form(client: Client) -> None:
    link = await invite(client)
    response = await client.post(link, files={"file": ("form.txt", b"from a form", "text/plain")})
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "form.txt"


async def test_two_uploads_at_once_through_one_link_make_one_document(client: Client) -> None:
    link = await invite(client)
    responses = await asyncio.gather(
        *(client.post(link, content=os.urandom(200_000), params={"filename": f"{n}.bin"}) for n in range(2))
    )
    assert sorted(response.status_code for response in responses) == [201, 410]
    assert len((await client.get("/documents")).json()["documents"]) == 1


async def test_an_upload_beyond_the_links_cap_is_too_large_and_leaves_it_usable(client: Client) -> None:
    link = await invite(client, max_bytes=100)
    assert_problem(await client.post(link, content=b"x" * 101, params={"filename": "a.txt"}), 413)
    form = await client.post(link, files={"file": ("a.txt", b"x" * 101, "text/plain")})
    assert_problem(form, 413)
    assert (await client.get("/documents")).json()["documents"] == []
    assert (await client.post(link, content=b"x" * 100, params={"filename": "a.txt"})).status_code == 201


async def test_an_expired_or_tampered_upload_link_uploads_nothing(client: Client, clock: Clock) -> None:
    link = await invite(client)
    assert_problem(await client.post(tampered(link, 10), content=b"x", params={"filename": "a.txt"}), 403)
    clock.offset = timedelta(seconds=61)
    assert_problem(await client.post(link, content=b"x", params={"filename": "a.txt"}), 410)
    assert (await client.get("/documents")).json()["documents"] == []


async def test_a_link_of_one_kind_does_not_work_as_the_other(client: Client) -> None:
    download = await share(client, await stored(client))
    upload = await invite(client)
    assert_problem(await client.post(download, content=b"x", params={"filename": "a.txt"}), 403)
    assert_problem(await client.get(upload), 403)


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in": 60, "max_bytes": 0},
        {"expires_in": 60, "filename": ".."},
        {"expires_in": 60, "tags": ["a,b"]},
    ],
)
async def test_a_bad_upload_link_request_is_refused(client: Client, body: dict[str, Any]) -> None:
    response = await client.post("/links/upload", json=body)
    assert response.status_code in (400, 422), response.text
    assert_problem(response, response.status_code)


async def test_options_lists_every_method_of_the_link_paths(client: Client) -> None:
    missing = "0193f4d2-0000-7000-8000-000000000000"
    assert (await client.options(f"/documents/{missing}/links")).headers["allow"] == "DELETE, OPTIONS, POST"
    assert (await client.options("/l/anything")).headers["allow"] == "GET, HEAD, OPTIONS, POST"


async def test_links_are_made_of_the_public_url_when_one_is_set(tmp_path: Path) -> None:
    settings = msgspec.structs.replace(
        settings_for(data_dir=tmp_path), public_url="https://docs.example.com/docpipe/"
    )
    async with serve(settings, Container(settings=settings)) as client:
        document_id = await stored(client, b"behind a proxy")
        response = await client.post(f"/documents/{document_id}/links", json={"expires_in": 60})
        url = str(response.json()["url"])
        assert url.startswith("https://docs.example.com/docpipe/l/")
        assert (await client.get(urlsplit(url).path.removeprefix("/docpipe"))).content == b"behind a proxy"


async def test_another_owners_document_gets_no_link(
    client: Client, settings: Settings, container: Container
) -> None:
    async with stores_of(settings, container) as (blobs, repository):
        alices = await DocumentService(blobs, repository, max_upload_bytes=1024).upload(
            "alice", _once(b"alice's"), NewDocument(filename="private.txt")
        )
    assert_problem(await client.post(f"/documents/{alices.id}/links", json={"expires_in": 60}), 404)
    assert_problem(await client.delete(f"/documents/{alices.id}/links"), 404)
    async with stores_of(settings, container) as (_, repository):
        assert (await repository.get("alice", alices.id)).links_epoch == 0


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
