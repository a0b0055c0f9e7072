"""``docpipe keys`` as an operator runs it, on the stores a server uses: a real process once, then in this
process (see ``support``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import msgspec
import pytest

from docpipe.domain.identity import Scope
from docpipe.domain.keys import ApiKey, hash_secret, well_formed
from tests.cli.support import Run, docpipe, docpipe_here, environment, sqlite_environment, stored_key
from tests.live_server import live_server
from tests.moto_server import MotoServer


def docpipe_keys_here(env: dict[str, str], *arguments: str) -> Run:
    return docpipe_here(env, "keys", *arguments)


def test_create_list_revoke(tmp_path: Path) -> None:
    env = sqlite_environment(tmp_path)
    created = docpipe_keys_here(
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

    listed = docpipe_keys_here(env, "list", "--json")
    assert secret not in listed.stdout
    (described,) = listed.json()["keys"]
    assert described == {
        **{name: value for name, value in created.items() if name != "key"},
        "last_used_at": None,
    }
    table = docpipe_keys_here(env, "list")
    assert table.code == 0
    assert created["id"] in table.stdout
    assert "alice" in table.stdout
    assert secret not in table.stdout

    revoked = docpipe_keys_here(env, "revoke", created["id"])
    assert (revoked.code, revoked.stdout) == (0, f"revoked {created['id']}\n")
    assert stored_key(env, secret) is None
    assert docpipe_keys_here(env, "list", "--json").json() == {"keys": []}
    again = docpipe_keys_here(env, "revoke", created["id"])
    assert again.code == 1
    assert created["id"] in again.stderr


def test_create_prints_only_the_secret_on_stdout_and_says_once_on_stderr(tmp_path: Path) -> None:
    """The one ``docpipe keys`` run as a process of its own: the entry point, its streams and status."""
    env = sqlite_environment(tmp_path)
    run = docpipe(env, "keys", "create", "--owner", "bob", "--scope", "admin", "--expires-in", "3600")
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
    arguments: list[str],
    complaint: str,
) -> None:
    env = sqlite_environment(tmp_path)
    run = docpipe_keys_here(env, "create", *arguments)
    assert (run.code, run.stdout) == (1, "")
    assert complaint in run.stderr
    assert "Traceback" not in run.stderr
    assert docpipe_keys_here(env, "list", "--json").json() == {"keys": []}


def test_list_and_revoke_refuse_a_folder_without_a_store_and_leave_it_alone(tmp_path: Path) -> None:
    env = sqlite_environment(tmp_path / "typo")
    for arguments in (["list"], ["revoke", f"key_{uuid.uuid4().hex}"]):
        run = docpipe_keys_here(env, *arguments)
        assert run.code == 2
        assert "no docpipe store there" in run.stderr
        assert "Traceback" not in run.stderr
    assert not (tmp_path / "typo").exists()


def test_a_memory_repository_is_refused(tmp_path: Path) -> None:
    run = docpipe_keys_here(
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
        created = docpipe_keys_here(env, "create", "--owner", "alice", "--scope", "read", "--json").json()
        listed = docpipe_keys_here(env, "list", "--json").json()["keys"]
        assert [key["id"] for key in listed][-1] == created["id"]
        assert docpipe_keys_here(env, "revoke", created["id"]).code == 0
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
    created = docpipe_keys_here(env, "create", "--owner", "alice", "--scope", "share", "--json").json()
    assert stored_key(env, created["key"]) is not None
    assert [key["id"] for key in docpipe_keys_here(env, "list", "--json").json()["keys"]] == [created["id"]]
    assert docpipe_keys_here(env, "revoke", created["id"]).code == 0
    assert docpipe_keys_here(env, "list", "--json").json() == {"keys": []}
