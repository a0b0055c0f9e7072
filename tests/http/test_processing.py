"""Processing, extracted text and search over HTTP, on every adapter pair: the server's own relay hands
each upload to the sandboxed extractor, as ``docpipe serve`` does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
from dependency_injector import providers

from docpipe.config import ProcessingMode, RepositoryKind, Settings
from docpipe.container import Container
from docpipe.domain.processing import Extraction
from tests.credentials import bearer
from tests.extraction import documents
from tests.http.conftest import ADAPTER_PAIRS
from tests.http.helpers import Client, assert_problem, serve, upload_ok

pytestmark = pytest.mark.processing


@pytest.fixture
def container(settings: Settings) -> Container:
    """The container as ``docpipe serve`` makes it: text extracted in the sandbox's child processes."""
    return Container(settings=settings)


EVENTUALLY = 60.0
"""Seconds processing may take on a busy test machine (a first extraction starts a child process)."""


async def processed(client: Client, document_id: str) -> dict[str, Any]:
    """The document once its processing is no longer pending."""
    deadline = time.monotonic() + EVENTUALLY
    while True:
        document: dict[str, Any] = (await client.get(f"/documents/{document_id}")).json()
        if document["processing"]["state"] != "pending":
            return document
        assert time.monotonic() < deadline, f"still pending after {EVENTUALLY:g} s"
        await asyncio.sleep(0.05)


SEARCHABLE = [pair for pair in ADAPTER_PAIRS if "dynamodb" not in pair]
"""The pairs with a search index by default; DynamoDB's has none (OpenSearch is opt-in)."""
with_search = pytest.mark.parametrize(
    "settings", SEARCHABLE, ids=["+".join(pair) for pair in SEARCHABLE], indirect=True
)
without_search = pytest.mark.parametrize("settings", [("s3", "dynamodb")], ids=["s3+dynamodb"], indirect=True)


async def found(client: Client, words: str, **params: str) -> list[str]:
    response = await client.get("/search", params={"q": words, **params})
    assert response.status_code == 200, response.text
    return [result["document"]["id"] for result in response.json()["results"]]


async def found_by_name_at_once_and_by_text_once_processed(client: Client) -> dict[str, Any]:
    """An upload is found by its name at once, by its text (accents folded) once processed, with the
    match marked in its snippet: the result found by its text."""
    uploaded = await upload_ok(client, "Un résumé rédigé à Zürich".encode(), "Résumé.txt")
    assert await found(client, "resume") == [uploaded["id"]]
    await processed(client, uploaded["id"])
    assert await found(client, "zurich redige") == [uploaded["id"]]
    [result] = (await client.get("/search", params={"q": "zurich"})).json()["results"]
    assert "<mark>Zürich</mark>" in result["snippet"]
    assert result["document"]["processing"]["state"] == "done"
    return cast("dict[str, Any]", result)


async def sees_only_the_callers_documents_and_not_deleted_ones(client: Client) -> None:
    """A document is found by its owner only (another owner's of the same name and text is not), and no
    longer once deleted: what every search index, embedded or OpenSearch, shows through ``/search``."""
    mine = await upload_ok(client, b"narwhal", "narwhal.txt")
    bob = bearer(
        (await client.post("/keys", json={"owner": "bob", "scopes": ["read", "write"]})).json()["key"]
    )
    theirs = await client.post(
        "/documents", params={"filename": "narwhal.txt"}, content=b"narwhal", headers=bob
    )
    assert theirs.status_code == 201
    assert await found(client, "narwhal") == [mine["id"]]
    response = await client.get("/search", params={"q": "narwhal"}, headers=bob)
    assert [result["document"]["id"] for result in response.json()["results"]] == [theirs.json()["id"]]
    assert (await client.delete(f"/documents/{mine['id']}")).status_code == 204
    assert await found(client, "narwhal") == []


async def test_a_pdf_is_processed_and_its_text_served(client: Client) -> None:
    pdf = documents.reportlab_pdf(["The walrus said", "cabbages and kings"], title="Walrus")
    uploaded = await upload_ok(client, pdf, "walrus.pdf", content_type="application/pdf")
    assert uploaded["processing"] == {
        "state": "pending",
        "pages": None,
        "characters": None,
        "title": None,
        "error": None,
    }
    document = await processed(client, uploaded["id"])
    assert document["processing"]["state"] == "done", document
    assert (document["processing"]["pages"], document["processing"]["title"]) == (2, "Walrus")
    text = await client.get(f"/documents/{uploaded['id']}/text")
    assert text.status_code == 200
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert "cabbages and kings" in text.text
    assert document["processing"]["characters"] == len(text.text)


