"""Authentication and scopes over HTTP, on every adapter pair.

Every operation the served OpenAPI schema declares with the bearer scheme is walked: a route added
later cannot escape these tests. Keys are made through ``POST /keys``, as a user makes them. What the
HTTP layer decides before any store is asked (a malformed header, a malformed key request) is tested
on the embedded default only (``embedded``): the key stores' own contract suite covers every adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from httpx import Response

from docpipe.config import AuthMode, Settings
from docpipe.container import Container
from docpipe.domain.identity import Scope
from docpipe.domain.keys import new_secret
from docpipe.entrypoints.http.app import create_app
from docpipe.entrypoints.http.authentication import PUBLIC, REQUIRED_SCOPES
from tests.adapters_under_test import settings_for
from tests.credentials import ADMIN_KEY, bearer
from tests.http.helpers import Client, assert_problem, serve, upload_ok
from tests.logger_state import logger_restored

AN_ID = "0193f4d2-0000-7000-8000-000000000000"
EVENTUALLY = 10.0
"""Seconds a change promised "within 1 s" may take on a busy test machine before the test fails."""


class Operation(msgspec.Struct, frozen=True):
    method: str
    path: str
    scopes: tuple[Scope, ...]
    """Every one of them needed."""

    def url(self) -> str:
        return re.sub(r"\{[^}]+\}", AN_ID, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


async def protected_operations(client: Client) -> list[Operation]:
    """Each operation of the served schema that declares the bearer scheme, with the scopes it names."""
    schema = (await client.get("/schema/openapi.json")).json()
    found = [
        Operation(method.upper(), path, tuple(Scope(scope) for scope in requirement["bearer"]))
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        for requirement in operation.get("security", [])
    ]
    assert {scope for operation in found for scope in operation.scopes} == set(Scope)
    return found


async def issue(client: Client, scopes: list[str], owner: str = "default", **fields: Any) -> dict[str, Any]:
    response = await client.post("/keys", json={"owner": owner, "scopes": scopes, **fields})
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + EVENTUALLY
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not true after {EVENTUALLY:g} s"
        await asyncio.sleep(0.05)


@contextlib.contextmanager
def logged(logger: str = "") -> Iterator[list[str]]:
    """The messages logged to ``logger`` (the root by default) meanwhile, at every level: debug lines
    included, which no server writes by default, so that a credential in one is seen too."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    with logger_restored(logger) as capturing:
        capturing.setLevel(logging.DEBUG)
        capturing.addHandler(Collect(logging.DEBUG))
        yield messages


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Client]:
    """A client of the embedded default (filesystem + SQLite), sending the admin key."""
    settings = settings_for(blob_store="filesystem", repository="sqlite", data_dir=tmp_path / "data")
    async with serve(settings, Container(settings=settings)) as client:
        yield client


def assert_refused(response: Response, status: int) -> dict[str, Any] | None:
    """The problem of a refusal; only its status for a ``HEAD``, which has no body."""
    if response.request.method == "HEAD":
        assert response.status_code == status
        return None
    return assert_problem(response, status)


def assert_unauthenticated(response: Response, *, credential_sent: bool) -> None:
    assert_refused(response, 401)
    expected = 'Bearer error="invalid_token"' if credential_sent else "Bearer"
    assert response.headers["www-authenticate"] == expected


# -- who may call what ---------------------------------------------------------------------------


async def test_every_protected_operation_refuses_a_request_without_credentials(client: Client) -> None:
    for operation in await protected_operations(client):
        response = await client.request(operation.method, operation.url(), headers={"Authorization": ""})
        assert response.status_code == 401, operation
        assert_unauthenticated(response, credential_sent=False)


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/schema", "/schema/openapi.json"])
async def test_probes_and_the_schema_are_open(embedded: Client, path: str) -> None:
    assert (await embedded.get(path, headers={"Authorization": ""})).status_code == 200


