"""Issuing, listing and revoking keys (over the in-memory repository), and the key format's checks."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.adapters.memory import MemoryKeyRepository
from docpipe.domain.errors import InvalidInput, KeyNotFound
from docpipe.domain.identity import ALL_SCOPES, Scope
from docpipe.domain.key_service import MAX_LIFETIME_SECONDS, MAX_NAME_LENGTH, KeyService
from docpipe.domain.keys import KEY_PREFIX, hash_secret, is_key_id, new_key_id, new_secret, well_formed

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def service() -> tuple[KeyService, MemoryKeyRepository]:
    keys = MemoryKeyRepository()
    return KeyService(keys, clock=lambda: NOW), keys


async def test_a_created_key_is_stored_by_the_hash_of_the_secret_shown_once() -> None:
    keys_service, keys = service()
    issued = await keys_service.create("alice", ["read", "write", "read"], name="ci", expires_in=3600)
    assert well_formed(issued.secret)
    assert issued.key.secret_hash == hash_secret(issued.secret)
    assert await keys.find(hash_secret(issued.secret)) == issued.key
    assert (issued.key.owner, issued.key.scopes, issued.key.name) == (
        "alice",
        frozenset({Scope.READ, Scope.WRITE}),
        "ci",
    )
    assert (issued.key.created_at, issued.key.expires_at) == (NOW, NOW + timedelta(hours=1))
    assert is_key_id(issued.key.id)
    assert issued.secret not in repr(issued.key)


async def test_a_key_without_expires_in_never_expires() -> None:
    keys_service, _ = service()
    issued = await keys_service.create("default", [scope.value for scope in Scope])
    assert issued.key.expires_at is None
    assert issued.key.scopes == ALL_SCOPES


@pytest.mark.parametrize(
    ("owner", "scopes", "name", "expires_in", "complaint"),
    [
        ("", ["read"], "", None, "owner"),
        ("a/b", ["read"], "", None, "owner"),
        ("..", ["read"], "", None, "owner"),
        ("x" * 65, ["read"], "", None, "owner"),
        ("alice", [], "", None, "at least one scope"),
        ("alice", ["read", "superuser"], "", None, "'superuser' is not a scope"),
        ("alice", ["READ"], "", None, "is not a scope"),
        ("alice", ["read"], "n" * (MAX_NAME_LENGTH + 1), None, "at most 100"),
        ("alice", ["read"], "line\nbreak", None, "control characters"),
        ("alice", ["read"], "", 0, "expires_in"),
        ("alice", ["read"], "", -5, "expires_in"),
        ("alice", ["read"], "", MAX_LIFETIME_SECONDS + 1, "expires_in"),
    ],
)
async def test_what_a_key_cannot_be_is_refused_before_anything_is_stored(
    owner: str, scopes: list[str], name: str, expires_in: int | None, complaint: str
) -> None:
    keys_service, keys = service()
    with pytest.raises(InvalidInput, match=complaint):
        await keys_service.create(owner, scopes, name=name, expires_in=expires_in)
    assert await keys.list() == []


async def test_the_bounds_themselves_are_accepted() -> None:
    keys_service, _ = service()
    shortest = await keys_service.create("a", ["admin"], name="n" * MAX_NAME_LENGTH, expires_in=1)
    longest = await keys_service.create("a", ["admin"], expires_in=MAX_LIFETIME_SECONDS)
    assert shortest.key.expires_at == NOW + timedelta(seconds=1)
    assert longest.key.expires_at == NOW + timedelta(days=3650)


async def test_list_and_revoke() -> None:
    keys_service, keys = service()
    first = await keys_service.create("alice", ["read"])
    second = await keys_service.create("bob", ["write"])
    assert await keys_service.list() == [first.key, second.key]
    await keys_service.revoke(first.key.id)
    assert await keys_service.list() == [second.key]
    assert await keys.find(first.key.secret_hash) is None


@pytest.mark.parametrize("key_id", ["", "key_", "nope", "key_" + "G" * 32, "key_" + "0" * 33, "k" * 10_000])
async def test_revoking_what_cannot_be_a_key_id_is_key_not_found_with_a_bounded_message(key_id: str) -> None:
    keys_service, _ = service()
    with pytest.raises(KeyNotFound) as caught:
        await keys_service.revoke(key_id)
    assert len(str(caught.value)) < 200


def test_key_ids_are_unique_and_sort_by_creation() -> None:
    ids = [new_key_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(is_key_id(key_id) for key_id in ids)


def test_secrets_are_unique_and_well_formed() -> None:
    secrets = {new_secret() for _ in range(1000)}
    assert len(secrets) == 1000
    assert all(secret.startswith(KEY_PREFIX) and well_formed(secret) for secret in secrets)


_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


SOME_SECRETS = [new_secret() for _ in range(32)]
"""Made once: a secret made inside the test would differ when hypothesis replays an example."""


@given(st.data())
def test_any_one_character_changed_breaks_the_checksum(data: st.DataObject) -> None:
    secret = data.draw(st.sampled_from(SOME_SECRETS))
    position = data.draw(st.integers(len(KEY_PREFIX), len(secret) - 1))
    replacement = data.draw(st.sampled_from(_BASE62).filter(lambda character: character != secret[position]))
    assert not well_formed(secret[:position] + replacement + secret[position + 1 :])


@given(st.text(max_size=100))
def test_well_formed_takes_any_text_and_accepts_only_the_shape_of_a_key(text: str) -> None:
    assert not well_formed(text) or (text.startswith(KEY_PREFIX) and len(text) == len(new_secret()))


def test_a_truncated_or_extended_key_is_not_well_formed() -> None:
    secret = new_secret()
    assert not well_formed(secret[:-1])
    assert not well_formed(secret + "0")
    assert not well_formed("Bearer " + secret)
