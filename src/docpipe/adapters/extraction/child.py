"""A sandbox child process: ``python -P -m docpipe.adapters.extraction.child``, started by ``sandbox``.

It takes its limits and readers from its first message, then extracts one job at a time from stdin,
answering each on stdout, until stdin closes. Before it reads any file it limits itself: CPU time
(re-armed per job, since the limit counts the process's whole life), address space, the size of any
file it writes, open files, no core dumps; and a Python audit hook refuses sockets and new processes,
so no parser can reach the network. Its own stdin and stdout go to /dev/null once the pipes are taken,
so nothing a library prints can corrupt the replies.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from docpipe.adapters.extraction.limits import Limits, MiB, too_much_memory
from docpipe.adapters.extraction.protocol import (
    Done,
    Failed,
    FromChild,
    Job,
    Ready,
    Setup,
    Unavailable,
    read_message,
    write_message,
)
from docpipe.adapters.extraction.readers import Readers, run_reader
from docpipe.domain.processing import ExtractionFailed

OPEN_FILES = 64
AUTOGROUP = Path("/proc/self/autogroup")
AUTOGROUP_ATTEMPTS = 20
AUTOGROUP_RETRY_SECONDS = 0.1
"""Linux lets a process without CAP_SYS_ADMIN set an autogroup's niceness once per 0.1 s, machine-wide."""
_WRITE_SLACK_BYTES = 1 * MiB
_FORBIDDEN_EVENTS = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
)


def main() -> None:
    jobs, replies = _take_pipes()
    setup = read_message(jobs)
    if not isinstance(setup, Setup):
        return
    limits = Limits(
        cpu_seconds=setup.cpu_seconds, memory_bytes=setup.memory_bytes, text_bytes=setup.text_bytes
    )
    _limit_resources(limits)
    if setup.niceness:
        _give_way_to_the_server(setup.niceness)
    _silence_libraries()
    sys.addaudithook(_refuse_network_and_processes)
    readers = Readers(setup.readers)
    write_message(replies, Ready())
    while isinstance(job := read_message(jobs), Job):
        _rearm_cpu_limit(limits.cpu_seconds)
        reply = _run(job, readers, limits)
        write_message(replies, reply)
        if isinstance(reply, Failed) and reply.retire:
            return


def _run(job: Job, readers: Readers, limits: Limits) -> FromChild:
    reader = readers.get(job.processor)
    if reader is None:
        return Unavailable(f"this extractor has no reader for {job.processor!r}")
    try:
        extraction = run_reader(
            reader, job.processor, Path(job.source), job.charset, Path(job.text_out), limits.text_bytes
        )
    except ExtractionFailed as error:
        return Failed(error.reason, error.cause)
    except MemoryError:
        # The heap may be left fragmented and large: a fresh child takes the next job.
        return Failed(too_much_memory(limits), "MemoryError", retire=True)
    except OSError as error:
        return Unavailable(f"{type(error).__name__}: {error.strerror or error}")
    return Done(extraction)


def _take_pipes() -> tuple[BinaryIO, BinaryIO]:
    jobs = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    return jobs, replies


def _limit_resources(limits: Limits) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    largest_file = limits.text_bytes + _WRITE_SLACK_BYTES
    resource.setrlimit(resource.RLIMIT_FSIZE, (largest_file, largest_file))
    _, open_files = resource.getrlimit(resource.RLIMIT_NOFILE)
    if open_files == resource.RLIM_INFINITY or open_files > OPEN_FILES:
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


def _give_way_to_the_server(niceness: int) -> None:
    """Lower this child's CPU priority by ``niceness``, and its autogroup's to match, so that extraction
    takes the CPU that serving leaves and uploads keep their pace while a backlog is worked off. It runs in
    a session of its own, and where the kernel groups processes by session (autogroups: a terminal, a
    VM or a bare machine without a cgroup CPU controller) each group gets an equal share of the CPU
    whatever its processes' niceness, so that two children would take two thirds of two cores from the
    server. In a cgroup (a systemd service, a container) autogroups do not apply, and the niceness does."""
    lowered = os.nice(niceness)
    for _ in range(AUTOGROUP_ATTEMPTS):
        try:
            AUTOGROUP.write_text(str(lowered))
        except BlockingIOError:  # EAGAIN: another process set an autogroup's niceness just now
            time.sleep(AUTOGROUP_RETRY_SECONDS)
        except OSError:  # no autogroups in this kernel, or not allowed: the niceness alone counts
            return
        else:
            return


def _rearm_cpu_limit(seconds: int) -> None:
    """Allow ``seconds`` more of CPU time from now: past it the kernel ends the child with SIGXCPU."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime) + 1 + seconds
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _silence_libraries() -> None:
    """pypdf logs and warns about every irregularity it recovers from; nobody reads a child's output."""
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")


class SandboxViolation(RuntimeError):
    """A reader tried to open a socket or start a process. Not an ``OSError``: that would say the
    extractor's environment failed, when it is the file (or its parser) that misbehaved."""


def _refuse_network_and_processes(event: str, args: Sequence[Any]) -> None:
    if event.startswith(_FORBIDDEN_EVENTS):
        raise SandboxViolation(f"{event} is not allowed while extracting text")


if __name__ == "__main__":
    main()
