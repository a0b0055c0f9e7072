"""``DOCPIPE_WORKERS``: several processes serve one port, each with its own stores, all seeing one
collection, adding up their metrics and writing docpipe's log; SIGTERM stops them all; a store that
cannot be reached stops start-up in one clear line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.credentials import ADMIN_HEADERS
from tests.faults.support import filesystem_env
from tests.live_server import LiveServer
from tests.moto_server import free_port

WORKERS = 2
START_TIMEOUT_S = 120
"""Generous: the supervisor and each worker import docpipe in turn, slow on a loaded machine."""
FRESH_CONNECTIONS = 40
SCRAPES = 6


def _worker_pids(server: LiveServer) -> list[int]:
    """The processes that serve: the supervisor's children started by multiprocessing's spawn (its
    resource tracker is a child too)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _content_reads(server: LiveServer) -> float:
    """What one scrape (answered by whichever worker the kernel picks) counts of content reads."""
    scraped = httpx.get(f"{server.base_url}/metrics", headers=ADMIN_HEADERS)
    assert scraped.status_code == 200, scraped.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.name == "docpipe_http_requests_total"
        and sample.labels == {"method": "GET", "route": "/documents/{document_id}/content", "status": "200"}
    )


def _metrics_folder(pid: int) -> Path:
    environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    (folder,) = [
        entry.split(b"=", 1)[1] for entry in environment if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR=")
    ]
    return Path(folder.decode())


def test_workers_share_one_collection_and_stop_together(tmp_path: Path) -> None:
    server = LiveServer(filesystem_env(tmp_path / "data", DOCPIPE_WORKERS=str(WORKERS)), tmp_path / "log")
    try:
        server.start(START_TIMEOUT_S)
        workers = _worker_pids(server)
        assert len(workers) == WORKERS, server.log()
        created = httpx.post(
            f"{server.base_url}/documents",
            params={"filename": "shared.txt"},
            content=b"one collection\n",
            headers=ADMIN_HEADERS,
        )
        assert created.status_code == 201, created.text
        document_id = created.json()["id"]
        for _ in range(FRESH_CONNECTIONS):  # a new connection each: the kernel spreads them over workers
            content = httpx.get(f"{server.base_url}/documents/{document_id}/content", headers=ADMIN_HEADERS)
            assert (content.status_code, content.content) == (200, b"one collection\n")
        # Each scrape, on a fresh connection, goes to either worker; every one counts both workers' reads.
        assert [_content_reads(server) for _ in range(SCRAPES)] == [FRESH_CONNECTIONS] * SCRAPES
        metrics_folder = _metrics_folder(workers[0])
        assert metrics_folder.is_dir()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0, server.log()
        server.process = None
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
        assert not metrics_folder.exists()
        # The workers write docpipe's log too: one JSON object per line, an access line per request.
        records = server.log_records()
        content_route = "/documents/{document_id}/content"
        assert sum(record.get("route") == content_route for record in records) == FRESH_CONNECTIONS
    finally:
        server.stop()


def test_an_unreachable_store_stops_start_up_in_one_line(tmp_path: Path) -> None:
    closed_port = free_port()
    environment = {
        **filesystem_env(tmp_path / "data", DOCPIPE_WORKERS=str(WORKERS)),
        "DOCPIPE_REPOSITORY": "dynamodb",
        "DOCPIPE_DYNAMODB_ENDPOINT_URL": f"http://127.0.0.1:{closed_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "docpipe.entrypoints.cli", "serve"],
        env={**_environment_without_docpipe(), **environment, "DOCPIPE_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    assert "cannot start" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "Started parent process" not in completed.stderr


def _environment_without_docpipe() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("DOCPIPE_")}
