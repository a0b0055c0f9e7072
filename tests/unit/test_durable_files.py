from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from docpipe.adapters.durable_files import create_private_file, write_private_file


@pytest.mark.parametrize("write", [write_private_file, create_private_file])
def test_a_private_file_is_private_whatever_the_umask(
    tmp_path: Path, write: Callable[[Path, str], object]
) -> None:
    previous = os.umask(0)
    try:
        write(tmp_path / "secret", "text\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert (tmp_path / "secret").read_text() == "text\n"
    assert [path.name for path in tmp_path.iterdir()] == ["secret"]


def test_writing_replaces_what_was_there(tmp_path: Path) -> None:
    write_private_file(tmp_path / "secret", "first\n")
    write_private_file(tmp_path / "secret", "second\n")
    assert (tmp_path / "secret").read_text() == "second\n"
    assert [path.name for path in tmp_path.iterdir()] == ["secret"]


def test_creating_keeps_what_was_there(tmp_path: Path) -> None:
    assert create_private_file(tmp_path / "secret", "first\n")
    assert not create_private_file(tmp_path / "secret", "second\n")
    assert (tmp_path / "secret").read_text() == "first\n"
    assert [path.name for path in tmp_path.iterdir()] == ["secret"]


def test_the_folder_is_made_when_missing(tmp_path: Path) -> None:
    write_private_file(tmp_path / "a" / "b" / "secret", "text\n")
    assert (tmp_path / "a" / "b" / "secret").read_text() == "text\n"
