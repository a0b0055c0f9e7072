"""The log of a real ``docpipe serve`` (its standard error, not a terminal, so JSON): one object per line,
one access line per request under the id the response carries, none from uvicorn's access log, and no
credential of any kind in any line. An upload whose client goes away counts as aborted in ``/metrics``."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.credentials import ADMIN_HEADERS, ADMIN_KEY, bearer
from tests.faults.support import filesystem_env
from tests.live_server import LiveServer, live_server

PATIENCE_SECONDS = 30.0
"""How long a line may take to reach the log file after its response (generous: a busy machine)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("logs-live")
    with live_server(filesystem_env(root / "data"), root / "server.log") as running:
        yield running


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=30) as client:
        yield client


def log_lines(server: LiveServer) -> list[dict[str, Any]]:
    """Every line of the log, each parsed on its own (a line that is not one JSON object fails)."""
    lines = [json.loads(line) for line in server.log().splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


def access_lines(server: LiveServer, request_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The access lines of ``request_ids``, once each has one."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        found: dict[str, list[dict[str, Any]]] = {request: [] for request in request_ids}
        for line in log_lines(server):
            if line.get("logger") == "docpipe.access" and line.get("request_id") in found:
                found[line["request_id"]].append(line)
        if all(found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_each_request_gets_one_json_access_line_under_its_request_id(
    server: LiveServer, api: httpx.Client
) -> None:
    ids = [f"logs-{uuid.uuid4().hex[:8]}-{number}" for number in range(4)]
    created = api.post(
        "/documents", params={"filename": "a.txt"}, content=b"logged", headers={"X-Request-Id": ids[0]}
    )
    assert created.status_code == 201
    document_id = created.json()["id"]
    assert api.get(f"/documents/{document_id}", headers={"X-Request-Id": ids[1]}).status_code == 200
    assert api.get("/no/such/path", headers={"X-Request-Id": ids[2]}).status_code == 404
    refused = api.get("/documents", headers={"X-Request-Id": ids[3], "Authorization": "Bearer nope"})
    assert refused.status_code == 401
    generated = api.get("/health/live")

    found = access_lines(server, [*ids, generated.headers["x-request-id"]])
    assert all(len(lines) == 1 for lines in found.values()), found
    upload, read, unmatched, unauthenticated, live = (lines[0] for lines in found.values())
    assert upload["method"] == "POST"
    assert upload["route"] == "/documents"
    assert upload["status"] == 201
    assert upload["owner"] == "default"
    assert upload["document_id"] == document_id
    assert upload["level"] == "INFO"
    assert isinstance(upload["duration_ms"], float)
    assert upload["duration_ms"] > 0
    assert upload["time"].endswith("+00:00")
    assert (read["route"], read["status"], read["document_id"]) == (
        "/documents/{document_id}",
        200,
        document_id,
    )
    assert (unmatched["route"], unmatched["status"]) == ("unmatched", 404)
    assert (unauthenticated["status"], unauthenticated.get("owner")) == (401, None)
    assert (live["route"], live["status"]) == ("/health/live", 200)
    assert not [line for line in log_lines(server) if line["logger"] == "uvicorn.access"]


def test_a_loopback_proxy_forwarding_a_client_keeps_its_request_id(api: httpx.Client) -> None:
    """uvicorn replaces the peer with the forwarded client; the proxy that connected is the one judged."""
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "via-proxy-1"}
    response = api.get("/documents/0196a1b2-0000-7000-8000-000000000000", headers=forwarded)
    assert response.status_code == 404
    assert response.headers["x-request-id"] == response.json()["request_id"] == "via-proxy-1"


def test_no_key_token_or_link_token_reaches_the_log(server: LiveServer, api: httpx.Client) -> None:
    document = api.post("/documents", params={"filename": "secret.txt"}, content=b"shh").json()
    issued = api.post("/keys", json={"owner": "carol", "scopes": ["read"]}).json()["key"]
    link = api.post(f"/documents/{document['id']}/links", json={"expires_in": 600}).json()["url"]
    upload_link = api.post("/links/upload", json={"expires_in": 600}).json()["url"]
    token = link.rsplit("/", 1)[1]
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl"
    unknown_key = "dp_" + uuid.uuid4().hex
    requests = [
        httpx.get(f"{server.base_url}/documents", headers=bearer(issued)),
        httpx.get(f"{server.base_url}/documents", headers=bearer(jwt_like)),
        httpx.get(f"{server.base_url}/documents", headers=bearer(unknown_key)),
        httpx.get(link),
        httpx.get(f"{link}x"),
        httpx.get(f"{server.base_url}/l/{token}?token={token}"),
        httpx.post(upload_link, params={"filename": "up.txt"}, content=b"up"),
        httpx.get(f"{server.base_url}/documents/{token}", headers=ADMIN_HEADERS),
    ]
    assert [response.status_code for response in requests] == [200, 401, 401, 200, 403, 200, 201, 404]
    access_lines(server, [response.headers["x-request-id"] for response in requests])
    log = server.log()
    for secret in (ADMIN_KEY, issued, jwt_like, unknown_key, token, upload_link.rsplit("/", 1)[1]):
        assert secret not in log


def _aborted(server: LiveServer) -> float:
    metrics = httpx.get(f"{server.base_url}/metrics", headers=ADMIN_HEADERS).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "docpipe_uploads_total" and sample.labels["outcome"] == "aborted"
    )


def test_an_upload_whose_client_goes_away_counts_as_aborted(server: LiveServer) -> None:
    before = _aborted(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(
            b"POST /documents?filename=cut.bin HTTP/1.1\r\nHost: docpipe\r\nContent-Length: 100000\r\n"
            + b"".join(f"{name}: {value}\r\n".encode() for name, value in ADMIN_HEADERS.items())
            + b"\r\n"
            + b"x" * 1000
        )
    deadline = time.monotonic() + PATIENCE_SECONDS
    while _aborted(server) == before:
        assert time.monotonic() < deadline, "the cut upload was not counted as aborted"
        time.sleep(0.1)
    assert _aborted(server) == before + 1
