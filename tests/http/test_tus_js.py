"""tus-js-client (npm, pinned in tests/tus-js, installed by ``make test``) against a real server: a
9 MiB file in 1 MiB chunks (on S3, past a part boundary), stopped half way and resumed by a new Upload
from its URL; in tus 1.0 on each pair, and in the IETF draft (``protocol: 'ietf-draft-05'``) on the
filesystem, by the same server."""

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

FILESYSTEM = ("filesystem", "sqlite")
AWS = ("s3", "dynamodb")
CLIENT = Path(__file__).parent.parent / "tus-js"
CHUNK = MIB
DATA = os.urandom(9 * MIB + 12345)
HEAD_HEADERS = {"tus-v1": {"Tus-Resumable": "1.0.0"}, "ietf-draft-05": {"Upload-Draft-Interop-Version": "6"}}
"""What a HEAD of an upload sends in each protocol tus-js-client speaks."""


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server per pair, shared by the protocols run against it."""
    pair: tuple[str, str] = request.param
    folder = tmp_path_factory.mktemp("+".join(pair))
    endpoint = request.getfixturevalue("moto_server").endpoint_url if "s3" in pair else None
    with live_server(pair_env(pair, folder / "data", endpoint), folder / "docpipe.log") as running:
        yield running


@pytest.mark.parametrize(
    "server", [FILESYSTEM, AWS], indirect=True, ids=["+".join(FILESYSTEM), "+".join(AWS)]
)
def test_tus_js_client_uploads_in_small_chunks_is_interrupted_and_resumes(
    server: LiveServer, tmp_path: Path
) -> None:
    upload_interrupted_and_resumed(server, "tus-v1", tmp_path)


@pytest.mark.parametrize("server", [FILESYSTEM], indirect=True, ids=["+".join(FILESYSTEM)])
def test_tus_js_client_speaking_the_ietf_draft_is_interrupted_and_resumes(
    server: LiveServer, tmp_path: Path
) -> None:
    head = upload_interrupted_and_resumed(server, "ietf-draft-05", tmp_path)
    assert (head.status_code, head.headers["upload-complete"]) == (204, "?1")


def upload_interrupted_and_resumed(server: LiveServer, protocol: str, tmp_path: Path) -> httpx.Response:
    """Run upload.mjs in ``protocol``, check the document against the file; the final HEAD of the upload."""
    assert (CLIENT / "node_modules" / "tus-js-client").is_dir(), "run `make test` (it runs npm ci there)"
    source = tmp_path / "big.bin"
    source.write_bytes(DATA)
    done = subprocess.run(
        ["node", "upload.mjs", f"{server.base_url}/uploads", str(source), ADMIN_KEY, str(CHUNK), protocol],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert len(DATA) // 2 <= outcome["stoppedAt"] < len(DATA)
    head = httpx.head(outcome["url"], headers={**ADMIN_HEADERS, **HEAD_HEADERS[protocol]})
    assert head.headers["upload-offset"] == str(len(DATA))
    location = head.headers["location"]
    document = httpx.get(f"{server.base_url}{location}", headers=ADMIN_HEADERS).json()
    content = httpx.get(f"{server.base_url}{location}/content", headers=ADMIN_HEADERS).content
    assert document["sha256"] == hashlib.sha256(content).hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert document["filename"] == "tus-js.bin"
    return head
