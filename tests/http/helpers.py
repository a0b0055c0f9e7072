"""Small request helpers shared by the HTTP tests."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]


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
