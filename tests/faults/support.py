"""Helpers shared by the fault-injection tests: configurations, generated bodies, store checks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest

from docpipe.config import load_settings
from docpipe.container import Container, close
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import Document
from docpipe.domain.ports import DocumentRepository
from tests.credentials import ADMIN_ENV
from tests.faults.proxy import FaultProxy
from tests.live_server import live_server

MIB = 1024 * 1024
_BLOCK = random.Random(20240601).randbytes(MIB)
PARTIAL_SUFFIX = ".partial"


# -- configurations ----------------------------------------------------------------------------


def filesystem_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "DOCPIPE_BLOB_STORE": "filesystem",
        "DOCPIPE_REPOSITORY": "sqlite",
        "DOCPIPE_DATA_DIR": str(data_dir),
        **ADMIN_ENV,
        **extra,
    }


def aws_env(s3_endpoint: str, dynamodb_endpoint: str, data_dir: Path) -> dict[str, str]:
    """S3 + DynamoDB at the given endpoints, in a bucket and table of their own."""
    unique = uuid.uuid4().hex[:12]
    return {
        "DOCPIPE_BLOB_STORE": "s3",
        "DOCPIPE_REPOSITORY": "dynamodb",
        "DOCPIPE_DATA_DIR": str(data_dir),
        "DOCPIPE_S3_ENDPOINT_URL": s3_endpoint,
        "DOCPIPE_S3_PATH_STYLE": "true",
        "DOCPIPE_S3_BUCKET": f"docpipe-faults-{unique}",
        "DOCPIPE_DYNAMODB_ENDPOINT_URL": dynamodb_endpoint,
        "DOCPIPE_DYNAMODB_TABLE": f"docpipe-faults-{unique}",
        **ADMIN_ENV,
    }


ADAPTER_PAIRS = [("filesystem", "sqlite"), ("memory", "memory"), ("s3", "dynamodb")]
"""The pairs the HTTP tests run over (tests/http/conftest.py), here as a real server's settings."""


def pair_env(pair: tuple[str, str], data_dir: Path, aws_endpoint: str | None = None) -> dict[str, str]:
    """The settings of a real server over one pair of ``ADAPTER_PAIRS``; AWS needs ``aws_endpoint``."""
    if pair == ("s3", "dynamodb"):
        assert aws_endpoint is not None
        return aws_env(aws_endpoint, aws_endpoint, data_dir)
    blob_store, repository = pair
    return {
        "DOCPIPE_BLOB_STORE": blob_store,
        "DOCPIPE_REPOSITORY": repository,
        "DOCPIPE_DATA_DIR": str(data_dir),
        **ADMIN_ENV,
    }


# -- generated bodies --------------------------------------------------------------------------


@contextlib.contextmanager
def proxied_live_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FaultProxy, str]]:
    """A live server on the adapter pair ``request.param`` (moto server for the AWS ones), reached
    through a fault proxy: the proxy, and the server's own URL."""
    pair: tuple[str, str] = request.param
    endpoint = request.getfixturevalue("moto_server").endpoint_url if "s3" in pair else None
    with (
        live_server(pair_env(pair, tmp_path / "data", endpoint), tmp_path / "docpipe.log") as server,
        FaultProxy("127.0.0.1", server.port) as proxy,
    ):
        yield proxy, server.base_url


def pattern_chunks(seed: int, size: int, chunk_size: int = MIB) -> Iterator[bytes]:
    """``size`` deterministic bytes in chunks of ``chunk_size``; every chunk of every seed differs."""
    assert chunk_size <= MIB
    index = 0
    sent = 0
    while sent < size:
        length = min(chunk_size, size - sent)
        stamp = seed.to_bytes(8, "big") + index.to_bytes(8, "big")
        yield (stamp + _BLOCK[16:length])[:length]
        sent += length
        index += 1


def pattern_sha256(seed: int, size: int) -> str:
    digest = hashlib.sha256()
    for chunk in pattern_chunks(seed, size):
        digest.update(chunk)
    return digest.hexdigest()


class GatedBody:
    """A streamed request body that stops at ``pause_at`` bytes until ``gate`` opens.

    ``reached`` is set once the first ``pause_at`` bytes were handed to the client library, which
    makes "the upload is in flight" a fact instead of a guess about timing.
    """

    def __init__(self, seed: int, size: int, pause_at: int, gate: threading.Event) -> None:
        self.seed = seed
        self.size = size
        self.pause_at = pause_at
        self.gate = gate
        self.reached = threading.Event()
        self.sent = 0
        self.sha256 = pattern_sha256(seed, size)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in pattern_chunks(self.seed, self.size):
            if self.sent >= self.pause_at and not self.reached.is_set():
                self.reached.set()
                self.gate.wait(timeout=120)
            self.sent += len(chunk)
            yield chunk


# -- assertions on responses -------------------------------------------------------------------


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    if response.request.method == "HEAD":
        return {}
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert "Traceback" not in response.text
    return problem


def assert_unavailable(response: httpx.Response) -> dict[str, Any]:
    """503 problem+json with a usable ``Retry-After``."""
    problem = assert_problem(response, 503)
    assert response.headers.get("retry-after", "").isdigit(), response.headers
    return problem


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout:g} s")
        time.sleep(0.1)


# -- the store as a client sees it -------------------------------------------------------------


