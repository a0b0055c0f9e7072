"""``docpipe reprocess`` as an operator runs it, on the stores a server uses: a real process once, then in
this process (see ``support``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from docpipe.config import load_settings
from docpipe.container import Container, close, open_service
from docpipe.domain.model import Document, NewDocument, ProcessingState
from tests.cli.support import docpipe, docpipe_here, sqlite_environment


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


def test_pending_documents_are_processed_then_failed_ones_on_request(tmp_path: Path) -> None:
    env = sqlite_environment(tmp_path)
    text = asyncio.run(_upload(env, b"walrus", "a.txt", "text/plain"))
    broken = asyncio.run(_upload(env, b"%PDF-1.7\n1 0 obj", "b.pdf", "application/pdf"))
    run = docpipe(env, "reprocess")  # the one run as a process of its own
    assert run.code == 0, run.stderr
    assert "examined 2 documents, processed 2: 1 done, 1 failed" in run.stdout
    assert asyncio.run(_state(env, text)) is ProcessingState.DONE
    assert asyncio.run(_state(env, broken)) is ProcessingState.FAILED
    assert "processed 0" in docpipe_here(env, "reprocess").stdout
    again = docpipe_here(env, "reprocess", "--failed")
    assert "processed 1: 1 failed" in again.stdout


def test_a_folder_without_a_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    run = docpipe_here(sqlite_environment(tmp_path / "typo"), "reprocess")
    assert run.code == 2
    assert "no docpipe store there" in run.stderr
    assert not (tmp_path / "typo").exists()
