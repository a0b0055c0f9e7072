"""Hostile files and misbehaving parsers in the sandbox: each ends ``ExtractionFailed`` with a reason (or,
where that is right, a success), while another document extracted at the same time succeeds, the pool
goes on working, and the parent's memory stays flat.

Limits are small (2 s of CPU, 256 MiB) to keep the suite quick; wall-clock limits are generous except
where the wall clock is what is tested, since a loaded machine stretches every run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import psutil
import pytest
import pytest_asyncio

from docpipe.adapters.extraction.limits import Limits, MiB
from docpipe.adapters.extraction.readers import DEFAULT_READERS
from docpipe.adapters.extraction.sandbox import SandboxedExtractor
from docpipe.domain.processing import Extraction, ExtractionFailed, ExtractorUnavailable
from tests.extraction import documents, misbehaving_readers

pytestmark = pytest.mark.asyncio(loop_scope="module")

T = TypeVar("T")

LIMITS = Limits(cpu_seconds=2, wall_seconds=120, memory_bytes=256 * MiB, text_bytes=1 * MiB)
READERS = {**DEFAULT_READERS, **misbehaving_readers.READERS}
PARENT_GROWTH_BOUND = 64 * MiB
"""What the parent's resident memory may grow by while a hostile file is handled: the files inflate to
GiBs, so a parent that read one would show it."""

NICENESS = 10
MAX_NICENESS = 19
GOOD_PAGE = b"<title>Good</title><p>still fine</p>"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def extractor() -> AsyncIterator[SandboxedExtractor]:
    """One extractor for the whole module: every test also shows it survived the ones before."""
    sandbox = SandboxedExtractor(limits=LIMITS, workers=2, readers=READERS)
    yield sandbox
    await sandbox.aclose()


async def _extract(
    extractor: SandboxedExtractor, directory: Path, name: str, data: bytes, content_type: str
) -> tuple[Extraction, str]:
    source = directory / name
    source.write_bytes(data)
    text_out = directory / f"{name}.txt"
    extraction = await extractor.extract(source, content_type, text_out)
    return extraction, text_out.read_text(encoding="utf-8")


async def _peak_growth(work: Callable[[], Awaitable[T]]) -> tuple[T | BaseException, int]:
    """Run ``work``, sampling this process's resident memory meanwhile: its result (or exception) and
    how far above the starting point the memory rose."""
    process = psutil.Process()
    start = peak = process.memory_info().rss
    finished = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not finished.is_set():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        outcome: T | BaseException = await work()
    except Exception as error:
        outcome = error
    finished.set()
    await sampler
    return outcome, max(peak, process.memory_info().rss) - start


HOSTILE = [
    ("truncated.pdf", documents.truncated_pdf, "application/pdf", "the PDF is truncated or damaged"),
    (
        "bomb.pdf",
        documents.decompression_bomb_pdf,
        "application/pdf",
        "the PDF is built to exhaust its reader (a stream that inflates too far, or a loop)",
    ),
    ("loop.pdf", documents.looping_page_tree_pdf, "application/pdf", "the PDF is truncated or damaged"),
    (
        "bomb.docx",
        documents.zip_bomb_docx,
        documents.DOCX_TYPE,
        "the DOCX unpacks to more than 256 MiB (a zip bomb?)",
    ),
    (
        "laughs.docx",
        documents.billion_laughs_docx,
        documents.DOCX_TYPE,
        "the DOCX is damaged, or is not a Word document",
    ),
    ("spin.txt", lambda: b"spin", "text/plain", "reading the file took more than 2 s of processing time"),
    ("hoard.txt", lambda: b"hoard", "text/plain", "reading the file needed more than 256 MiB of memory"),
    ("crash.txt", lambda: b"crash", "text/plain", "the file made the text extractor crash"),
]


@pytest.mark.parametrize(
    ("name", "make", "content_type", "reason"), HOSTILE, ids=[case[0] for case in HOSTILE]
)
async def test_a_hostile_file_fails_while_another_document_succeeds(
    extractor: SandboxedExtractor,
    tmp_path: Path,
    name: str,
    make: Callable[[], bytes],
    content_type: str,
    reason: str,
) -> None:
    hostile = make()

    async def both() -> tuple[tuple[Extraction, str] | BaseException, tuple[Extraction, str] | BaseException]:
        return await asyncio.gather(
            _extract(extractor, tmp_path, name, hostile, content_type),
            _extract(extractor, tmp_path, "good.html", GOOD_PAGE, "text/html"),
            return_exceptions=True,
        )

    outcome, growth = await _peak_growth(both)
    assert not isinstance(outcome, BaseException)
    failure, good = outcome
    assert isinstance(failure, ExtractionFailed), failure
    assert failure.reason == reason
    assert good == (Extraction(pages=None, title="Good", characters=11), "still fine\n")
    assert growth < PARENT_GROWTH_BOUND
    await _both_workers_still_work(extractor, tmp_path)


async def test_a_deeply_nested_html_is_read_like_any_other(tmp_path: Path) -> None:
    # Its 200,000 tags take the standard library's parser a second or two of CPU: more than LIMITS allow.
    sandbox = SandboxedExtractor(limits=Limits(memory_bytes=256 * MiB), workers=1)

    async def nested() -> tuple[Extraction, str]:
        return await _extract(sandbox, tmp_path, "deep.html", documents.deeply_nested_html(), "text/html")

    try:
        outcome, growth = await _peak_growth(nested)
    finally:
        await sandbox.aclose()
    assert outcome == (Extraction(pages=None, title="Deep", characters=14), "at the bottom\n")
    assert growth < PARENT_GROWTH_BOUND


async def test_a_parser_cannot_reach_the_network(extractor: SandboxedExtractor, tmp_path: Path) -> None:
    connections = 0

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(ExtractionFailed) as failed:
            await _extract(extractor, tmp_path, "connect.txt", f"connect {port}".encode(), "text/plain")
    assert failed.value.reason == "the text file could not be read"
    assert failed.value.cause == "SandboxViolation"
    assert connections == 0


async def test_a_child_sees_none_of_the_servers_environment(
    extractor: SandboxedExtractor, tmp_path: Path
) -> None:
    assert os.environ["AWS_SECRET_ACCESS_KEY"]
    extraction, _ = await _extract(extractor, tmp_path, "env.txt", b"env AWS_SECRET_ACCESS_KEY", "text/plain")
    assert extraction.title == "unset"


async def test_a_child_runs_at_a_lower_cpu_priority_than_the_server(
    extractor: SandboxedExtractor, tmp_path: Path
) -> None:
    """With a ``niceness``, a child's priority, and that of the autogroup its session makes, give way
    to the server's, so that extraction takes the CPU that serving leaves; without one, they are the
    server's (the module's extractor: its children share the CPU with the other tests' work)."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    niced = SandboxedExtractor(limits=LIMITS, workers=1, readers=READERS, niceness=NICENESS)
    try:
        lowered, _ = await _extract(niced, tmp_path, "lowered.txt", b"priority", "text/plain")
    finally:
        await niced.aclose()
    same, _ = await _extract(extractor, tmp_path, "same.txt", b"priority", "text/plain")
    assert same.title == f"{own} 0" or same.title == f"{own} -"
    assert lowered.title is not None
    niceness, autogroup = lowered.title.split()
    assert int(niceness) == min(own + NICENESS, MAX_NICENESS)
    if autogroup != "-":
        assert int(autogroup) == int(niceness)


