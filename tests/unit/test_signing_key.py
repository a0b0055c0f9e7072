"""The link signing key: from DOCPIPE_SIGNING_KEY, or generated once and kept in the data folder."""

from __future__ import annotations

import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from docpipe.adapters.signing_key import KEY_FILE, link_signer
from docpipe.config import Settings, SettingsError, load_settings
from docpipe.domain.errors import BadLinkToken
from docpipe.domain.links import Disposition, DownloadGrant, LinkSigner

GRANT = DownloadGrant("default", "id", 0, datetime(2030, 1, 1, tzinfo=UTC), Disposition.ATTACHMENT)
ENV_KEY = "e" * 40


def settings_in(folder: Path, **environ: str) -> Settings:
    return load_settings({"DOCPIPE_DATA_DIR": str(folder), **environ})


def agree(signer: LinkSigner, other: LinkSigner) -> bool:
    try:
        return other.read(signer.sign(GRANT)) == GRANT
    except BadLinkToken:
        return False


def test_a_key_is_generated_once_private_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    first = link_signer(settings_in(folder))
    key_file = folder / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = key_file.read_text().strip()
    assert len(secret) >= 43  # 256 bits of URL-safe base64
    assert agree(first, link_signer(settings_in(folder)))
    assert key_file.read_text().strip() == secret
    assert [path.name for path in folder.iterdir()] == [KEY_FILE]


def test_another_data_folder_gets_another_key(tmp_path: Path) -> None:
    assert not agree(link_signer(settings_in(tmp_path / "a")), link_signer(settings_in(tmp_path / "b")))


def test_the_environments_key_is_used_and_no_file_is_made(tmp_path: Path) -> None:
    signer = link_signer(settings_in(tmp_path, DOCPIPE_SIGNING_KEY=ENV_KEY))
    assert not (tmp_path / KEY_FILE).exists()
    assert agree(signer, link_signer(settings_in(tmp_path / "elsewhere", DOCPIPE_SIGNING_KEY=ENV_KEY)))


def test_rotation_the_first_key_signs_and_every_key_verifies(tmp_path: Path) -> None:
    old = link_signer(settings_in(tmp_path, DOCPIPE_SIGNING_KEY=ENV_KEY))
    new_key = "n" * 40
    rotated = link_signer(settings_in(tmp_path, DOCPIPE_SIGNING_KEY=f"{new_key}, {ENV_KEY}"))
    assert agree(old, rotated)
    assert agree(rotated, link_signer(settings_in(tmp_path, DOCPIPE_SIGNING_KEY=new_key)))
    assert not agree(rotated, old)


def test_processes_starting_together_end_up_with_one_key(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    start = threading.Barrier(8)
    signers: list[LinkSigner] = []

    def make() -> None:
        start.wait()
        signers.append(link_signer(settings_in(folder)))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(signers) == 8
    assert all(agree(signers[0], signer) for signer in signers)
    assert [path.name for path in folder.iterdir()] == [KEY_FILE]


def test_an_unusable_key_file_stops_start_up_without_showing_it(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("short-secret\n")
    with pytest.raises(SettingsError, match=KEY_FILE) as refused:
        link_signer(settings_in(tmp_path))
    assert "short-secret" not in str(refused.value)


def test_a_folder_where_no_key_can_be_kept_stops_start_up(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(SettingsError, match="DOCPIPE_SIGNING_KEY"):
        link_signer(settings_in(blocked / "data"))


def test_signing_keys_never_show_in_settings_or_their_errors() -> None:
    settings = load_settings({"DOCPIPE_SIGNING_KEY": f"{ENV_KEY},{'f' * 32}"})
    assert len(settings.signing_keys) == 2
    assert ENV_KEY not in repr(settings)
    with pytest.raises(SettingsError) as refused:
        load_settings({"DOCPIPE_SIGNING_KEY": f"{ENV_KEY},too-short-a-key"})
    assert "too-short-a-key" not in str(refused.value)
    assert ENV_KEY not in str(refused.value)
