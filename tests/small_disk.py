"""A real full file system for tests: a small tmpfs mounted for the test, filled to the last byte."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_BLOCK = bytes(64 * 1024)


@contextmanager
def small_disk(mountpoint: Path, size: str = "16m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``mountpoint``, unmounted on exit. Mounting needs root (CAP_SYS_ADMIN);
    without it the test is skipped, saying so."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            "a full file system is a small tmpfs, and mounting one needs root with CAP_SYS_ADMIN: "
            f"mount said {mounted.stderr.strip()!r}"
        )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)


def fill(folder: Path) -> Path:
    """Write one file in ``folder`` until its file system has no byte left; return the file's path."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        while True:
            os.write(descriptor, _BLOCK)  # the last write is short, the one after it fails
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
    finally:
        os.close(descriptor)
    assert os.statvfs(folder).f_bavail == 0
    return filler
