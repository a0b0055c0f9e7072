"""``DOCPIPE_S3_PRESIGNED_REDIRECT``: a download link answers 302 to a presigned S3 GET.

moto serves presigned URLs whether or not their signature, expiry or host are right, so these tests
check what docpipe puts in them (host, expiry, response headers) and that following one gets the bytes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest

from docpipe.config import Settings
from docpipe.container import Container
from docpipe.entrypoints.http.links import PRESIGNED_SECONDS
from tests.adapters_under_test import settings_for
from tests.http.helpers import Client, assert_problem, serve, upload_ok
from tests.moto_server import MotoServer

DATA = os.urandom(100_000)


def redirecting(moto_server: MotoServer, tmp_path: Path, public_endpoint_url: str | None) -> Settings:
    settings = settings_for(
        blob_store="s3", repository="memory", data_dir=tmp_path, aws_endpoint_url=moto_server.endpoint_url
    )
    s3 = msgspec.structs.replace(
        settings.s3, presigned_redirect=True, public_endpoint_url=public_endpoint_url
    )
    return msgspec.structs.replace(settings, s3=s3)


@pytest.fixture
async def client(moto_server: MotoServer, tmp_path: Path) -> AsyncIterator[Client]:
    """Clients reach S3 at ``localhost``, docpipe at ``127.0.0.1``: the signature must be for the former."""
    public = moto_server.endpoint_url.replace("127.0.0.1", "localhost")
    settings = redirecting(moto_server, tmp_path, public)
    async with serve(settings, Container(settings=settings)) as test_client:
        yield test_client


async def shared(client: Client, filename: str = "Q3 réport.txt", **fields: str) -> str:
    document = await upload_ok(client, DATA, filename, content_type="text/plain")
    response = await client.post(f"/documents/{document['id']}/links", json={"expires_in": 600, **fields})
    assert response.status_code == 201, response.text
    return urlsplit(str(response.json()["url"])).path


async def test_a_link_redirects_to_a_short_lived_presigned_get(
    client: Client, moto_server: MotoServer
) -> None:
    link = await shared(client)
    response = await client.get(link, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["cache-control"] == "no-store"
    location = urlsplit(response.headers["location"])
    assert location.netloc == urlsplit(moto_server.endpoint_url).netloc.replace("127.0.0.1", "localhost")
    query = parse_qs(location.query)
    assert query["X-Amz-Expires"] == [str(PRESIGNED_SECONDS)]
    assert PRESIGNED_SECONDS <= 120
    assert query["response-content-disposition"] == [
        "attachment; filename=\"Q3 report.txt\"; filename*=UTF-8''Q3%20r%C3%A9port.txt"
    ]
    assert query["response-content-type"] == ["text/plain"]
    async with httpx.AsyncClient() as s3_client:
        fetched = await s3_client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.content == DATA
    assert fetched.headers["content-disposition"] == query["response-content-disposition"][0]
    head = await client.head(link, follow_redirects=False)
    assert head.status_code == 302


async def test_the_disposition_asked_for_travels_in_the_presigned_url(client: Client) -> None:
    link = await shared(client, "notes.txt", disposition="inline")
    location = urlsplit((await client.get(link, follow_redirects=False)).headers["location"])
    assert parse_qs(location.query)["response-content-disposition"] == ['inline; filename="notes.txt"']


async def test_a_revoked_or_tampered_link_redirects_nowhere(client: Client) -> None:
    link = await shared(client)
    assert_problem(await client.get(link[:-2] + ("AA" if link[-2:] != "AA" else "BB")), 403)
    document_id = (await client.get("/documents")).json()["documents"][0]["id"]
    assert (await client.delete(f"/documents/{document_id}/links")).status_code == 204
    assert_problem(await client.get(link), 410)


async def test_without_a_public_endpoint_the_url_is_signed_for_docpipes(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    settings = redirecting(moto_server, tmp_path, None)
    async with serve(settings, Container(settings=settings)) as client:
        location = (await client.get(await shared(client), follow_redirects=False)).headers["location"]
    assert urlsplit(location).netloc == urlsplit(moto_server.endpoint_url).netloc
