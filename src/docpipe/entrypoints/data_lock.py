"""The data folder's lock: every server using a store in the folder shares it; fsck takes it alone.

A store in the data folder (the filesystem blob store, the SQLite file) is only ever used by
processes on this machine, so fsck holding the lock alone knows that no upload is in flight and
can judge leftovers whatever their age; a server does not start while fsck holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from docpipe.config import BlobStoreKind, RepositoryKind, Settings

LOCK_FILE = "docpipe.lock"


class FolderInUse(Exception):
    """fsck holds the data folder's lock."""


def _uses_data_dir(settings: Settings) -> bool:
    return settings.blob_store is BlobStoreKind.FILESYSTEM or settings.repository is RepositoryKind.SQLITE


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[None]:
    """Held while a server runs; raises ``FolderInUse`` while fsck runs on the same folder."""
    if not _uses_data_dir(settings):
        yield
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(settings.data_dir, fcntl.LOCK_SH) as taken:
        if not taken:
            raise FolderInUse(f"docpipe fsck is running on {settings.data_dir}")
        yield


@contextlib.contextmanager
def checking(settings: Settings) -> Iterator[bool]:
    """Held while fsck runs; yields whether it holds the lock alone, i.e. no server uses the stores.

    Always false for stores outside the folder (S3, DynamoDB): servers elsewhere may use them.
    The folder must exist.
    """
    if not _uses_data_dir(settings):
        yield False
        return
    with _locked(settings.data_dir, fcntl.LOCK_EX) as taken:
        yield taken


@contextlib.contextmanager
def _locked(folder: Path, operation: int) -> Iterator[bool]:
    """Whether the lock could be taken at once; it is released when the file closes."""
    with (folder / LOCK_FILE).open("a") as file:
        try:
            fcntl.flock(file, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            taken = False
        else:
            taken = True
        yield taken
