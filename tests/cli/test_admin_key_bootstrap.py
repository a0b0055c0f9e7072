"""The first start's admin key, as a real ``docpipe serve`` makes it. A start that only prepares the stores
for the one under test happens in this process (``started_here``), as do the ``docpipe keys`` commands."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from docpipe.config import load_settings
from docpipe.container import Container, close
from docpipe.domain.identity import ALL_SCOPES, DEFAULT_OWNER
from docpipe.domain.keys import ApiKey, hash_secret, well_formed
from docpipe.entrypoints import cli
from docpipe.entrypoints.admin_key import ADMIN_KEY_FILE
from tests.cli.support import docpipe_here, sqlite_environment, stored_key
from tests.live_server import LiveServer, live_server

ADMIN_KEY_SETTING = "an-admin-key-from-the-environment-0123"


@contextlib.contextmanager
def started_with_umask(env: dict[str, str], log_path: Path, umask: int) -> Iterator[LiveServer]:
    """A server started with ``umask`` (0: every file it creates would be world-writable unless it asks
    for less), this test process's own umask restored as soon as the server process exists."""
    server = LiveServer(env, log_path)
    previous = os.umask(umask)
    try:
        server.start()
    finally:
        os.umask(previous)
    try:
        yield server
    finally:
        server.stop()


def started_here(env: dict[str, str]) -> None:
    """What ``docpipe serve`` does with the stores before it serves (``cli.open_or_explain``: the first
    start's admin key included), done in this process."""

    async def start() -> bool:
        settings = load_settings(env)
        container = Container(settings=settings)
        try:
            return await cli.open_or_explain(settings, container)
        finally:
            await close(container)

    assert asyncio.run(start())


def all_keys(env: dict[str, str]) -> list[dict[str, object]]:
    keys: list[dict[str, object]] = docpipe_here(env, "keys", "list", "--json").json()["keys"]
    return keys


def test_the_first_start_writes_a_private_admin_key_and_logs_only_where(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = sqlite_environment(data)
    with started_with_umask(env, tmp_path / "server.log", umask=0) as server:
        path = data / ADMIN_KEY_FILE
        mode = stat.S_IMODE(path.stat().st_mode)
        secret = path.read_text().strip()
        log = server.log()
    assert mode == 0o600
    assert well_formed(secret)
    key = stored_key(env, secret)
    assert key is not None
    assert (key.owner, key.scopes, key.expires_at) == (DEFAULT_OWNER, ALL_SCOPES, None)
    assert str(path) in log
    assert secret not in log
    assert hash_secret(secret) not in log
    assert sorted(entry.name for entry in data.iterdir() if "admin" in entry.name) == [ADMIN_KEY_FILE]


def test_a_second_start_makes_no_other_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = sqlite_environment(data)
    started_here(env)
    written = (data / ADMIN_KEY_FILE).read_text()
    with live_server(env, tmp_path / "second.log") as server:
        log = server.log()
    assert (data / ADMIN_KEY_FILE).read_text() == written
    assert len(all_keys(env)) == 1
    assert ADMIN_KEY_FILE not in log


def test_workers_share_the_one_key_made_before_they_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = sqlite_environment(data) | {"DOCPIPE_WORKERS": "2"}
    with live_server(env, tmp_path / "server.log"):
        pass
    (key,) = all_keys(env)
    assert isinstance(key["id"], str)
    found = stored_key(env, (data / ADMIN_KEY_FILE).read_text().strip())
    assert isinstance(found, ApiKey)
    assert found.id == key["id"]


def test_with_docpipe_admin_key_set_no_file_and_no_key_are_made(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = sqlite_environment(data) | {"DOCPIPE_ADMIN_KEY": ADMIN_KEY_SETTING}
    with live_server(env, tmp_path / "server.log") as server:
        log = server.log()
    assert not (data / ADMIN_KEY_FILE).exists()
    assert all_keys(env) == []
    assert ADMIN_KEY_SETTING not in log


def test_with_authentication_off_no_file_is_made(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = sqlite_environment(data) | {"DOCPIPE_AUTH": "none"}
    with live_server(env, tmp_path / "server.log"):
        pass
    assert not (data / ADMIN_KEY_FILE).exists()
    assert all_keys(env) == []


def test_a_revoked_admin_key_is_not_silently_replaced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = sqlite_environment(data)
    started_here(env)
    written = (data / ADMIN_KEY_FILE).read_text()
    (key,) = all_keys(env)
    assert docpipe_here(env, "keys", "revoke", str(key["id"])).code == 0
    with live_server(env, tmp_path / "second.log") as server:
        log = server.log()
    assert (data / ADMIN_KEY_FILE).read_text() == written
    assert all_keys(env) == []
    (line,) = [line for line in log.splitlines() if str(data / ADMIN_KEY_FILE) in line]
    assert "WARNING" in line
    assert "docpipe keys create --owner default" in line
    assert written.strip() not in log
