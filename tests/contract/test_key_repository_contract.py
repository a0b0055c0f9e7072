"""What every KeyRepository adapter must do, whatever the technology behind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from docpipe.domain.errors import DuplicateKey, KeyNotFound
from docpipe.domain.identity import ALL_SCOPES, Scope
from docpipe.domain.keys import ApiKey, hash_secret, new_key_id, new_secret
from docpipe.domain.model import utc_now
from docpipe.domain.ports import KeyRepository


def make_key(
    owner: str = "alice",
    *,
    scopes: frozenset[Scope] = frozenset({Scope.READ}),
    name: str = "",
    expires_at: datetime | None = None,
) -> ApiKey:
    return ApiKey(
        id=new_key_id(),
        secret_hash=hash_secret(new_secret()),
        owner=owner,
        scopes=scopes,
        name=name,
        created_at=utc_now(),
        expires_at=expires_at,
    )


async def test_an_added_key_is_found_by_the_hash_of_its_secret_exactly_as_added(
    key_repository: KeyRepository,
) -> None:
    created = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    key = ApiKey(
        id=new_key_id(),
        secret_hash=hash_secret(new_secret()),
        owner="team-a.prod_1",
        scopes=ALL_SCOPES,
        name="CI déploiement ✓",
        created_at=created,
        expires_at=created + timedelta(days=30, microseconds=1),
    )
    await key_repository.add(key)
    assert await key_repository.find(key.secret_hash) == key


async def test_a_key_without_name_or_expiry_reads_back_as_such(key_repository: KeyRepository) -> None:
    key = make_key()
    await key_repository.add(key)
    found = await key_repository.find(key.secret_hash)
    assert found == key
    assert found is not None
    assert (found.name, found.expires_at, found.last_used_at) == ("", None, None)


async def test_an_unknown_secret_finds_nothing(key_repository: KeyRepository) -> None:
    await key_repository.add(make_key())
    assert await key_repository.find(hash_secret(new_secret())) is None


async def test_the_listing_holds_every_key_oldest_first(key_repository: KeyRepository) -> None:
    assert await key_repository.list() == []
    keys = [make_key(f"owner-{n}", name=f"key {n}") for n in range(12)]
    for key in keys:
        await key_repository.add(key)
    assert await key_repository.list() == keys


async def test_two_keys_never_collide(key_repository: KeyRepository) -> None:
    first, second = make_key("alice"), make_key("bob", scopes=frozenset({Scope.WRITE}))
    assert first.id != second.id
    assert first.secret_hash != second.secret_hash
    await key_repository.add(first)
    await key_repository.add(second)
    assert await key_repository.find(first.secret_hash) == first
    assert await key_repository.find(second.secret_hash) == second
    await key_repository.revoke(first.id)
    assert await key_repository.find(second.secret_hash) == second


@pytest.mark.parametrize("shared", ["id", "secret_hash"])
async def test_a_key_sharing_an_id_or_a_secret_never_replaces_the_stored_one(
    key_repository: KeyRepository, shared: str
) -> None:
    stored = make_key("alice")
    await key_repository.add(stored)
    intruder = msgspec.structs.replace(
        make_key("mallory", scopes=ALL_SCOPES), **{shared: getattr(stored, shared)}
    )
    with pytest.raises(DuplicateKey):
        await key_repository.add(intruder)
    assert await key_repository.list() == [stored]
    assert await key_repository.find(stored.secret_hash) == stored
    assert await key_repository.find(intruder.secret_hash) == (stored if shared == "secret_hash" else None)


async def test_a_revoked_key_is_neither_found_nor_listed(key_repository: KeyRepository) -> None:
    kept, revoked = make_key("alice"), make_key("bob")
    await key_repository.add(kept)
    await key_repository.add(revoked)
    await key_repository.revoke(revoked.id)
    assert await key_repository.find(revoked.secret_hash) is None
    assert await key_repository.list() == [kept]
    assert await key_repository.find(kept.secret_hash) == kept


async def test_revoking_an_unknown_or_revoked_key_raises_key_not_found(key_repository: KeyRepository) -> None:
    with pytest.raises(KeyNotFound):
        await key_repository.revoke(new_key_id())
    key = make_key()
    await key_repository.add(key)
    await key_repository.revoke(key.id)
    with pytest.raises(KeyNotFound):
        await key_repository.revoke(key.id)


async def test_touch_records_the_last_use_where_find_and_list_see_it(key_repository: KeyRepository) -> None:
    key, other = make_key(), make_key("bob")
    await key_repository.add(key)
    await key_repository.add(other)
    first_use = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    await key_repository.touch(key.id, first_use)
    used = msgspec.structs.replace(key, last_used_at=first_use)
    assert await key_repository.find(key.secret_hash) == used
    assert await key_repository.list() == [used, other]
    later_use = first_use + timedelta(minutes=5)
    await key_repository.touch(key.id, later_use)
    found = await key_repository.find(key.secret_hash)
    assert found is not None
    assert found.last_used_at == later_use


async def test_touch_never_brings_a_revoked_or_unknown_key_into_being(key_repository: KeyRepository) -> None:
    key = make_key()
    await key_repository.add(key)
    await key_repository.revoke(key.id)
    await key_repository.touch(key.id, utc_now())
    await key_repository.touch(new_key_id(), utc_now())
    assert await key_repository.find(key.secret_hash) is None
    assert await key_repository.list() == []
    with pytest.raises(KeyNotFound):
        await key_repository.revoke(key.id)


async def test_an_expired_key_is_found_and_listed_with_its_expiry_for_the_caller_to_refuse(
    key_repository: KeyRepository,
) -> None:
    expired = make_key(expires_at=utc_now() - timedelta(seconds=1))
    await key_repository.add(expired)
    found = await key_repository.find(expired.secret_hash)
    assert found == expired
    assert found is not None
    assert found.expired(utc_now())
    assert await key_repository.list() == [expired]


async def test_check_passes_on_a_working_repository(key_repository: KeyRepository) -> None:
    await key_repository.check()
