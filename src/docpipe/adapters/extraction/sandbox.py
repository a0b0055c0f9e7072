"""``SandboxedExtractor``: every extraction in a child process with limits, a few children at a time.

Children are started with ``python -P -m docpipe.adapters.extraction.child`` (an exec, never a fork of
the server's process with its event loop and threads), given only ``PYTHONPATH`` from the environment
(the server's credentials stay out), and in a session of their own (a Ctrl+C at a terminal reaches the
server, which ends them, not them directly). A child serves ``documents_per_child`` documents, then a
fresh one replaces it, as Apache Tika's server recycles its forked processes; one that died, was killed,
or ran out of memory is replaced at once. The parent never waits on a child in a thread: it awaits the
child's stdout, with the wall-clock limit as a timeout, and kills the child when the limit passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from docpipe.adapters.extraction import child as child_module
from docpipe.adapters.extraction.limits import Limits, describe_size, too_much_cpu, too_slow
from docpipe.adapters.extraction.protocol import (
    HEADER_BYTES,
    Done,
    Failed,
    FromChild,
    Job,
    ProtocolError,
    Ready,
    Setup,
    Unavailable,
    decode_reply,
    frame,
    payload_size,
)
from docpipe.adapters.extraction.readers import DEFAULT_READERS
from docpipe.domain.processing import (
    Extraction,
    ExtractionFailed,
    ExtractorUnavailable,
    declared_charset,
    processor_for,
)

START_TIMEOUT = 60.0
"""Seconds a new child may take to import its readers and say it is ready (a loaded machine is slow)."""
STOP_TIMEOUT = 5.0
"""Seconds a child whose stdout ended may take to exit before it is killed."""

_CHILD_MODULE = child_module.__name__
_MISBEHAVED = "the text extractor misbehaved while reading the file"


class SandboxedExtractor:
    """The ``Extractor`` for production: parsers in limited child processes, ``workers`` at a time,
    their CPU priority ``niceness`` lower than this process's (see ``child``).

    Extractions beyond ``workers`` wait their turn (awaiting, holding no thread). ``aclose`` ends every
    child; an extraction still running then raises ``ExtractorUnavailable``."""

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        workers: int = 2,
        documents_per_child: int = 100,
        readers: Mapping[str, str] = DEFAULT_READERS,
        niceness: int = 0,
    ) -> None:
        if workers < 1 or documents_per_child < 1:
            raise ValueError("an extractor needs at least one worker, each serving at least one document")
        self._limits = limits or Limits()
        self._documents_per_child = documents_per_child
        self._setup = Setup(
            cpu_seconds=self._limits.cpu_seconds,
            memory_bytes=self._limits.memory_bytes,
            text_bytes=self._limits.text_bytes,
            readers=dict(readers),
            niceness=niceness,
        )
        self._slots: asyncio.Queue[_Child | None] = asyncio.Queue()
        for _ in range(workers):
            self._slots.put_nowait(None)
        self._children: set[_Child] = set()
        self._closed = False

    async def extract(self, source: Path, content_type: str, text_out: Path) -> Extraction:
        processor = processor_for(content_type)
        job = Job(processor.name, str(source), str(text_out), declared_charset(content_type))
        self._refuse_when_closed()
        child = await self._slots.get()
        try:
            self._refuse_when_closed()
            if child is not None and not child.reusable(self._documents_per_child):
                child.kill()
                child = None
            if child is None:
                child = await self._start_child()
            return await self._run(child, job)
        finally:
            if child is not None and not child.reusable(self._documents_per_child):
                child.kill()
                child = None
            self._slots.put_nowait(child)

    async def aclose(self) -> None:
        """End every child and wait for them to exit. Idle children hold nothing worth a goodbye."""
        self._closed = True
        for child in list(self._children):
            child.kill()
        await asyncio.gather(*(child.exited for child in list(self._children)))

    def _refuse_when_closed(self) -> None:
        if self._closed:
            raise ExtractorUnavailable("the text extractor is shut down")

    async def _start_child(self) -> _Child:
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",
                "-m",
                _CHILD_MODULE,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=_child_environment(),
                start_new_session=True,
            )
        except OSError as error:
            raise ExtractorUnavailable(f"cannot start a text extraction process: {error}") from error
        child = _Child(process)
        self._children.add(child)
        child.exited.add_done_callback(lambda _: self._children.discard(child))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                reply = await child.ask(self._setup)
        except BaseException as error:
            child.kill()
            if isinstance(error, Exception):
                raise ExtractorUnavailable(
                    f"a text extraction process did not start ({type(error).__name__})"
                ) from error
            raise
        if not isinstance(reply, Ready):
            child.kill()
            raise ExtractorUnavailable("a text extraction process did not start")
        return child

    async def _run(self, child: _Child, job: Job) -> Extraction:
        child.jobs += 1
        try:
            async with asyncio.timeout(self._limits.wall_seconds):
                reply = await child.ask(job)
        except TimeoutError:
            child.kill()
            raise self._unless_closed(ExtractionFailed(too_slow(self._limits))) from None
        except _ChildGone:
            status = await child.exit_status()
            raise self._unless_closed(ExtractionFailed(self._reason_for_exit(status))) from None
        except ProtocolError:
            child.kill()
            raise self._unless_closed(ExtractionFailed(_MISBEHAVED)) from None
        except BaseException:
            child.kill()  # cancelled mid-job: what the child is doing is nobody's business any more
            raise
        if isinstance(reply, Done):
            return reply.extraction
        if isinstance(reply, Failed):
            if reply.retire:
                child.kill()
            raise ExtractionFailed(reply.reason, reply.cause)
        if isinstance(reply, Unavailable):
            raise ExtractorUnavailable(reply.reason)
        child.kill()
        raise ExtractionFailed(_MISBEHAVED)

    def _unless_closed(self, error: ExtractionFailed) -> Exception:
        """A child killed because the extractor is shutting down says nothing about the document."""
        if self._closed:
            return ExtractorUnavailable("the text extractor was shut down during the extraction")
        return error

    def _reason_for_exit(self, status: int | None) -> str:
        if status is None:
            return _MISBEHAVED
        if status == -signal.SIGXCPU:
            return too_much_cpu(self._limits)
        if status == -signal.SIGKILL:
            return "the system stopped the text extractor while it read the file (out of memory?)"
        if status == -signal.SIGXFSZ:
            return f"reading the file wrote more than {describe_size(self._limits.text_bytes)}"
        return "the file made the text extractor crash"


async def open_extractor(
    *,
    limits: Limits | None = None,
    workers: int = 2,
    documents_per_child: int = 100,
    niceness: int = 0,
) -> AsyncIterator[SandboxedExtractor]:
    """A ``SandboxedExtractor`` for as long as the caller needs it (a dependency-injector Resource)."""
    extractor = SandboxedExtractor(
        limits=limits, workers=workers, documents_per_child=documents_per_child, niceness=niceness
    )
    try:
        yield extractor
    finally:
        await extractor.aclose()


class _ChildGone(Exception):
    """The child's stdout ended before its answer did: it exited, or was killed."""


