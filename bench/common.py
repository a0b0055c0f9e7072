"""What every benchmark shares: the run's options, a temporary workspace, the payload file, curl, medians."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

MIB = 1024 * 1024
GIB = 1024 * MIB
T = TypeVar("T")

ADMIN_KEY = secrets.token_urlsafe(32)
"""``DOCPIPE_ADMIN_KEY`` of every docpipe the bench starts. Every request presents it, to the baselines
too (which ignore it), so that the servers of a row answer the same requests."""
AUTHORIZATION = {"Authorization": f"Bearer {ADMIN_KEY}"}
AUTHORIZATION_LINE = "".join(f"{name}: {value}" for name, value in AUTHORIZATION.items())
"""``AUTHORIZATION`` as curl, wrk and hey take it."""


@dataclass(frozen=True)
class Options:
    size_mib: int
    """Size of the HTTP download and upload transfers."""
    s3_size_mib: int
    """Size of the S3 put and get."""
    documents: int
    """Documents in the large SQLite database of the listing benchmark (the small one holds 1,000)."""
    duration_s: int
    """Seconds per load run (wrk or hey) of the requests benchmark."""
    repeat: int
    """Rounds of every measurement; medians are reported."""
    quick: bool
    only: tuple[str, ...] = ()
    """Texts a row's title must contain one of to be measured (the requests benchmark); empty: all rows."""


def rotated(items: Sequence[T], round_number: int) -> list[T]:
    """``items`` starting one further each round, so that no case always runs first or after the same one."""
    shift = round_number % len(items)
    return [*items[shift:], *items[:shift]]


def size_label(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Workspace:
    """A temporary folder under the machine's /tmp for one run: payloads, data dirs, server logs.

    Removed as a whole by ``close`` (``python -m bench`` calls it in a ``finally``), payloads of a GiB
    included.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="docpipe-bench-", dir="/tmp"))
        self._payloads: dict[int, tuple[Path, str]] = {}

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def payload(self, size_mib: int) -> tuple[Path, str]:
        """A file of ``size_mib`` MiB of incompressible bytes and its sha-256, made once per run.

        Fsynced after writing, so that the kernel does not write it back in the middle of a measurement;
        it stays in the page cache, as a hot file would on a server.
        """
        if size_mib not in self._payloads:
            path = self.folder("payloads") / f"payload-{size_mib}MiB.bin"
            digest = hashlib.sha256()
            block = os.urandom(16 * MIB)
            with path.open("wb") as file:
                for index in range(size_mib):
                    offset = (index % 16) * MIB
                    chunk = index.to_bytes(8, "big") + block[offset + 8 : offset + MIB]
                    digest.update(chunk)
                    file.write(chunk)
                file.flush()
                os.fsync(file.fileno())
            self._payloads[size_mib] = (path, digest.hexdigest())
        return self._payloads[size_mib]

    def drop_payloads(self) -> None:
        for path, _ in self._payloads.values():
            path.unlink(missing_ok=True)
        self._payloads.clear()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class CurlResult:
    status: int
    downloaded: int
    uploaded: int
    seconds: float
    body: str

    def mib_per_s(self, size: int) -> float:
        return size / MIB / self.seconds


_WRITE_OUT = "\n%{http_code} %{size_download} %{size_upload} %{time_total}"


def curl(*arguments: str, timeout: float = 600) -> CurlResult:
    """Run curl once; the time is curl's own ``time_total`` (connect to last byte, no process start-up)."""
    completed = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--header",
            AUTHORIZATION_LINE,
            "--write-out",
            _WRITE_OUT,
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"curl {' '.join(arguments)} failed ({completed.returncode}): {completed.stderr}")
    body, _, last = completed.stdout.rpartition("\n")
    status, downloaded, uploaded, seconds = last.split()
    return CurlResult(int(status), int(downloaded), int(uploaded), float(seconds), body)


def expect(result: CurlResult, status: int, what: str) -> CurlResult:
    if result.status != status:
        raise RuntimeError(f"{what}: HTTP {result.status}, expected {status}: {result.body[:500]}")
    return result
