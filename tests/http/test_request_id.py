"""Every response carries a request id, which problem bodies repeat, on every adapter pair; a client's
own is kept only when it comes from a trusted proxy (``DOCPIPE_TRUSTED_PROXIES``) and is well-formed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from litestar.enums import ScopeType
from litestar.testing import AsyncTestClient
from litestar.types import ASGIApp, Receive, Scope, Send

from docpipe.config import TrustedProxies
from docpipe.entrypoints.http.app import create_app
from tests.adapters_under_test import settings_for
from tests.credentials import ADMIN_HEADERS
from tests.http.helpers import Client, assert_problem, upload

WELL_FORMED = "client-7f3a.retry:2"


async def test_every_response_carries_a_request_id(client: Client) -> None:
    responses = [
        await client.get("/health/live"),
        await client.get("/health/ready"),
        await upload(client),
        await client.get("/documents"),
        await client.get("/documents/no-such-document"),
        await client.get("/no/such/route"),
        await client.delete("/health/live"),
    ]
    ids = [response.headers.get("x-request-id") for response in responses]
    assert all(ids), [(response.request.url, response.headers) for response in responses]
    assert len(set(ids)) == len(ids)


async def test_a_problem_body_repeats_the_request_id(client: Client) -> None:
    response = await client.get("/documents/no-such-document")
    problem = assert_problem(response, 404)
    assert problem["request_id"] == response.headers["x-request-id"]
    response = await client.get("/no/such/route")
    assert assert_problem(response, 404)["request_id"] == response.headers["x-request-id"]


PEER_HEADER = "x-test-peer"
"""Where a test names the address its request comes from (a server takes it from the connection)."""


def _from_peer(app: ASGIApp) -> ASGIApp:
    """``app`` as reached from the address each request names in ``PEER_HEADER``."""

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            peer = dict(scope["headers"])[PEER_HEADER.encode()].decode()
            scope["client"] = (peer, 51234)
        await app(scope, receive, send)

    return handler


@contextlib.asynccontextmanager
async def reached(tmp_path: Path, trusted: str | None = None) -> AsyncIterator[Client]:
    """A client of an app (in-memory stores: trust is decided before any store) whose requests come
    from the address they name, with ``DOCPIPE_TRUSTED_PROXIES`` set to ``trusted`` (default: loopback)."""
    settings = settings_for(data_dir=tmp_path / "data")
    if trusted is not None:
        settings = msgspec.structs.replace(settings, trusted_proxies=TrustedProxies(trusted))
    app = create_app(settings)
    app.asgi_handler = _from_peer(app.asgi_handler)
    async with AsyncTestClient(app=app) as client:
        client.headers.update(ADMIN_HEADERS)
        yield client


async def _answers(client: Client, peer: str, incoming: str) -> list[str]:
    """The ids a success, a 404 problem, an unmatched route and a 401 carry, with the problem bodies'."""
    headers = {"x-request-id": incoming, PEER_HEADER: peer}
    ok = await client.get("/documents", headers=headers)
    missing = await client.get("/documents/no-such-document", headers=headers)
    unmatched = await client.get("/no/such/route", headers=headers)
    refused = await client.get("/documents", headers={**headers, "authorization": "Bearer nope"})
    assert [ok.status_code, missing.status_code, unmatched.status_code, refused.status_code] == [
        200,
        404,
        404,
        401,
    ]
    bodies = [response.json()["request_id"] for response in (missing, unmatched, refused)]
    return [response.headers["x-request-id"] for response in (ok, missing, unmatched, refused)] + bodies


async def test_a_well_formed_request_id_from_a_loopback_proxy_is_kept(tmp_path: Path) -> None:
    async with reached(tmp_path) as client:
        for peer in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
            assert await _answers(client, peer, WELL_FORMED) == [WELL_FORMED] * 7, peer


async def test_a_request_id_from_an_untrusted_peer_is_replaced(tmp_path: Path) -> None:
    async with reached(tmp_path) as client:
        for peer in ("203.0.113.7", "10.1.2.3", "2001:db8::1", "testclient"):
            ids = await _answers(client, peer, WELL_FORMED)
            assert WELL_FORMED not in ids, peer
            assert all(chosen.isalnum() for chosen in ids)
            assert len(set(ids[:4])) == 4


@pytest.mark.parametrize(
    ("trusted", "peers"),
    [
        (
            "10.0.0.0/8, 192.0.2.1",
            {"10.200.3.4": True, "192.0.2.1": True, "192.0.2.2": False, "127.0.0.1": False},
        ),
        ("2001:db8::/32", {"2001:db8::5": True, "2001:db9::5": False}),
        ("*", {"198.51.100.9": True, "testclient": True}),
        ("none", {"127.0.0.1": False, "::1": False}),
    ],
)
async def test_trusted_proxies_are_the_configured_addresses_and_networks(
    tmp_path: Path, trusted: str, peers: dict[str, bool]
) -> None:
    async with reached(tmp_path, trusted) as client:
        for peer, kept in peers.items():
            headers = {"x-request-id": WELL_FORMED, PEER_HEADER: peer}
            response = await client.get("/documents/no-such-document", headers=headers)
            assert (response.headers["x-request-id"] == WELL_FORMED) is kept, peer
            assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_a_malformed_request_id_from_a_trusted_proxy_is_replaced(tmp_path: Path) -> None:
    async with reached(tmp_path) as client:
        for incoming in ("x" * 129, "has spaces", "<script>", "", "a\tb"):
            ids = await _answers(client, "127.0.0.1", incoming)
            assert incoming not in ids
            assert all(chosen.isalnum() for chosen in ids)
