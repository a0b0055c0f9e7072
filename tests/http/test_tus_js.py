"""tus-js-client (npm, pinned in tests/tus-js, installed by ``make test``) against a real server: a
9 MiB file in 1 MiB chunks (on S3, past a part boundary), stopped half way and resumed by a new Upload
from its URL."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.credentials import ADMIN_HEADERS, ADMIN_KEY
from tests.faults.support import MIB, pair_env
from tests.live_server import LiveServer, live_server

PAIRS = [("filesystem", "sqlite"), ("s3", "dynamodb")]
CLIENT = Path(__file__).parent.parent / "tus-js"
CHUNK = MIB
DATA = os.urandom(9 * MIB + 12345)


@pytest.fixture(params=PAIRS, ids=["+".join(pair) for pair in PAIRS])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    pair: tuple[str, str] = request.param
    endpoint = request.getfixturevalue("moto_server").endpoint_url if "s3" in pair else None
    with live_server(pair_env(pair, tmp_path / "data", endpoint), tmp_path / "docpipe.log") as running:
        yield running


def test_tus_js_client_uploads_in_small_chunks_is_interrupted_and_resumes(
    server: LiveServer, tmp_path: Path
) -> None:
    assert (CLIENT / "node_modules" / "tus-js-client").is_dir(), "run `make test` (it runs npm ci there)"
    source = tmp_path / "big.bin"
    source.write_bytes(DATA)
    done = subprocess.run(
        ["node", "upload.mjs", f"{server.base_url}/uploads", str(source), ADMIN_KEY, str(CHUNK)],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert len(DATA) // 2 <= outcome["stoppedAt"] < len(DATA)
    head = httpx.head(outcome["url"], headers={**ADMIN_HEADERS, "Tus-Resumable": "1.0.0"})
    location = head.headers["location"]
    document = httpx.get(f"{server.base_url}{location}", headers=ADMIN_HEADERS).json()
    content = httpx.get(f"{server.base_url}{location}/content", headers=ADMIN_HEADERS).content
    assert document["sha256"] == hashlib.sha256(content).hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert document["filename"] == "tus-js.bin"
