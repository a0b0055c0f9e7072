"""``docpipe_here`` runs a command as a process of its own would, and leaves this process as it was."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec
import pytest

from tests.cli.support import docpipe_here, sqlite_environment


def test_a_command_run_here_has_only_its_settings_and_leaves_logging_and_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCPIPE_LOG_FORMAT", "text")  # this process's, not the command's
    monkeypatch.delenv("DOCPIPE_DATA_DIR", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    run = docpipe_here(sqlite_environment(tmp_path / "typo"), "keys", "list")

    assert (run.code, run.stdout) == (2, "")
    (line,) = run.stderr.splitlines()  # logged, through docpipe's handler, to the command's stderr
    assert "no docpipe store there" in msgspec.json.decode(line)["message"]  # JSON, as to a pipe
    assert (root.handlers, root.level) == (handlers, level)
    assert os.environ["DOCPIPE_LOG_FORMAT"] == "text"
    assert "DOCPIPE_DATA_DIR" not in os.environ


def test_arguments_refused_end_the_command_with_the_status_of_a_process() -> None:
    run = docpipe_here({}, "keys", "create", "--owner", "alice")
    assert run.code == 2
    assert "--scope" in run.stderr
