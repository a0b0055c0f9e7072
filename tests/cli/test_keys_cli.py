"""``docpipe keys`` as an operator runs it: a real process, on the stores a server uses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from docpipe.config import load_settings
from docpipe.container import Container, close
from docpipe.domain.identity import Scope
from docpipe.domain.keys import ApiKey, hash_secret, well_formed
from docpipe.domain.ports import KeyRepository
from docpipe.entrypoints import cli
from tests.live_server import live_server
from tests.moto_server import MotoServer


class Run(msgspec.Struct, frozen=True):
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return msgspec.json.decode(self.stdout)


def docpipe_keys(environment: dict[str, str], *arguments: str) -> Run:
    process = subprocess.run(
        [sys.executable, "-m", "docpipe.entrypoints.cli", "keys", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(process.returncode, process.stdout, process.stderr)


def docpipe_keys_here(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    environment: dict[str, str],
    *arguments: str,
) -> Run:
    """``docpipe keys`` run in this process, a second faster than a process of its own: for the cases
    that differ only in arguments, once ``docpipe_keys`` has shown the command works as a process."""
    for name in [name for name in os.environ if name.startswith("DOCPIPE_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        if name.startswith("DOCPIPE_"):
            monkeypatch.setenv(name, value)
    code = cli.main(["keys", *arguments])
    printed = capsys.readouterr()
    return Run(code, printed.out, printed.err)


def environment(**settings: str) -> dict[str, str]:
    """This process's environment (AWS test credentials included) with only the given DOCPIPE_ settings."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("DOCPIPE_")}
    return inherited | {f"DOCPIPE_{name.upper()}": value for name, value in settings.items()}


def sqlite_environment(data_dir: Path) -> dict[str, str]:
    return environment(blob_store="filesystem", repository="sqlite", data_dir=str(data_dir))


def stored_key(env: dict[str, str], secret: str) -> ApiKey | None:
    """The key the repository those settings select finds for ``secret``."""

    async def find() -> ApiKey | None:
        container = Container(settings=load_settings(env))
        try:
            keys: KeyRepository = await container.keys()
            return await keys.find(hash_secret(secret))
        finally:
            await close(container)

    return asyncio.run(find())


def test_create_list_revoke(tmp_path: Path) -> None:
    env = sqlite_environment(tmp_path)
    created = docpipe_keys(
        env, "create", "--owner", "alice", "--scope", "read", "--scope", "write", "--name", "ci", "--json"
    ).json()
    secret = created["key"]
    assert well_formed(secret)
    assert set(created) == {"id", "key", "owner", "scopes", "name", "created_at", "expires_at"}
    assert (created["owner"], created["scopes"], created["name"], created["expires_at"]) == (
        "alice",
        ["read", "write"],
        "ci",
        None,
    )
    assert stored_key(env, secret) == msgspec.convert({**created, "secret_hash": hash_secret(secret)}, ApiKey)

    listed = docpipe_keys(env, "list", "--json")
    assert secret not in listed.stdout
    (described,) = listed.json()["keys"]
    assert described == {
        **{name: value for name, value in created.items() if name != "key"},
        "last_used_at": None,
    }
    table = docpipe_keys(env, "list")
    assert table.code == 0
    assert created["id"] in table.stdout
    assert "alice" in table.stdout
    assert secret not in table.stdout

    revoked = docpipe_keys(env, "revoke", created["id"])
    assert (revoked.code, revoked.stdout) == (0, f"revoked {created['id']}\n")
    assert stored_key(env, secret) is None
    assert docpipe_keys(env, "list", "--json").json() == {"keys": []}
    again = docpipe_keys(env, "revoke", created["id"])
    assert again.code == 1
    assert created["id"] in again.stderr


def test_create_prints_only_the_secret_on_stdout_and_says_once_on_stderr(tmp_path: Path) -> None:
    env = sqlite_environment(tmp_path)
    run = docpipe_keys(env, "create", "--owner", "bob", "--scope", "admin", "--expires-in", "3600")
    assert run.code == 0, run.stderr
    secret = run.stdout.removesuffix("\n")
    assert well_formed(secret)
    assert secret not in run.stderr
    assert "only this once" in run.stderr
    key = stored_key(env, secret)
    assert key is not None
    assert key.scopes == frozenset({Scope.ADMIN})
    assert key.expires_at is not None
    assert key.expires_at - key.created_at == timedelta(hours=1)


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--owner", "alice", "--scope", "root"], "'root' is not a scope"),
        (["--owner", "a/b", "--scope", "read"], "owner"),
        (["--owner", "alice", "--scope", "read", "--expires-in", "0"], "expires_in"),
        (["--owner", "alice", "--scope", "read", "--name", "x" * 101], "100"),
    ],
)
def test_a_key_that_cannot_be_is_refused_and_nothing_is_stored(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    complaint: str,
) -> None:
    env = sqlite_environment(tmp_path)
    run = docpipe_keys_here(monkeypatch, capsys, env, "create", *arguments)
    assert (run.code, run.stdout) == (1, "")
    assert complaint in run.stderr
    assert "Traceback" not in run.stderr
    assert docpipe_keys_here(monkeypatch, capsys, env, "list", "--json").json() == {"keys": []}


def test_list_and_revoke_refuse_a_folder_without_a_store_and_leave_it_alone(tmp_path: Path) -> None:
    env = sqlite_environment(tmp_path / "typo")
    for arguments in (["list"], ["revoke", f"key_{uuid.uuid4().hex}"]):
        run = docpipe_keys(env, *arguments)
        assert run.code == 2
        assert "no docpipe store there" in run.stderr
        assert "Traceback" not in run.stderr
    assert not (tmp_path / "typo").exists()


def test_a_memory_repository_is_refused(tmp_path: Path) -> None:
    run = docpipe_keys(
        environment(repository="memory", blob_store="memory", data_dir=str(tmp_path)),
        "create",
        "--owner",
        "alice",
        "--scope",
        "read",
    )
    assert (run.code, run.stdout) == (2, "")
    assert "memory" in run.stderr


def test_keys_are_managed_while_a_server_uses_the_folder(tmp_path: Path) -> None:
    env = sqlite_environment(tmp_path)
    with live_server(env, tmp_path / "server.log") as server:
        created = docpipe_keys(env, "create", "--owner", "alice", "--scope", "read", "--json").json()
        listed = docpipe_keys(env, "list", "--json").json()["keys"]
        assert [key["id"] for key in listed][-1] == created["id"]
        assert docpipe_keys(env, "revoke", created["id"]).code == 0
        assert httpx.get(f"{server.base_url}/health/live", timeout=10).status_code == 200
    assert stored_key(env, created["key"]) is None


def test_keys_on_dynamodb(tmp_path: Path, moto_server: MotoServer) -> None:
    env = environment(
        repository="dynamodb",
        blob_store="memory",
        data_dir=str(tmp_path),
        dynamodb_endpoint_url=moto_server.endpoint_url,
        dynamodb_table=f"docpipe-test-{uuid.uuid4().hex[:12]}",
    )
    created = docpipe_keys(env, "create", "--owner", "alice", "--scope", "share", "--json").json()
    assert stored_key(env, created["key"]) is not None
    assert [key["id"] for key in docpipe_keys(env, "list", "--json").json()["keys"]] == [created["id"]]
    assert docpipe_keys(env, "revoke", created["id"]).code == 0
    assert docpipe_keys(env, "list", "--json").json() == {"keys": []}