async def test_a_key_without_a_scope_of_an_operation_gets_403_and_with_them_gets_past(client: Client) -> None:
    """For each operation and each scope it needs: a key with every other scope is refused (403, naming
    it); a key with exactly the operation's scopes is not refused for want of credentials or scope,
    whatever the operation then answers."""
    without = {scope: await issue(client, [s.value for s in Scope if s is not scope]) for scope in Scope}
    exactly: dict[tuple[Scope, ...], dict[str, Any]] = {}
    for operation in await protected_operations(client):
        for scope in operation.scopes:
            refused = await client.request(
                operation.method, operation.url(), headers=bearer(without[scope]["key"])
            )
            problem = assert_refused(refused, 403)
            assert problem is None or problem["detail"] == f"this requires the '{scope}' scope", operation
        if operation.scopes not in exactly:
            exactly[operation.scopes] = await issue(client, [scope.value for scope in operation.scopes])
        allowed = await client.request(
            operation.method, operation.url(), headers=bearer(exactly[operation.scopes]["key"])
        )
        assert allowed.status_code not in (401, 403), (operation, allowed.text)


async def test_admin_grants_no_access_to_documents(client: Client) -> None:
    document = await upload_ok(client)
    admin = bearer((await issue(client, ["admin"]))["key"])
    for method, url in [
        ("GET", "/documents"),
        ("GET", f"/documents/{document['id']}"),
        ("GET", f"/documents/{document['id']}/content"),
        ("GET", f"/download/{document['filename']}"),
        ("POST", "/documents?filename=x.txt"),
        ("PATCH", f"/documents/{document['id']}"),
        ("DELETE", f"/documents/{document['id']}"),
    ]:
        assert_problem(await client.request(method, url, headers=admin), 403)
    assert (await client.get("/keys", headers=admin)).status_code == 200
    assert (await client.get(f"/documents/{document['id']}")).status_code == 200


async def test_every_route_is_public_or_declares_its_scope(settings: Settings) -> None:
    """OPTIONS answers only need a valid credential; every other route says who may call it."""
    for route in create_app(settings).routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.http_methods != {"OPTIONS"}:
                assert PUBLIC in handler.opt or REQUIRED_SCOPES in handler.opt, (route.path, handler)


async def test_options_needs_a_credential_but_no_scope(client: Client) -> None:
    assert_unauthenticated(
        await client.options("/documents", headers={"Authorization": ""}), credential_sent=False
    )
    read_only = bearer((await issue(client, ["read"]))["key"])
    assert (await client.options("/keys", headers=read_only)).headers["allow"] == "GET, OPTIONS, POST"


# -- which credentials count ---------------------------------------------------------------------


async def test_a_key_made_by_post_keys_acts_for_its_owner_with_its_scopes(client: Client) -> None:
    key = bearer((await issue(client, ["read", "write"], name="ci"))["key"])
    created = await client.post("/documents", params={"filename": "k.txt"}, content=b"k", headers=key)
    assert created.status_code == 201, created.text
    assert (await client.get(f"/documents/{created.json()['id']}", headers=key)).status_code == 200
    assert_problem(await client.delete(f"/documents/{created.json()['id']}", headers=key), 403)


async def test_an_unknown_key_is_refused(client: Client) -> None:
    unknown = new_secret()
    response = await client.get("/documents", headers=bearer(unknown))
    assert_unauthenticated(response, credential_sent=True)
    assert unknown not in response.text


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token " + ADMIN_KEY,
        ADMIN_KEY,
        "Bearer" + ADMIN_KEY,
        "Bearer " + ADMIN_KEY[:-1],
        "Bearer " + ADMIN_KEY + "x",
        "Bearer dp_" + "A" * 36,
        "Bearer " + "x" * 65536,
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.",
    ],
    ids=[
        "no credential",
        "empty credential",
        "basic",
        "other scheme",
        "no scheme",
        "no space",
        "truncated",
        "extended",
        "bad checksum",
        "huge",
        "unsigned jwt",
    ],
)
async def test_malformed_authorization_is_401_never_500_and_never_echoed(
    embedded: Client, authorization: str
) -> None:
    with logged() as messages:
        response = await embedded.get("/documents", headers={"Authorization": authorization})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert messages, "the capture saw nothing: it cannot tell whether the credential was logged"
    credential = authorization.partition(" ")[2]
    if credential:
        assert credential not in response.text
        assert not [message for message in messages if credential in message]


