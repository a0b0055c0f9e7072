"""``docpipe reprocess`` as an operator runs it: a real process, on the stores a server uses."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from docpipe.config import load_settings
from docpipe.container import Container, close, open_service
from docpipe.domain.model import Document, NewDocument, ProcessingState
from tests.cli.test_keys_cli import sqlite_environment


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _upload(env: dict[str, str], data: bytes, filename: str, content_type: str) -> Document:
    """Stored straight through the service: no server runs, so nothing processes it."""
    container = Container(settings=load_settings(env))
    try:
        service = await open_service(container)
        description = NewDocument(filename=filename, content_type=content_type)
        return await service.upload("alice", _chunks(data), description)
    finally:
        await close(container)


async def _state(env: dict[str, str], document: Document) -> ProcessingState:
    container = Container(settings=load_settings(env))
    try:
        service = await open_service(container)
        return (await service.get(document.owner, document.id)).processing.state
    finally:
        await close(container)


def docpipe_reprocess(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docpipe.entrypoints.cli", "reprocess", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_pending_documents_are_processed_then_failed_ones_on_request(tmp_path: Path) -> None:
    env = sqlite_environment(tmp_path)
    text = asyncio.run(_upload(env, b"walrus", "a.txt", "text/plain"))
    broken = asyncio.run(_upload(env, b"%PDF-1.7\n1 0 obj", "b.pdf", "application/pdf"))
    run = docpipe_reprocess(env)
    assert run.returncode == 0, run.stderr
    assert "examined 2 documents, processed 2: 1 done, 1 failed" in run.stdout
    assert asyncio.run(_state(env, text)) is ProcessingState.DONE
    assert asyncio.run(_state(env, broken)) is ProcessingState.FAILED
    assert "processed 0" in docpipe_reprocess(env).stdout
    again = docpipe_reprocess(env, "--failed")
    assert "processed 1: 1 failed" in again.stdout


def test_a_folder_without_a_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    run = docpipe_reprocess(sqlite_environment(tmp_path / "typo"))
    assert run.returncode == 2
    assert "no docpipe store there" in run.stderr
    assert not (tmp_path / "typo").exists()