async def test_extractions_beyond_the_workers_wait_their_turn(
    extractor: SandboxedExtractor, tmp_path: Path
) -> None:
    results = await asyncio.gather(
        *(_extract(extractor, tmp_path, f"pid{number}.txt", b"pid", "text/plain") for number in range(8))
    )
    assert 1 <= len({extraction.title for extraction, _ in results}) <= 2


async def _both_workers_still_work(extractor: SandboxedExtractor, tmp_path: Path) -> None:
    results = await asyncio.gather(
        *(
            _extract(extractor, tmp_path, f"after{number}.txt", b"fine words", "text/plain")
            for number in range(2)
        )
    )
    assert [text for _, text in results] == ["fine words", "fine words"]


# With extractors of their own: other limits, other pool sizes.


async def test_a_parser_that_blocks_is_killed_at_the_wall_clock_limit(tmp_path: Path) -> None:
    sandbox = SandboxedExtractor(limits=Limits(wall_seconds=5), workers=1, readers=READERS)
    try:
        first, _ = await _extract(sandbox, tmp_path, "pid1.txt", b"pid", "text/plain")
        with pytest.raises(ExtractionFailed) as failed:
            await _extract(sandbox, tmp_path, "sleep.txt", b"sleep", "text/plain")
        assert failed.value.reason == "reading the file took longer than 5 s"
        second, _ = await _extract(sandbox, tmp_path, "pid2.txt", b"pid", "text/plain")
        assert second.title != first.title  # the blocked child was killed and replaced
        assert first.title is not None
        assert not psutil.pid_exists(int(first.title))
    finally:
        await sandbox.aclose()


