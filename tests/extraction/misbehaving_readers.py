"""Readers that misbehave on purpose, put where the plain-text reader goes: the file's first word says how.

``spin`` loops on the CPU, ``sleep`` blocks without using it, ``hoard`` allocates until refused, ``crash``
aborts the process, ``connect <port>`` opens a TCP connection, ``pid`` succeeds with the process id as the
title, ``env <name>`` with that environment variable's value (or ``unset``), ``priority`` with the process's
niceness and its autogroup's (``-`` where the kernel has no autogroups); anything else is copied.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from docpipe.adapters.extraction.output import Output

READERS = {"text": f"{__name__}:read"}


def read(source: Path, charset: str | None, output: Output) -> None:
    command, *arguments = source.read_text().split()
    if command == "spin":
        while True:
            pass
    elif command == "sleep":
        time.sleep(3600)
    elif command == "hoard":
        hoard = []
        while True:
            hoard.append(bytearray(16 << 20))
    elif command == "crash":
        os.abort()
    elif command == "connect":
        socket.create_connection(("127.0.0.1", int(arguments[0])), timeout=5).close()
    elif command == "pid":
        output.title = str(os.getpid())
    elif command == "env":
        output.title = os.environ.get(arguments[0], "unset")
    elif command == "priority":
        output.title = f"{os.getpriority(os.PRIO_PROCESS, 0)} {_autogroup_niceness()}"
    else:
        output.write(source.read_text())


def _autogroup_niceness() -> str:
    """The niceness of this process's autogroup (``/autogroup-42 nice 10``), ``-`` without autogroups."""
    try:
        return Path("/proc/self/autogroup").read_text().split()[-1]
    except OSError:
        return "-"
