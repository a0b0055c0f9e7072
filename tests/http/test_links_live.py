"""Links on a real server, used with curl as the README shows; their tokens never reach the log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live_server import LiveServer, live_server

DATA = os.urandom(200_000)
ADMIN_KEY = "links-live-admin-key-0123456789"
"""Making links needs credentials; using them (curl below) needs none."""
pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("links-live")
    env = {
        "DOCPIPE_BLOB_STORE": "filesystem",
        "DOCPIPE_REPOSITORY": "sqlite",
        "DOCPIPE_DATA_DIR": str(root / "data"),
        "DOCPIPE_ADMIN_KEY": ADMIN_KEY,
    }
    with live_server(env, root / "server.log") as running:
        yield running


def curl(*arguments: str) -> bytes:
    env = {name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")}
    return subprocess.run(
        ["curl", "-fsS", "--max-time", "30", *arguments], capture_output=True, check=True, env=env, timeout=60
    ).stdout


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    """A client with credentials, to make links."""
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


def test_curl_downloads_resumes_and_uploads_through_links(
    server: LiveServer, api: httpx.Client, tmp_path: Path
) -> None:
    document = api.post("/documents", params={"filename": "report.bin"}, content=DATA).json()
    shared = api.post(f"/documents/{document['id']}/links", json={"expires_in": 600}).json()
    assert shared["url"].startswith(f"{server.base_url}/l/")
    target = tmp_path / "report.bin"
    curl("-o", str(target), shared["url"])
    assert target.read_bytes() == DATA
    target.write_bytes(DATA[:1000])
    curl("-C", "-", "-o", str(target), shared["url"])
    assert target.read_bytes() == DATA
    assert curl("-r", "0-9", shared["url"]) == DATA[:10]

    invited = api.post("/links/upload", json={"expires_in": 600, "max_bytes": 1_000_000}).json()
    source = tmp_path / "scan.pdf"
    source.write_bytes(b"%PDF-1.4 scanned")
    curl("-F", f"file=@{source}", invited["url"])
    names = [item["filename"] for item in api.get("/documents").json()["documents"]]
    assert names == ["scan.pdf", "report.bin"]
    refused = subprocess.run(
        ["curl", "-sS", "-o", os.devnull, "-w", "%{http_code}", "-F", f"file=@{source}", invited["url"]],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert refused.stdout == "410"

    server.requests_logged_once(lambda logged: any(line["status"] == 410 for line in logged))
    log = server.log()
    for url in (shared["url"], invited["url"]):
        token = url.rsplit("/", 1)[1]
        assert token not in log
        assert token[:16] not in log
    accesses = [json.loads(line) for line in log.splitlines()]
    links = {(line["method"], line["status"]) for line in accesses if line.get("route") == "/l/{token}"}
    assert {("GET", 200), ("POST", 410)} <= links
