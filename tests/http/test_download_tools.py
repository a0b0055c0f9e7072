"""Real download programs against a real docpipe: curl, wget and aria2c resume, split into parallel
ranges and name files from ``Content-Disposition``, and every result is byte for byte the upload.

The document is random, so bytes written at a wrong offset can never hash to the upload's sha-256.
Each test skips when its program is missing; ``.ci/install-system-packages`` installs them all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.credentials import ADMIN_ENV, ADMIN_HEADERS
from tests.live_server import LiveServer, live_server

MIB = 1024 * 1024
DOCUMENT_BYTES = 64 * MIB
TIMEOUT = 60
RATE_LIMIT = "16M"  # bytes per second while a download is to be interrupted: 64 MiB then take 4 s
INTERRUPT_AFTER = 4 * MIB
PACKAGES = {"curl": "curl", "wget": "wget", "aria2c": "aria2"}


@dataclass(frozen=True)
class Served:
    server: LiveServer
    source: Path
    sha256: str
    document_id: str
    home: Path

    @property
    def url(self) -> str:
        return f"{self.server.base_url}/documents/{self.document_id}/content"

    def log_offset(self) -> int:
        return len(self.server.log())

    def statuses_since(self, offset: int) -> list[int]:
        """Statuses of the document's content requests the server logged since ``offset``."""
        return self._statuses(self.server.requests_logged(offset))

    def statuses_logged(self, offset: int, at_least: int = 1) -> list[int]:
        """``statuses_since(offset)`` once the server has logged ``at_least`` of them (a line is written
        just after its answer has gone), or as they are after ``TIMEOUT``."""
        records = self.server.requests_logged_once(
            lambda logged: len(self._statuses(logged)) >= at_least, offset, TIMEOUT
        )
        return self._statuses(records)

    def _statuses(self, records: list[dict[str, Any]]) -> list[int]:
        return [
            record["status"]
            for record in records
            if record["route"] == "/documents/{document_id}/content"
            and record.get("document_id") == self.document_id
        ]

    def tool_env(self) -> dict[str, str]:
        """The test's environment without proxies (loopback must be reached directly) and with a
        private ``HOME``, so that no user configuration or state file (``.wget-hsts``) takes part."""
        env = {name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")}
        env["HOME"] = str(self.home)
        return env


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("download-tools")
    data = os.urandom(DOCUMENT_BYTES)
    source = root / "source.bin"
    source.write_bytes(data)
    home = root / "home"
    home.mkdir()
    env = {
        "DOCPIPE_BLOB_STORE": "filesystem",
        "DOCPIPE_REPOSITORY": "sqlite",
        "DOCPIPE_DATA_DIR": str(root / "data"),
        **ADMIN_ENV,
    }
    with live_server(env, root / "server.log") as server:
        response = httpx.post(
            f"{server.base_url}/documents",
            params={"filename": "random.bin"},
            content=data,
            headers=ADMIN_HEADERS,
            timeout=TIMEOUT,
        )
        assert response.status_code == 201, response.text
        document = response.json()
        sha256 = hashlib.sha256(data).hexdigest()
        assert document["size"] == DOCUMENT_BYTES
        assert document["sha256"] == sha256
        yield Served(server, source, sha256, document["id"], home)


def require(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(
            f"{program} is not installed; .ci/install-system-packages installs it "
            f"(Debian package {PACKAGES[program]})"
        )
    return path


def run(served: Served, args: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        args,
        cwd=cwd,
        env=served.tool_env(),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{args} exited with {completed.returncode}\n{completed.stdout}{completed.stderr}"
    )
    return completed


def interrupt(served: Served, args: Sequence[str], sig: signal.Signals, ready: Callable[[], bool]) -> int:
    """Start ``args``, wait until ``ready()``, send ``sig`` and return the exit status once the server
    has logged the request it cut short (logged when the server sees the connection go, which may be
    after the program has exited), so that ``statuses_since`` a later offset never counts it.

    Fails when the program ends on its own first: then nothing was interrupted."""
    logged = served.log_offset()
    process = subprocess.Popen(
        args, env=served.tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not ready():
            assert process.poll() is None, f"{args} ended (status {process.returncode}) before the interrupt"
            assert time.monotonic() < deadline, f"{args} made no progress within {TIMEOUT} s"
            time.sleep(0.01)
        process.send_signal(sig)
        status = process.wait(timeout=TIMEOUT)
        while not served.statuses_since(logged):
            assert time.monotonic() < deadline, f"the request {args} made was not logged within {TIMEOUT} s"
            time.sleep(0.01)
        return status
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def has_written(path: Path) -> Callable[[], bool]:
    return lambda: path.exists() and path.stat().st_size >= INTERRUPT_AFTER


def sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def truncated_copy(served: Served, target: Path, size: int) -> None:
    with served.source.open("rb") as source:
        target.write_bytes(source.read(size))


def response_headers(dump: Path) -> tuple[int, dict[str, str]]:
    """Status and headers (names lower-cased) of the one response curl wrote with ``-D``."""
    status_line, *lines = dump.read_text().strip().splitlines()
    headers = dict(line.split(":", 1) for line in lines if ":" in line)
    return int(status_line.split()[1]), {name.lower(): value.strip() for name, value in headers.items()}


def assert_resumed_from(served: Served, dump: Path, offset: int) -> None:
    status, headers = response_headers(dump)
    assert status == 206, headers
    assert headers["content-range"] == f"bytes {offset}-{DOCUMENT_BYTES - 1}/{DOCUMENT_BYTES}"
    assert headers["content-length"] == str(DOCUMENT_BYTES - offset)
    assert headers["etag"] == f'"{served.sha256}"'


_AUTHORIZATION = "".join(f"{name}: {value}" for name, value in ADMIN_HEADERS.items())
"""The header line each program sends, as a user's script would."""


def curl(*args: str) -> list[str]:
    # -q first: no ~/.curlrc
    return [require("curl"), "-q", "-sS", "-H", _AUTHORIZATION, *args]


def wget(*args: str) -> list[str]:
    return [require("wget"), "--no-config", "--no-hsts", "-q", f"--header={_AUTHORIZATION}", *args]


def aria2c(*args: str) -> list[str]:
    return [
        require("aria2c"),
        "--no-conf=true",
        "--quiet=true",
        "--allow-overwrite=true",
        "--auto-file-renaming=false",
        f"--header={_AUTHORIZATION}",
        *args,
    ]


# curl -C -


@pytest.mark.parametrize("partial", [1, 10_000_001, DOCUMENT_BYTES - 1], ids=["1B", "10MB", "all-but-1B"])
def test_curl_resumes_a_truncated_file(served: Served, tmp_path: Path, partial: int) -> None:
    target = tmp_path / "download.bin"
    truncated_copy(served, target, partial)

    run(served, curl("-f", "-C", "-", "-D", str(tmp_path / "headers"), "-o", str(target), served.url))

    assert_resumed_from(served, tmp_path / "headers", partial)
    assert sha256_of(target) == served.sha256


def test_curl_resumes_after_being_killed(served: Served, tmp_path: Path) -> None:
    target = tmp_path / "download.bin"
    command = curl("-f", "--limit-rate", RATE_LIMIT, "-o", str(target), served.url)
    interrupt(served, command, signal.SIGKILL, has_written(target))
    partial = target.stat().st_size
    assert INTERRUPT_AFTER <= partial < DOCUMENT_BYTES

    run(served, curl("-f", "-C", "-", "-D", str(tmp_path / "headers"), "-o", str(target), served.url))

    assert_resumed_from(served, tmp_path / "headers", partial)
    assert sha256_of(target) == served.sha256


def test_curl_resumes_after_a_ranged_first_part(served: Served, tmp_path: Path) -> None:
    target = tmp_path / "download.bin"
    first_part = 12_345_678
    run(
        served,
        curl("-f", "-r", f"0-{first_part - 1}", "-D", str(tmp_path / "first"), "-o", str(target), served.url),
    )
    status, headers = response_headers(tmp_path / "first")
    assert status == 206
    assert headers["content-range"] == f"bytes 0-{first_part - 1}/{DOCUMENT_BYTES}"
    assert target.stat().st_size == first_part

    run(served, curl("-f", "-C", "-", "-D", str(tmp_path / "rest"), "-o", str(target), served.url))

    assert_resumed_from(served, tmp_path / "rest", first_part)
    assert sha256_of(target) == served.sha256


def test_curl_resuming_a_complete_file_leaves_it_alone(served: Served, tmp_path: Path) -> None:
    """``bytes=<size>-`` is unsatisfiable: 416 with ``Content-Range: bytes */size``, as nginx answers,
    and curl keeps the file without appending the problem document. (With ``-f`` curl 7.88 exits 22
    on that 416, against nginx just the same.)"""
    target = tmp_path / "download.bin"
    shutil.copyfile(served.source, target)

    run(served, curl("-C", "-", "-D", str(tmp_path / "headers"), "-o", str(target), served.url))

    status, headers = response_headers(tmp_path / "headers")
    assert status == 416
    assert headers["content-range"] == f"bytes */{DOCUMENT_BYTES}"
    assert sha256_of(target) == served.sha256


# wget -c


@pytest.mark.parametrize("partial", [1, 10_000_001], ids=["1B", "10MB"])
def test_wget_resumes_a_truncated_file(served: Served, tmp_path: Path, partial: int) -> None:
    target = tmp_path / "download.bin"
    truncated_copy(served, target, partial)
    offset = served.log_offset()

    run(served, wget("-c", "-O", str(target), served.url))

    assert served.statuses_logged(offset) == [206]
    assert sha256_of(target) == served.sha256


def test_wget_resumes_after_being_killed(served: Served, tmp_path: Path) -> None:
    target = tmp_path / "download.bin"
    command = wget(f"--limit-rate={RATE_LIMIT}", "-O", str(target), served.url)
    interrupt(served, command, signal.SIGKILL, has_written(target))
    assert INTERRUPT_AFTER <= target.stat().st_size < DOCUMENT_BYTES
    offset = served.log_offset()

    run(served, wget("-c", "-O", str(target), served.url))

    assert served.statuses_logged(offset) == [206]
    assert sha256_of(target) == served.sha256


# aria2c: parallel ranges


def test_aria2c_downloads_in_parallel_ranges(served: Served, tmp_path: Path) -> None:
    offset = served.log_offset()

    run(
        served,
        aria2c("-x", "4", "-s", "4", "-k", "1M", "-d", str(tmp_path), "-o", "download.bin", served.url),
    )

    assert sha256_of(tmp_path / "download.bin") == served.sha256
    assert sorted(path.name for path in tmp_path.iterdir()) == ["download.bin"]  # no .aria2 control file
    statuses = served.statuses_logged(offset, at_least=2)
    assert statuses.count(206) >= 2, f"aria2c did not split the download into ranges: {statuses}"
    assert set(statuses) <= {200, 206}, statuses


def test_aria2c_resumes_an_interrupted_parallel_download(served: Served, tmp_path: Path) -> None:
    args = aria2c("-x", "4", "-s", "4", "-k", "1M", "-d", str(tmp_path), "-o", "download.bin", served.url)
    offset = served.log_offset()

    def ranges_under_way() -> bool:
        # aria2c preallocates the file, so its size says nothing; the server's log tells.
        return served.statuses_since(offset).count(206) >= 2

    command = [*args, f"--max-overall-download-limit={RATE_LIMIT}"]
    status = interrupt(served, command, signal.SIGTERM, ranges_under_way)
    assert status != 0
    assert (tmp_path / "download.bin.aria2").exists(), "aria2c left no control file: it was not interrupted"
    offset = served.log_offset()

    run(served, [*args, "-c"])

    assert sha256_of(tmp_path / "download.bin") == served.sha256
    assert not (tmp_path / "download.bin.aria2").exists()
    statuses = served.statuses_logged(offset)
    assert 206 in statuses, statuses


# Content-Disposition names

# (name sent at upload, name docpipe keeps, the ASCII fallback of Content-Disposition's filename)
NAMES = [
    ("../../evil name ü.bin", "evil name ü.bin", "evil name u.bin"),
    ('..\\..\\evil;x".bin', 'evil;x".bin', "evil_x_.bin"),
    ("..%2F..%2Fevil.bin", "..%2F..%2Fevil.bin", ".._2F.._2Fevil.bin"),
]


@dataclass(frozen=True)
class Named:
    stored: str
    fallback: str
    sha256: str


@pytest.fixture(scope="module")
def named(served: Served) -> dict[str, Named]:
    documents = {}
    for uploaded, stored, fallback in NAMES:
        data = os.urandom(MIB + 7)
        response = httpx.post(
            f"{served.server.base_url}/documents",
            params={"filename": uploaded},
            content=data,
            headers=ADMIN_HEADERS,
            timeout=TIMEOUT,
        )
        assert response.status_code == 201, response.text
        assert response.json()["filename"] == stored
        documents[uploaded] = Named(stored, fallback, hashlib.sha256(data).hexdigest())
    return documents


@pytest.mark.parametrize("tool", ["curl", "wget", "aria2c"])
@pytest.mark.parametrize("uploaded", [uploaded for uploaded, _, _ in NAMES])
def test_download_by_name_writes_its_file_inside_the_directory(
    served: Served, named: dict[str, Named], tmp_path: Path, tool: str, uploaded: str
) -> None:
    """curl ``-OJ`` reads only ``filename`` (the ASCII fallback); wget and aria2c read ``filename*``.
    Whatever the name, the one file written is in the working directory, nowhere above it."""
    document = named[uploaded]
    url = f"{served.server.base_url}/download/{quote(document.stored, safe='')}"
    directory = tmp_path / "outer" / "inner" / "cwd"
    directory.mkdir(parents=True)
    commands = {
        "curl": lambda: curl("-f", "-OJ", url),
        "wget": lambda: wget("--content-disposition", url),
        "aria2c": lambda: aria2c(url),
    }

    run(served, commands[tool](), cwd=directory)

    expected = directory / (document.fallback if tool == "curl" else document.stored)
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert written == [expected]
    assert sha256_of(expected) == document.sha256
