"""DOCPIPE_ADMIN_KEY and DOCPIPE_AUTH: read like every setting, and the key never shown."""

from __future__ import annotations

import pytest

from docpipe.config import AuthMode, SettingsError, load_settings

ADMIN_KEY = "s3cr3t-admin-key-0123456789"


def test_authentication_is_on_without_an_admin_key_by_default() -> None:
    settings = load_settings({})
    assert settings.auth is AuthMode.KEYS
    assert settings.admin_key is None


def test_authentication_can_be_switched_off() -> None:
    assert load_settings({"DOCPIPE_AUTH": "none"}).auth is AuthMode.NONE


def test_an_unknown_authentication_mode_is_refused() -> None:
    with pytest.raises(SettingsError, match="auth"):
        load_settings({"DOCPIPE_AUTH": "maybe"})


def test_the_admin_key_is_read_and_never_shown() -> None:
    settings = load_settings({"DOCPIPE_ADMIN_KEY": ADMIN_KEY})
    assert settings.admin_key is not None
    assert settings.admin_key.reveal() == ADMIN_KEY
    assert ADMIN_KEY not in repr(settings)
    assert ADMIN_KEY not in str(settings)
    assert ADMIN_KEY not in f"{settings.admin_key}"


def test_the_admin_key_matches_only_itself() -> None:
    settings = load_settings({"DOCPIPE_ADMIN_KEY": ADMIN_KEY})
    assert settings.admin_key is not None
    assert settings.admin_key.matches(ADMIN_KEY)
    for other in ("", ADMIN_KEY[:-1], ADMIN_KEY + "x", ADMIN_KEY.upper(), "é" * 30, "\udcff"):
        assert not settings.admin_key.matches(other)


@pytest.mark.parametrize("value", ["short-key", "a key with spaces in it", "ключ-администратора-длинный"])
def test_a_guessable_or_unsendable_admin_key_is_refused_without_being_quoted(value: str) -> None:
    with pytest.raises(SettingsError, match="DOCPIPE_ADMIN_KEY") as caught:
        load_settings({"DOCPIPE_ADMIN_KEY": value})
    assert value not in str(caught.value)
