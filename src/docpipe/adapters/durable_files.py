"""Small files that must survive a crash whole, and secrets only this user may read.

A rename or link is on disk only once its folder is flushed too, hence ``fsync_folder``. A private
file is created with mode 0600 under a temporary name (the umask can only narrow that), written and
flushed before it gets its name: no one ever reads it partly written or with a wider mode.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, replacing what was there."""
    with _private_temporary(path, text) as temporary:
        os.replace(temporary, path)
    fsync_folder(path.parent)


def create_private_file(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it exists (then False): of processes creating it together,
    exactly one succeeds and the others read what it wrote."""
    with _private_temporary(path, text) as temporary:
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
    fsync_folder(path.parent)
    return True


@contextmanager
def _private_temporary(path: Path, text: str) -> Iterator[Path]:
    """A temporary file beside ``path`` holding ``text`` on disk; gone when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with open(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)
