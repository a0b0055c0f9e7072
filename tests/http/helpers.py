"""Small request helpers shared by the HTTP tests."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from dependency_injector import providers
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient

from docpipe.config import Settings
from docpipe.container import Container, close
from docpipe.domain.ports import BlobStore, DocumentRepository
from docpipe.entrypoints.http.app import create_app
from tests.credentials import bearer

Client = AsyncTestClient[Litestar]


@contextlib.asynccontextmanager
async def serve(settings: Settings, container: Container | None = None) -> AsyncIterator[Client]:
    """A client of an app running on ``container`` (override its providers before), sending the admin
    key of ``settings`` with every request unless a request sends an ``Authorization`` of its own."""
    async with AsyncTestClient(app=create_app(settings, container)) as client:
        if settings.admin_key is not None:
            client.headers.update(bearer(settings.admin_key.reveal()))
        yield client


def wrap_repository(
    container: Container, settings: Settings, wrap: Callable[[DocumentRepository], DocumentRepository]
) -> None:
    """Serve the selected repository through ``wrap`` (a spy, a failing wrapper) from now on."""
    selected = container.repository.providers[settings.repository.value]
    container.repository.override(providers.Callable(wrap, selected))


def wrap_blob_store(container: Container, settings: Settings, wrap: Callable[[BlobStore], BlobStore]) -> None:
    """Serve the selected blob store through ``wrap`` from now on."""
    selected = container.blob_store.providers[settings.blob_store.value]
    container.blob_store.override(providers.Callable(wrap, selected))


@contextlib.asynccontextmanager
async def stores_of(
    settings: Settings, container: Container
) -> AsyncIterator[tuple[BlobStore, DocumentRepository]]:
    """The stores behind an app, usable from the test's event loop: the app's own in-memory stores,
    or others opened here on the same folder, bucket and table (the app runs in a loop of its own,
    to which its network clients belong)."""
    if settings.blob_store.value == settings.repository.value == "memory":
        yield await container.blob_store(), await container.repository()
        return
    own = Container(settings=settings)
    try:
        yield await own.blob_store(), await own.repository()
    finally:
        await close(own)


async def upload(
    client: Client,
    data: bytes = b"hello, docpipe\n",
    filename: str = "hello.txt",
    content_type: str = "text/plain",
    *,
    fields: dict[str, str] | None = None,
    path: str = "/documents",
) -> Response:
    response: Response = await client.post(
        path, files={"file": (filename, data, content_type)}, data=fields or {}
    )
    return response


async def upload_ok(
    client: Client, data: bytes = b"hello, docpipe\n", filename: str = "hello.txt", **kw: Any
) -> dict[str, Any]:
    response = await upload(client, data, filename, **kw)
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


def content_digest(data: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert problem["type"]
    assert "Traceback" not in response.text
    return problem