async def test_non_ascii_and_several_authorization_headers_are_401(embedded: Client) -> None:
    for headers in (
        [(b"authorization", "Bearer dp_é".encode("latin-1"))],
        [(b"authorization", "Bearer ключ".encode())],
        [(b"authorization", f"Bearer {ADMIN_KEY}".encode()), (b"authorization", b"Bearer other")],
    ):
        assert_problem(await embedded.get("/documents", headers=headers), 401)


async def test_the_scheme_is_case_insensitive(embedded: Client) -> None:
    for scheme in ("bearer", "BEARER", "Bearer"):
        response = await embedded.get("/documents", headers={"Authorization": f"{scheme} {ADMIN_KEY}"})
        assert response.status_code == 200, scheme


async def test_an_expired_key_is_refused(client: Client) -> None:
    key = await issue(client, ["read"], expires_in=1)
    assert key["expires_at"] is not None

    async def refused() -> bool:
        response = await client.get("/documents", headers=bearer(key["key"]))
        if response.status_code == 200:
            return False
        assert_unauthenticated(response, credential_sent=True)
        assert "expired" in response.json()["detail"]
        return True

    await eventually(refused, "an expired key is refused")


async def test_a_revoked_key_is_refused_within_the_cache_time(client: Client) -> None:
    key = await issue(client, ["read"])
    assert (await client.get("/documents", headers=bearer(key["key"]))).status_code == 200  # now cached
    assert (await client.delete(f"/keys/{key['id']}")).status_code == 204

    async def refused() -> bool:
        response = await client.get("/documents", headers=bearer(key["key"]))
        if response.status_code == 200:
            return False
        assert_unauthenticated(response, credential_sent=True)
        return True

    await eventually(refused, "a revoked key is refused")
    assert key["id"] not in {listed["id"] for listed in (await client.get("/keys")).json()["keys"]}


async def test_without_authentication_every_request_is_defaults_and_a_warning_says_so(
    settings: Settings, container: Container
) -> None:
    off = msgspec.structs.replace(settings, auth=AuthMode.NONE, admin_key=None)
    with logged("docpipe") as messages:
        async with serve(off, container) as anonymous:
            document = await upload_ok(anonymous)
            assert (await anonymous.get(f"/documents/{document['id']}")).status_code == 200
            assert (await anonymous.get("/keys")).status_code == 200
            assert (await anonymous.delete(f"/documents/{document['id']}")).status_code == 204
    assert [message for message in messages if message.startswith("DOCPIPE_AUTH=none: authentication is off")]


# -- /keys ---------------------------------------------------------------------------------------