async def test_children_are_recycled_after_their_documents_and_replaced_when_they_die(tmp_path: Path) -> None:
    sandbox = SandboxedExtractor(limits=LIMITS, workers=1, documents_per_child=3, readers=READERS)
    try:
        pids = []
        for number in range(7):
            extraction, _ = await _extract(sandbox, tmp_path, f"pid{number}.txt", b"pid", "text/plain")
            pids.append(extraction.title)
        assert pids[0] == pids[1] == pids[2] != pids[3] == pids[4] == pids[5] != pids[6]
        with pytest.raises(ExtractionFailed):
            await _extract(sandbox, tmp_path, "crash.txt", b"crash", "text/plain")
        after_crash, _ = await _extract(sandbox, tmp_path, "pid7.txt", b"pid", "text/plain")
        assert after_crash.title not in pids
    finally:
        await sandbox.aclose()


async def test_a_cancelled_extraction_kills_its_child(tmp_path: Path) -> None:
    sandbox = SandboxedExtractor(limits=LIMITS, workers=1, readers=READERS)
    try:
        first, _ = await _extract(sandbox, tmp_path, "pid1.txt", b"pid", "text/plain")
        assert first.title is not None
        blocked = asyncio.create_task(_extract(sandbox, tmp_path, "sleep.txt", b"sleep", "text/plain"))
        await asyncio.sleep(0.5)  # the child takes the job; cancelling earlier would do as well
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        await _until(lambda: not psutil.pid_exists(int(first.title or 0)))
        second, _ = await _extract(sandbox, tmp_path, "pid2.txt", b"pid", "text/plain")
        assert second.title != first.title
    finally:
        await sandbox.aclose()


async def test_closing_ends_every_child_and_refuses_new_work(tmp_path: Path) -> None:
    sandbox = SandboxedExtractor(limits=LIMITS, workers=2, readers=READERS)
    results = await asyncio.gather(
        _extract(sandbox, tmp_path, "pid1.txt", b"pid", "text/plain"),
        _extract(sandbox, tmp_path, "pid2.txt", b"pid", "text/plain"),
    )
    running = asyncio.create_task(_extract(sandbox, tmp_path, "sleep.txt", b"sleep", "text/plain"))
    await asyncio.sleep(0.5)
    await sandbox.aclose()
    with pytest.raises(ExtractorUnavailable):
        await running  # killed by the shutdown, which says nothing about the file
    for extraction, _ in results:
        assert not psutil.pid_exists(int(extraction.title or 0))
    with pytest.raises(ExtractorUnavailable):
        await _extract(sandbox, tmp_path, "late.txt", b"pid", "text/plain")


async def _until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition``, which no event signals, polling it for up to 30 s."""
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