class _Child:
    """One child process: its pipes, the documents it served, and a task that ends with its exit status."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self._process = process
        self._stdin = process.stdin
        self._stdout = process.stdout
        self.jobs = 0
        self._killed = False
        self.exited: asyncio.Task[int] = asyncio.ensure_future(process.wait())

    def reusable(self, documents: int) -> bool:
        return not self._killed and not self.exited.done() and self.jobs < documents

    async def ask(self, message: Setup | Job) -> FromChild:
        try:
            self._stdin.write(frame(message))
            await self._stdin.drain()
            header = await self._stdout.readexactly(HEADER_BYTES)
            payload = await self._stdout.readexactly(payload_size(header))
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            raise _ChildGone from error
        return decode_reply(payload)

    async def exit_status(self) -> int | None:
        """The status of a child whose stdout ended, once it exits; ``None`` if it had to be killed
        after ``STOP_TIMEOUT`` (a child that closes its stdout and carries on is up to no good)."""
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                return await asyncio.shield(self.exited)
        except TimeoutError:
            self.kill()
            await self.exited
            return None

    def kill(self) -> None:
        """Kill the child if it still runs; ``exited`` completes once it is gone."""
        self._killed = True
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()


def _child_environment() -> dict[str, str]:
    """The child imports what this process imports, from where it does; nothing else of the environment
    (credentials, settings) reaches it."""
    return {"PYTHONPATH": os.pathsep.join(path for path in sys.path if path), "PYTHONDONTWRITEBYTECODE": "1"}
