"""Local files read and hashed in chunks, never whole: transfers hold one chunk at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

from docpipe_client.errors import CommandFailed, ExitCode

CHUNK = 1024 * 1024


def read_range(
    path: Path, start: int, stop: int, digest: hashlib._Hash, advance: Callable[[int], None]
) -> Iterator[bytes]:
    """Bytes ``start`` to ``stop`` of ``path`` in chunks, each added to ``digest`` and counted by
    ``advance`` as it is handed on. A file that ends early (shrunk meanwhile) fails: the server was
    promised ``stop - start`` bytes."""
    with path.open("rb") as file:
        file.seek(start)
        position = start
        while position < stop:
            chunk = file.read(min(CHUNK, stop - position))
            if not chunk:
                raise CommandFailed(f"{path} shrank while it was being uploaded", ExitCode.USAGE)
            digest.update(chunk)
            position += len(chunk)
            advance(len(chunk))
            yield chunk


def hash_prefix(path: Path, stop: int, digest: hashlib._Hash) -> None:
    """Add the first ``stop`` bytes of ``path`` to ``digest``: what an earlier run already transferred."""
    if stop == 0:
        return
    for _ in read_range(path, 0, stop, digest, lambda _size: None):
        pass
