"""Exit statuses and the one exception a command fails with."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The exit status of ``docpipe-client``, as README's "Command-line client" documents it."""

    OK = 0
    REFUSED = 1
    """The server answered with an error (its problem+json shown as one line)."""
    USAGE = 2
    """Bad arguments, or a local file that cannot be read or written (argparse's status for usage errors)."""
    UNREACHABLE = 3
    """The server could not be reached or the connection broke; a transfer resumes when run again."""
    CORRUPT = 4
    """The bytes' sha-256 differs from the document's."""
    INTERRUPTED = 130
    """Ctrl+C, as shells report it (128 + SIGINT); a transfer resumes when run again."""
    BROKEN_PIPE = 141
    """Whoever read stdout stopped (``| head``), reported as a program killed by SIGPIPE is (128 + 13)."""


class CommandFailed(Exception):
    """What a command could not do, in one line, and the exit status it ends with."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())
        self.code = code
