"""Running a ``docpipe`` command as a test: in a process of its own, or in this one.

Starting a process costs seconds of imports, so most tests run ``cli.main`` here (``docpipe_here``), with
the same settings, output and exit status as the process would have; ``docpipe`` runs the command as an
operator does, kept for what only a process shows: the entry point itself, its streams, signals, locks
held against other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec

from docpipe.config import load_settings
from docpipe.container import Container, close
from docpipe.domain.keys import ApiKey, hash_secret
from docpipe.domain.ports import KeyRepository
from docpipe.entrypoints import cli
from tests.logger_state import logger_restored

TIMEOUT_SECONDS = 120


class Run(msgspec.Struct, frozen=True):
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return msgspec.json.decode(self.stdout)


def environment(**settings: str) -> dict[str, str]:
    """This process's environment (AWS test credentials included) with only the given DOCPIPE_ settings."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("DOCPIPE_")}
    return inherited | {f"DOCPIPE_{name.upper()}": value for name, value in settings.items()}


def docpipe(env: Mapping[str, str], *arguments: str) -> Run:
    """``python -m docpipe.entrypoints.cli <arguments>`` in a process of its own, with ``env`` as its
    whole environment."""
    process = subprocess.run(
        [sys.executable, "-m", "docpipe.entrypoints.cli", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    return Run(process.returncode, process.stdout, process.stderr)


def docpipe_here(env: Mapping[str, str], *arguments: str) -> Run:
    """``docpipe <arguments>`` run by ``cli.main`` in this process, with the DOCPIPE_ settings of ``env``
    and no other; what it prints and logs is captured, and this process's environment and logging are
    as they were once it returns. Safe to call from a thread (``asyncio.to_thread``), one at a time."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        _settings_only_from(env),
        logger_restored(),  # ``cli.main`` configures the root logger for the rest of a process's life
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            code = cli.main(list(arguments))
        except SystemExit as exit:  # argparse refusing the arguments: the status a process would end with
            code = 0 if exit.code is None else exit.code if isinstance(exit.code, int) else 1
    return Run(code, stdout.getvalue(), stderr.getvalue())


@contextlib.contextmanager
def _settings_only_from(env: Mapping[str, str]) -> Iterator[None]:
    with mock.patch.dict(os.environ):
        for name in [name for name in os.environ if name.startswith("DOCPIPE_")]:
            del os.environ[name]
        os.environ.update({name: value for name, value in env.items() if name.startswith("DOCPIPE_")})
        yield


def sqlite_environment(data_dir: Path) -> dict[str, str]:
    """Settings of a server with everything in ``data_dir``: blobs in a folder, the rest in SQLite."""
    return environment(blob_store="filesystem", repository="sqlite", data_dir=str(data_dir))


def stored_key(env: Mapping[str, str], secret: str) -> ApiKey | None:
    """The key the repository those settings select finds for ``secret``."""

    async def find() -> ApiKey | None:
        container = Container(settings=load_settings(env))
        try:
            keys: KeyRepository = await container.keys()
            return await keys.find(hash_secret(secret))
        finally:
            await close(container)

    return asyncio.run(find())