async def test_a_damaged_file_fails_with_a_reason_and_has_no_text(client: Client) -> None:
    uploaded = await upload_ok(
        client, documents.truncated_pdf(), "broken.pdf", content_type="application/pdf"
    )
    document = await processed(client, uploaded["id"])
    assert document["processing"]["state"] == "failed"
    assert document["processing"]["error"] == "the PDF is truncated or damaged"
    response = await client.get(f"/documents/{uploaded['id']}/text")
    assert_problem(response, 404)
    assert "retry-after" not in response.headers


async def test_a_type_no_processor_reads_is_skipped(client: Client) -> None:
    uploaded = await upload_ok(client, b"\x89PNG\r\n\x1a\n", "a.png", content_type="image/png")
    assert (await processed(client, uploaded["id"]))["processing"]["state"] == "skipped"
    assert_problem(await client.get(f"/documents/{uploaded['id']}/text"), 404)


async def test_a_server_with_processing_off_leaves_documents_pending_and_findable_by_name(
    settings: Settings,
) -> None:
    off = msgspec.structs.replace(settings, processing=ProcessingMode.OFF)
    async with serve(off, Container(settings=off)) as client:
        uploaded = await upload_ok(client, b"walrus", "walrus.txt")
        await asyncio.sleep(1)  # time enough for a relay that would process it (one runs: search)
        document = (await client.get(f"/documents/{uploaded['id']}")).json()
        assert document["processing"]["state"] == "pending"
        if settings.repository is not RepositoryKind.DYNAMODB:  # DynamoDB has no index by default
            assert await found(client, "walrus") == [uploaded["id"]]


class _HeldExtractor:
    """An extractor that never finishes: documents stay pending."""

    async def extract(self, source: Path, content_type: str, text_out: Path) -> Extraction:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.fixture
async def held(settings: Settings) -> AsyncIterator[Client]:
    container = Container(settings=settings)
    container.extractor.override(providers.Object(_HeldExtractor()))
    async with serve(settings, container) as client:
        yield client


async def test_the_text_of_a_pending_document_is_404_with_retry_after(held: Client) -> None:
    uploaded = await upload_ok(held, b"not yet", "a.txt")
    response = await held.get(f"/documents/{uploaded['id']}/text")
    assert_problem(response, 404)
    assert int(response.headers["retry-after"]) > 0


async def test_another_owners_text_is_404(client: Client) -> None:
    uploaded = await upload_ok(client, b"mine", "a.txt")
    await processed(client, uploaded["id"])
    created = await client.post("/keys", json={"owner": "bob", "scopes": ["read"]})
    response = await client.get(f"/documents/{uploaded['id']}/text", headers=bearer(created.json()["key"]))
    assert_problem(response, 404)


@with_search
async def test_a_document_is_found_by_name_at_once_and_by_text_once_processed(
    client: Client, settings: Settings
) -> None:
    result = await found_by_name_at_once_and_by_text_once_processed(client)
    assert 0 < result["score"] <= 1


@with_search
async def test_search_sees_only_the_callers_documents_and_not_deleted_ones(
    client: Client, settings: Settings
) -> None:
    await sees_only_the_callers_documents_and_not_deleted_ones(client)


@with_search
@pytest.mark.parametrize("words", ['"', "*", "NEAR(", "a OR b", "x AND NOT y", "col:val", "^", "(((", "é*"])
async def test_search_syntax_from_users_is_words_never_an_error(
    client: Client, settings: Settings, words: str
) -> None:
    response = await client.get("/search", params={"q": words})
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert_problem(response, 422)


@with_search
async def test_a_bad_search_is_refused_clearly(client: Client, settings: Settings) -> None:
    assert_problem(await client.get("/search", params={"q": "   "}), 422)
    assert_problem(await client.get("/search"), 400)
    assert_problem(await client.get("/search", params={"q": "a", "limit": "0"}), 400)
    assert_problem(await client.get("/search", params={"q": "a", "cursor": "garbage"}), 400)


@without_search
async def test_search_without_a_backend_is_501(client: Client) -> None:
    problem = assert_problem(await client.get("/search", params={"q": "anything"}), 501)
    assert "DOCPIPE_SEARCH=opensearch" in problem["detail"]
