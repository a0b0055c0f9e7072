"""Declared content types are one strict media type, stored and served normalised, on every adapter pair.

A value that is not exactly one media type could carry a second type a browser picks instead
(``text/plain; a=b, text/html`` renders as HTML) or characters no HTTP header can carry (a Cyrillic
``a``, U+0430, made every later download a 500), so it is refused and nothing is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from docpipe.config import Settings
from docpipe.container import Container
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.ports import DocumentRepository
from tests.http.helpers import Client, assert_problem, serve, upload_ok

HTML = b"<script>alert(document.domain)</script>"
NOT_ONE_MEDIA_TYPE = [
    "text/plain; a=b, text/html",
    "text/plain, text/html",
    'text/html;x=", text/plain',
    "text/pl\u0430in",  # Cyrillic a (U+0430): not Latin-1, so no response header can carry it
    "text/plain; charset=caf\u00e9",
    "*/*",
]


def _multipart(content_type: bytes, data: bytes = HTML) -> tuple[bytes, dict[str, str]]:
    boundary = "typeboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'.encode()
        + b"Content-Type: "
        + content_type
        + b"\r\n\r\n"
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


async def _stored_ids(client: Client) -> list[str]:
    return [document["id"] for document in (await client.get("/documents")).json()["documents"]]


@pytest.mark.parametrize("declared", NOT_ONE_MEDIA_TYPE)
async def test_a_raw_upload_not_typed_as_one_media_type_is_refused(client: Client, declared: str) -> None:
    response = await client.post(
        "/documents?filename=a.txt", content=HTML, headers={b"content-type": declared.encode()}
    )
    assert "content type" in assert_problem(response, 422)["detail"]
    assert await _stored_ids(client) == []


@pytest.mark.parametrize("declared", NOT_ONE_MEDIA_TYPE)
@pytest.mark.parametrize("path", ["/documents", "/upload"])
async def test_a_file_part_not_typed_as_one_media_type_is_refused(
    client: Client, declared: str, path: str
) -> None:
    body, headers = _multipart(declared.encode())
    response = await client.post(path, content=body, headers=headers)
    assert "content type" in assert_problem(response, 422)["detail"]
    assert await _stored_ids(client) == []


async def test_a_latin_1_byte_in_a_raw_content_type_is_refused(client: Client) -> None:
    response = await client.post(
        "/documents?filename=a.txt", content=HTML, headers={b"content-type": b"text/pl\xe0in"}
    )
    assert_problem(response, 422)
    assert await _stored_ids(client) == []


async def test_the_declared_type_is_stored_and_served_normalised(client: Client) -> None:
    raw = await client.post(
        "/documents?filename=a.txt", content=b"hi", headers={"content-type": 'Text/Plain ;Charset="utf-8"'}
    )
    assert raw.status_code == 201, raw.text
    body, headers = _multipart(b"TEXT/CSV;header=present", b"a,b\n")
    form = await client.post("/documents", content=body, headers=headers)
    assert form.status_code == 201, form.text
    for created, expected in ((raw, "text/plain; charset=utf-8"), (form, "text/csv; header=present")):
        url = f"/documents/{created.json()['id']}"
        assert created.json()["content_type"] == expected
        assert (await client.get(url)).json()["content_type"] == expected
        assert (await client.get(f"{url}/content")).headers["content-type"] == expected
        assert (await client.head(f"{url}/content")).headers["content-type"] == expected
    inline = await client.get(f"/documents/{raw.json()['id']}/content", params={"disposition": "inline"})
    assert inline.headers["content-disposition"].startswith("inline;")


@pytest.fixture
async def client_and_repository(
    settings: Settings,
) -> AsyncIterator[tuple[Client, DocumentRepository]]:
    container = Container(settings=settings)
    async with serve(settings, container) as test_client:
        repository: DocumentRepository = await container.repository()
        yield test_client, repository


@pytest.mark.parametrize("stored", ["text/plain; a=b, text/html", "text/pl\u0430in", "text/html,"])
async def test_a_stored_type_that_does_not_parse_is_served_as_an_octet_stream_attachment(
    client_and_repository: tuple[Client, DocumentRepository], stored: str
) -> None:
    """Documents stored before types were parsed strictly keep working, and never render."""
    client, repository = client_and_repository
    document_id = (await upload_ok(client, HTML, "old.txt"))["id"]

    async def store_legacy_type() -> None:
        await repository.update(
            DEFAULT_OWNER,
            document_id,
            lambda current: msgspec.structs.replace(
                current, content_type=stored, version=current.version + 1
            ),
        )

    # The stores belong to the app's event loop, which runs in the test client's portal thread.
    client.blocking_portal.call(store_legacy_type)
    url = f"/documents/{document_id}/content"
    for response in (
        await client.get(url, params={"disposition": "inline"}),
        await client.head(url, params={"disposition": "inline"}),
        await client.get("/download/old.txt", params={"disposition": "inline"}),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"].startswith("attachment;")
    assert (await client.get(url)).content == HTML
