"""The first start's admin key, decided over the in-memory key repository (``docpipe serve`` itself is
tested in tests/cli/test_admin_key_bootstrap.py)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import msgspec
import pytest

from docpipe.adapters.memory import MemoryKeyRepository
from docpipe.config import AuthMode, RepositoryKind, Secret, Settings
from docpipe.domain.identity import ALL_SCOPES, DEFAULT_OWNER
from docpipe.domain.key_service import KeyService
from docpipe.domain.keys import hash_secret, well_formed
from docpipe.entrypoints.admin_key import ADMIN_KEY_FILE, ensure_admin_key


async def start(settings: Settings, keys: MemoryKeyRepository) -> None:
    await ensure_admin_key(settings, KeyService(keys), keys)


async def test_a_start_with_no_key_writes_one_of_default_with_every_scope(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    keys = MemoryKeyRepository()
    await start(Settings(data_dir=tmp_path / "data"), keys)
    path = tmp_path / "data" / ADMIN_KEY_FILE
    secret = path.read_text().strip()
    assert well_formed(secret)
    key = await keys.find(hash_secret(secret))
    assert key is not None
    assert (key.owner, key.scopes, key.expires_at) == (DEFAULT_OWNER, ALL_SCOPES, None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in caplog.text
    assert secret not in caplog.text


async def test_a_second_start_makes_no_other_key(tmp_path: Path) -> None:
    keys = MemoryKeyRepository()
    settings = Settings(data_dir=tmp_path)
    await start(settings, keys)
    written = (tmp_path / ADMIN_KEY_FILE).read_text()
    await start(settings, keys)
    assert len(await keys.list()) == 1
    assert (tmp_path / ADMIN_KEY_FILE).read_text() == written


async def test_a_repository_holding_keys_gets_no_admin_key_file(tmp_path: Path) -> None:
    keys = MemoryKeyRepository()
    existing = await KeyService(keys).create("alice", ["read"])
    await start(Settings(data_dir=tmp_path), keys)
    assert not (tmp_path / ADMIN_KEY_FILE).exists()
    assert await keys.list() == [existing.key]


@pytest.mark.parametrize(
    "settings",
    [{"admin_key": Secret("from-the-environment-0123456789")}, {"auth": AuthMode.NONE}],
    ids=["DOCPIPE_ADMIN_KEY", "DOCPIPE_AUTH=none"],
)
async def test_no_file_is_written_with_an_admin_key_set_or_authentication_off(
    tmp_path: Path, settings: dict[str, object]
) -> None:
    keys = MemoryKeyRepository()
    await start(msgspec.structs.replace(Settings(data_dir=tmp_path), **settings), keys)
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240
    assert await keys.list() == []


async def test_a_revoked_admin_key_is_not_replaced_and_the_log_says_how_to_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = MemoryKeyRepository()
    settings = Settings(data_dir=tmp_path)
    await start(settings, keys)
    written = (tmp_path / ADMIN_KEY_FILE).read_text()
    (key,) = await keys.list()
    await keys.revoke(key.id)
    await start(settings, keys)
    assert await keys.list() == []
    assert (tmp_path / ADMIN_KEY_FILE).read_text() == written
    (warning,) = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "revoked" in warning
    assert "docpipe keys create --owner default" in warning
    assert written.strip() not in warning


async def test_a_memory_repository_gets_its_file_written_anew_at_every_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, repository=RepositoryKind.MEMORY)
    await start(settings, MemoryKeyRepository())
    keys = MemoryKeyRepository()
    await start(settings, keys)
    (key,) = await keys.list()
    assert key.secret_hash == hash_secret((tmp_path / ADMIN_KEY_FILE).read_text().strip())


async def test_a_file_that_cannot_be_written_leaves_no_key_behind() -> None:
    keys = MemoryKeyRepository()
    with pytest.raises(OSError):  # noqa: PT011 (whichever the kernel says)
        await start(Settings(data_dir=Path("/proc/self")), keys)
    assert await keys.list() == []
