"""Resumable uploads: the payload sent over tus in 8 MiB PATCHes against one raw ``POST /documents``, to
docpipe on the filesystem and SQLite, both from one httpx client reading the payload from disk in 1 MiB
pieces, and the server's peak RSS growth while it takes the tus upload."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from bench import servers
from bench.common import AUTHORIZATION, MIB, Options, Workspace, median, rotated, size_label
from bench.report import Report, Row, Target

PATCH_SIZE = 8 * MIB
SPEED_TARGET = Target(">=", 0.8)
RSS_TARGET = Target("<=", 32, "MiB")
TUS = {**AUTHORIZATION, "Tus-Resumable": "1.0.0"}


def _pieces(payload: Path, start: int, end: int) -> Iterator[bytes]:
    with payload.open("rb") as file:
        file.seek(start)
        while start < end and (piece := file.read(min(MIB, end - start))):
            start += len(piece)
            yield piece


def _document(client: httpx.Client, location: str, size: int, sha256: str) -> str:
    document = client.get(location, headers=AUTHORIZATION).raise_for_status().json()
    if document["size"] != size or document["sha256"] != sha256:
        raise RuntimeError(f"docpipe stored other bytes than the payload: {document}")
    return location


def _tus(client: httpx.Client, payload: Path, size: int, sha256: str) -> str:
    name = base64.b64encode(payload.name.encode()).decode()
    created = client.post(
        "/uploads", headers={**TUS, "Upload-Length": str(size), "Upload-Metadata": f"filename {name}"}
    )
    if created.status_code != 201:
        raise RuntimeError(f"tus creation answered {created.status_code}: {created.text}")
    upload = created.headers["location"]
    response = created
    for offset in range(0, size, PATCH_SIZE):
        response = client.patch(
            upload,
            content=_pieces(payload, offset, min(offset + PATCH_SIZE, size)),
            headers={**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
        )
        if response.status_code != 204:
            raise RuntimeError(f"PATCH at {offset} answered {response.status_code}: {response.text}")
    return _document(client, response.headers["location"], size, sha256)


def _raw(client: httpx.Client, payload: Path, size: int, sha256: str) -> str:
    response = client.post(
        f"/documents?filename={payload.name}",
        content=_pieces(payload, 0, size),
        headers={**AUTHORIZATION, "Content-Type": "application/octet-stream"},
    )
    if response.status_code != 201:
        raise RuntimeError(f"raw upload answered {response.status_code}: {response.text}")
    return _document(client, f"/documents/{response.json()['id']}", size, sha256)


def run(options: Options, workspace: Workspace, report: Report) -> None:
    size = options.size_mib * MIB
    label = size_label(options.size_mib)
    payload, sha256 = workspace.payload(options.size_mib)
    docpipe = servers.docpipe(workspace.folder("tus/docpipe-data"), workspace.folder("logs"))
    cases: dict[str, Callable[[httpx.Client, Path, int, str], str]] = {"tus": _tus, "raw": _raw}
    speeds: dict[str, list[float]] = {name: [] for name in cases}
    growth: dict[str, list[float]] = {name: [] for name in cases}
    peak_reset = True
    with servers.running(docpipe), httpx.Client(base_url=docpipe.base_url, timeout=600) as client:
        for round_number in range(1, options.repeat + 1):
            for name in rotated(list(cases), round_number):
                os.sync()
                started = time.perf_counter()
                with servers.PeakGrowth(docpipe.pid) as peak:
                    location = cases[name](client, payload, size, sha256)
                speeds[name].append(size / MIB / (time.perf_counter() - started))
                growth[name].append(peak.growth_mib)
                peak_reset = peak_reset and peak.reset
                client.delete(location, headers=AUTHORIZATION).raise_for_status()
            print(
                f"  round {round_number}: "
                + ", ".join(f"{name} {values[-1]:,.0f} MiB/s" for name, values in speeds.items()),
                flush=True,
            )
    report.add(
        Row(
            f"{label} tus upload in {PATCH_SIZE // MIB} MiB PATCHes, vs raw POST /documents",
            median(speeds["tus"]),
            "MiB/s",
            "raw POST",
            median(speeds["raw"]),
            SPEED_TARGET,
            samples=speeds,
        )
    )
    note = f"max of {options.repeat}" + ("" if peak_reset else ", peak since start-up")
    for name, values in growth.items():
        report.add(
            Row(
                f"peak RSS growth, {label} {name} upload (filesystem)",
                max(values),
                "MiB",
                target=RSS_TARGET if name == "tus" else None,
                note=note,
                samples={"growth_mib": values},
            )
        )