async def test_a_created_key_is_shown_once_and_listed_without_its_secret(client: Client) -> None:
    response = await client.post(
        "/keys", json={"owner": "team-a", "scopes": ["write", "read"], "name": "uploader", "expires_in": 3600}
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    assert set(created) == {"id", "key", "owner", "scopes", "name", "created_at", "expires_at"}
    assert created["key"].startswith("dp_")
    assert (created["owner"], created["scopes"], created["name"]) == ("team-a", ["read", "write"], "uploader")
    assert created["created_at"].endswith("Z")
    assert created["expires_at"] > created["created_at"]
    listing = await client.get("/keys")
    assert created["key"] not in listing.text
    [listed] = [key for key in listing.json()["keys"] if key["id"] == created["id"]]
    assert listed == {
        "id": created["id"],
        "owner": "team-a",
        "scopes": ["read", "write"],
        "name": "uploader",
        "created_at": created["created_at"],
        "expires_at": created["expires_at"],
        "last_used_at": None,
    }


async def test_a_keys_last_use_is_listed(client: Client) -> None:
    key = await issue(client, ["read"])
    assert (await client.get("/documents", headers=bearer(key["key"]))).status_code == 200

    async def recorded() -> bool:
        listed = {item["id"]: item for item in (await client.get("/keys")).json()["keys"]}
        return listed[key["id"]]["last_used_at"] is not None

    await eventually(recorded, "the key's last use is listed")


@pytest.mark.parametrize(
    "body",
    [
        {"owner": "", "scopes": ["read"]},
        {"owner": "a/b", "scopes": ["read"]},
        {"owner": "..", "scopes": ["read"]},
        {"owner": "o" * 65, "scopes": ["read"]},
        {"owner": "a", "scopes": []},
        {"owner": "a", "scopes": ["read", "superuser"]},
        {"owner": "a", "scopes": ["read"], "expires_in": 0},
        {"owner": "a", "scopes": ["read"], "expires_in": -5},
        {"owner": "a", "scopes": ["read"], "expires_in": 10**30},
        {"owner": "a", "scopes": ["read"], "name": "n" * 129},
    ],
)
async def test_bad_key_fields_are_422(embedded: Client, body: dict[str, Any]) -> None:
    assert_problem(await embedded.post("/keys", json=body), 422)
    assert (await embedded.get("/keys")).json()["keys"] == []


@pytest.mark.parametrize(
    "body", [{"scopes": ["read"]}, {"owner": 1, "scopes": ["read"]}, {"owner": "a", "scopes": "read"}]
)
async def test_malformed_key_requests_are_400(embedded: Client, body: dict[str, Any]) -> None:
    assert_problem(await embedded.post("/keys", json=body), 400)


async def test_revoking_an_unknown_key_is_404(client: Client) -> None:
    assert_problem(await client.delete("/keys/no-such-key"), 404)


# -- owners ----------------------------------------------------------------------------------------

BODIES = {
    ("PATCH", "/documents/{document_id}"): {"tags": ["x"]},
    ("POST", "/documents/{document_id}/links"): {"expires_in": 60},
}
"""What an operation naming a document needs in its body to reach the document."""


async def test_every_document_operation_with_another_owners_key_is_404(client: Client) -> None:
    """Owner ``bob``'s key with every scope, against ``default``'s document: 404 on every operation of the
    schema that names a document, and an empty listing."""
    document = await upload_ok(client, filename="private.txt")
    bob = bearer((await issue(client, [scope.value for scope in Scope], owner="bob"))["key"])
    named = [
        operation
        for operation in await protected_operations(client)
        if "{document_id}" in operation.path or "{filename}" in operation.path
    ]
    assert named
    for operation in named:
        url = operation.path.replace("{document_id}", document["id"]).replace("{filename}", "private.txt")
        body = BODIES.get((operation.method, operation.path))
        assert_refused(await client.request(operation.method, url, headers=bob, json=body), 404)
    assert (await client.get("/documents", headers=bob)).json()["documents"] == []
    assert (await client.get(f"/documents/{document['id']}")).status_code == 200


async def test_an_admin_of_another_owner_cannot_read_documents_even_with_read(client: Client) -> None:
    document = await upload_ok(client)
    admin = bearer((await issue(client, ["admin", "read"], owner="ops"))["key"])
    assert_problem(await client.get(f"/documents/{document['id']}", headers=admin), 404)
    assert (await client.get("/documents", headers=admin)).json()["documents"] == []


async def test_documents_uploaded_with_a_key_belong_to_its_owner(client: Client) -> None:
    """``team``'s key sees what it uploaded, and ``default``'s admin key does not."""
    mine = bearer((await issue(client, ["read", "write"], owner="team"))["key"])
    created = await client.post("/documents", params={"filename": "t.txt"}, content=b"t", headers=mine)
    assert created.status_code == 201, created.text
    assert (await client.get(f"/documents/{created.json()['id']}", headers=mine)).status_code == 200
    assert_problem(await client.get(f"/documents/{created.json()['id']}"), 404)
    assert (await client.get("/documents")).json()["documents"] == []
