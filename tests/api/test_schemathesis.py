"""Schemathesis generates requests from the served OpenAPI schema: no 5xx and no schema violation.

It runs as its command-line tool against a real server (its pytest plugin does not support pytest 9).
Two checks are left out. ``positive_data_acceptance``: docpipe's rules on file names, tags and the
``metadata`` form field (a JSON object inside a string) are stricter than JSON Schema can state, so
schema-valid values may rightly get 422. ``negative_data_rejection``: for multipart bodies Schemathesis
counts a "wrong-typed" field it then leaves out of the encoded form (an empty array) as a violation the
server should have rejected. Every other check runs (no 5xx, documented statuses, content types, headers
and response schemas, and ``ignored_auth``: each operation that declares the bearer scheme refuses a
request without it), with a fixed seed so that CI runs are reproducible. Requests carry the admin key.
``schemathesis.toml`` turns one check off for one operation, and says why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.credentials import ADMIN_ENV, ADMIN_HEADERS
from tests.live_server import live_server

SEED = "20261125"
CONFIG = Path(__file__).with_name("schemathesis.toml")
"""Per-operation exceptions, each with its reason."""


@pytest.mark.slow
def test_the_api_honours_its_schema(tmp_path: Path) -> None:
    env = {
        "DOCPIPE_BLOB_STORE": "filesystem",
        "DOCPIPE_REPOSITORY": "sqlite",
        "DOCPIPE_DATA_DIR": str(tmp_path),
        **ADMIN_ENV,
    }
    with live_server(env, tmp_path / "server.log") as server:
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                f"--config-file={CONFIG}",
                "run",
                f"{server.base_url}/schema/openapi.json",
                "--max-examples=40",
                f"--seed={SEED}",
                "--exclude-checks=positive_data_acceptance,negative_data_rejection",
                "--workers=1",
                *(f"--header={name}: {value}" for name, value in ADMIN_HEADERS.items()),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        server_log = server.log()
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Traceback" not in server_log
