"""Benchmark 4: docpipe's S3 blob store against plain aioboto3, both on one moto server.

docpipe: ``S3BlobStore.put`` of the payload in 1 MiB chunks (the size the service hands it), then
``open`` and iterate. Direct: ``upload_fileobj`` (aioboto3's managed transfer, default settings) and
``get_object`` read with ``iter_chunks(1 MiB)``. Both clients get docpipe's S3 settings (path-style,
checksums only when required), so the ratio compares the code paths, not checksum work. moto is
Python too, so these are relative numbers only: S3 proper is far faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.config import AioConfig

from bench import servers
from bench.common import MIB, Options, Workspace, median, size_label
from bench.report import Report, Row, Target
from docpipe.adapters.s3 import S3BlobStore, open_blob_store
from docpipe.config import S3Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

S3_TARGET = Target(">=", 0.8)
BUCKET = "docpipe-bench"
REGION = "us-east-1"

open_store = contextlib.asynccontextmanager(open_blob_store)


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(MIB):
            yield chunk


class _Round:
    def __init__(self) -> None:
        self.put_s = 0.0
        self.get_s = 0.0


async def _docpipe_round(store: S3BlobStore, payload: Path, size: int, key: str) -> _Round:
    measured = _Round()
    start = time.perf_counter()
    stored = await store.put(key, _file_chunks(payload))
    measured.put_s = time.perf_counter() - start
    if stored != size:
        raise RuntimeError(f"docpipe's S3 store kept {stored} bytes, not {size}")
    start = time.perf_counter()
    received = 0
    async for chunk in await store.open(key):
        received += len(chunk)
    measured.get_s = time.perf_counter() - start
    if received != size:
        raise RuntimeError(f"docpipe's S3 store returned {received} bytes, not {size}")
    await store.delete(key)
    return measured


async def _direct_round(s3: S3Client, payload: Path, size: int, key: str) -> _Round:
    measured = _Round()
    with payload.open("rb") as file:
        start = time.perf_counter()
        await s3.upload_fileobj(file, BUCKET, key)
        measured.put_s = time.perf_counter() - start
    start = time.perf_counter()
    response = await s3.get_object(Bucket=BUCKET, Key=key)
    body = response["Body"]
    received = 0
    async with body:
        async for chunk in body.iter_chunks(MIB):
            received += len(chunk)
    measured.get_s = time.perf_counter() - start
    if received != size:
        raise RuntimeError(f"aioboto3 returned {received} bytes, not {size}")
    await s3.delete_object(Bucket=BUCKET, Key=key)
    return measured


async def _measure(options: Options, endpoint: str, payload: Path) -> dict[str, list[_Round]]:
    size = options.s3_size_mib * MIB
    session = aioboto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION)
    settings = S3Settings(bucket=BUCKET, endpoint_url=endpoint, region=REGION, path_style=True)
    config = AioConfig(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    rounds: dict[str, list[_Round]] = {"docpipe": [], "direct": []}
    async with (
        open_store(session, settings) as store,
        session.client("s3", endpoint_url=endpoint, region_name=REGION, config=config) as client,
    ):
        for round_number in range(1, options.repeat + 1):
            # Alternate who goes first, so that neither always meets a fresher moto.
            order = ["docpipe", "direct"] if round_number % 2 else ["direct", "docpipe"]
            for name in order:
                key = f"{name}-{round_number}"
                if name == "docpipe":
                    rounds[name].append(await _docpipe_round(store, payload, size, key))
                else:
                    rounds[name].append(await _direct_round(client, payload, size, key))
            mib = options.s3_size_mib
            print(
                f"  round {round_number}: "
                + ", ".join(
                    f"{name} put {mib / values[-1].put_s:,.0f} MiB/s get {mib / values[-1].get_s:,.0f} MiB/s"
                    for name, values in rounds.items()
                ),
                flush=True,
            )
    return rounds


def run(options: Options, workspace: Workspace, report: Report) -> None:
    payload, _ = workspace.payload(options.s3_size_mib)
    label = size_label(options.s3_size_mib)
    moto = servers.moto(workspace.folder("logs"))
    with servers.running(moto):
        rounds = asyncio.run(_measure(options, moto.base_url, payload))
    mib = options.s3_size_mib

    def speeds(name: str) -> dict[str, list[float]]:
        return {
            "put": [mib / r.put_s for r in rounds[name]],
            "get": [mib / r.get_s for r in rounds[name]],
            "put+get": [2 * mib / (r.put_s + r.get_s) for r in rounds[name]],
        }

    docpipe, direct = speeds("docpipe"), speeds("direct")
    report.note(
        "S3: one moto server (Python) for both; aioboto3 `upload_fileobj` with default transfer settings, "
        "both clients path-style with checksums only when required, as docpipe configures its client."
    )
    report.add(
        Row(
            f"S3 {label} put+get on moto, vs aioboto3",
            median(docpipe["put+get"]),
            "MiB/s",
            "aioboto3",
            median(direct["put+get"]),
            S3_TARGET,
            samples={f"docpipe {k}": v for k, v in docpipe.items()}
            | {f"direct {k}": v for k, v in direct.items()},
        )
    )
    for step, call in (("put", "upload_fileobj"), ("get", "get_object")):
        report.add(
            Row(
                f"S3 {label} {step}, vs `{call}`",
                median(docpipe[step]),
                "MiB/s",
                baseline_name="aioboto3",
                baseline=median(direct[step]),
            )
        )