def raw_upload(client: httpx.Client, body: bytes, filename: str, **headers: str) -> httpx.Response:
    return client.post(
        "/documents",
        params={"filename": filename},
        content=body,
        headers={"content-type": "application/octet-stream", **headers},
    )


def list_all(client: httpx.Client) -> list[dict[str, Any]]:
    """Every document, following cursors."""
    documents: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 1000}
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get("/documents", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        documents.extend(page["documents"])
        cursor = page["next_cursor"]
        if cursor is None:
            return documents


def download_digest(client: httpx.Client, document_id: str) -> tuple[int, int, str]:
    """Status, size and sha-256 of a document's content as downloaded."""
    digest = hashlib.sha256()
    size = 0
    with client.stream("GET", f"/documents/{document_id}/content") as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, 0, ""
        for chunk in response.iter_bytes(MIB):
            digest.update(chunk)
            size += len(chunk)
    return 200, size, digest.hexdigest()


def verify_every_listed_document(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """Every listed document downloads whole, matching its size and sha-256; returned by id."""
    documents = {document["id"]: document for document in list_all(client)}
    broken = []
    for document_id, document in documents.items():
        status, size, sha256 = download_digest(client, document_id)
        if (status, size, sha256) != (200, document["size"], document["sha256"]):
            broken.append(
                f"{document_id} ({document['filename']}): listed with {document['size']} bytes "
                f"sha256 {document['sha256'][:12]}, download gave {status} with {size} bytes "
                f"sha256 {sha256[:12]}"
            )
    assert not broken, "listed documents whose content is not intact:\n" + "\n".join(broken)
    return documents


def blob_keys_of(env: Mapping[str, str], document_ids: Iterable[str]) -> set[str]:
    """Every blob key the documents refer to (which the API does not show): their bytes' and their
    extracted text's, read through docpipe's own repository adapter on the stores ``env`` configures."""
    keys: set[str] = set()
    for document in documents_of(env, document_ids):
        keys.add(document.blob_key)
        if document.processing.text_key is not None:
            keys.add(document.processing.text_key)
    return keys


def documents_of(env: Mapping[str, str], document_ids: Iterable[str]) -> list[Document]:
    """The documents as docpipe's own repository adapter reads them on the stores ``env`` configures."""

    async def read() -> list[Document]:
        container = Container(settings=load_settings(env))
        try:
            repository: DocumentRepository = await container.repository()
            return [await repository.get(DEFAULT_OWNER, document_id) for document_id in document_ids]
        finally:
            await close(container)

    return asyncio.run(read())


# -- the filesystem adapter's folder -----------------------------------------------------------


def blob_files(data_dir: Path) -> tuple[set[str], list[Path]]:
    """Keys of the complete blobs under ``<data_dir>/blobs`` (``<owner>/<name>`` from
    ``<owner>/<fan-out>/<name>``, the bare name from ``<fan-out>/<name>``), and the paths of
    ``.partial`` files."""
    blobs: set[str] = set()
    partials: list[Path] = []
    root = data_dir / "blobs"
    if not root.exists():
        return blobs, partials
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.name.endswith(PARTIAL_SUFFIX):
            partials.append(path)
        else:
            folders = path.relative_to(root).parts[:-2]
            blobs.add("/".join([*folders, path.name]))
    return blobs, partials


# -- the command line --------------------------------------------------------------------------


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docpipe.entrypoints.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until_processed(client: httpx.Client, timeout: float = 60) -> None:
    """Until no listed document's processing is pending: processing writes a text blob before it
    records it, which fsck with no grace period would judge an orphan in between."""
    wait_for(
        lambda: all(document["processing"]["state"] != "pending" for document in list_all(client)),
        timeout,
        "every document processed",
    )


def assert_fsck_clean(data_dir: Path, env: Mapping[str, str] | None = None) -> None:
    """``docpipe fsck --fix`` then ``docpipe fsck --verify-content`` over the stores ``env`` selects (by
    default filesystem + SQLite in ``data_dir``): the second run must find nothing left to repair.
    Nothing may be in flight, since the grace period is 0: every entry is judged, whatever its age."""
    settings = {**filesystem_env(data_dir), **(env or {})}
    fixed = run_cli(["fsck", "--fix", "--grace-minutes", "0"], settings)
    assert "Traceback" not in fixed.stderr, fixed.stderr
    check = run_cli(["fsck", "--verify-content", "--grace-minutes", "0"], settings)
    assert check.returncode == 0, (
        f"fsck after fsck --fix exited {check.returncode}:\n{check.stdout}{check.stderr}"
    )


# -- S3 as moto holds it (moto checks no signature, so plain HTTP will do) -----------------------


def s3_object_keys(endpoint: str, bucket: str) -> list[str]:
    response = httpx.get(f"{endpoint}/{bucket}", params={"list-type": "2"}, timeout=30)
    assert response.status_code == 200, response.text
    return [element.text or "" for element in ElementTree.fromstring(response.content).findall(".//{*}Key")]


def s3_unfinished_multipart_uploads(endpoint: str, bucket: str) -> int:
    response = httpx.get(f"{endpoint}/{bucket}", params={"uploads": ""}, timeout=30)
    assert response.status_code == 200, response.text
    return sum(1 for _ in ElementTree.fromstring(response.content).findall(".//{*}Upload"))
