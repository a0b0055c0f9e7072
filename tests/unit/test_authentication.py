"""The authenticator: which credentials stand for whom, how long a lookup is trusted, when use is recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.types import Scope as AsgiScope

from docpipe.adapters.memory import MemoryKeyRepository
from docpipe.config import Secret
from docpipe.domain import authentication
from docpipe.domain.authentication import ADMIN, CACHE_ENTRIES, CACHE_SECONDS, TOUCH_EVERY, Authenticator
from docpipe.domain.errors import StoreRole, StoreUnavailable, Unauthenticated
from docpipe.domain.identity import Principal, Scope
from docpipe.domain.keys import ApiKey, hash_secret, new_secret
from docpipe.entrypoints.http.authentication import bearer_credential

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clocks:
    """The wall clock (expiry, last use) and the monotonic one (the cache), moved by hand."""

    def __init__(self) -> None:
        self.now = T0
        self.seconds = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.seconds += seconds


class CountingKeys(MemoryKeyRepository):
    def __init__(self) -> None:
        super().__init__()
        self.finds = 0
        self.touches: list[tuple[str, datetime]] = []

    async def find(self, secret_hash: str) -> ApiKey | None:
        self.finds += 1
        return await super().find(secret_hash)

    async def touch(self, key_id: str, when: datetime) -> None:
        self.touches.append((key_id, when))
        await super().touch(key_id, when)


async def stored(keys: MemoryKeyRepository, *scopes: Scope, expires_at: datetime | None = None) -> str:
    secret = new_secret()
    await keys.add(
        ApiKey(
            id=f"key-{len(await keys.list())}",
            secret_hash=hash_secret(secret),
            owner="team",
            scopes=frozenset(scopes),
            created_at=T0,
            expires_at=expires_at,
        )
    )
    return secret


def authenticator(
    keys: MemoryKeyRepository,
    clocks: Clocks,
    *,
    admin_key: str | None = None,
    verifier: Verifier | None = None,
) -> Authenticator:
    is_admin_key = None if admin_key is None else Secret(admin_key).matches
    return Authenticator(
        keys, is_admin_key=is_admin_key, verifier=verifier, clock=clocks.wall, monotonic=clocks.monotonic
    )


async def test_a_stored_key_stands_for_its_owner_and_scopes() -> None:
    keys, clocks = CountingKeys(), Clocks()
    secret = await stored(keys, Scope.READ)
    principal = await authenticator(keys, clocks).authenticate(secret)
    assert principal == Principal("team", frozenset({Scope.READ}))


@pytest.mark.parametrize(
    "credential",
    # An id of its own: pytest-xdist workers must collect the same test names, and the key is new in each.
    [None, "", "nonsense", "dp_" + "A" * 36, pytest.param(new_secret(), id="well-formed-unknown-key")],
)
async def test_missing_malformed_and_unknown_credentials_are_refused(credential: str | None) -> None:
    with pytest.raises(Unauthenticated):
        await authenticator(CountingKeys(), Clocks()).authenticate(credential)


async def test_the_admin_key_is_defaults_with_every_scope_whatever_its_shape() -> None:
    auth = authenticator(CountingKeys(), Clocks(), admin_key="correct horse battery staple")
    assert await auth.authenticate("correct horse battery staple") == ADMIN
    for wrong in ("correct horse battery stapl", "correct horse battery staple ", "é", "ключ"):
        with pytest.raises(Unauthenticated):
            await auth.authenticate(wrong)


async def test_an_expired_key_is_refused() -> None:
    keys, clocks = CountingKeys(), Clocks()
    secret = await stored(keys, Scope.READ, expires_at=T0 + timedelta(seconds=30))
    auth = authenticator(keys, clocks)
    assert await auth.authenticate(secret)
    clocks.advance(30)
    with pytest.raises(Unauthenticated, match="expired"):
        await auth.authenticate(secret)


async def test_a_lookup_is_trusted_for_less_than_the_cache_time_so_a_revocation_lands_within_it() -> None:
    keys, clocks = CountingKeys(), Clocks()
    secret = await stored(keys, Scope.READ)
    auth = authenticator(keys, clocks)
    for _ in range(5):
        await auth.authenticate(secret)
    assert keys.finds == 1
    await keys.revoke("key-0")
    clocks.advance(CACHE_SECONDS - 0.001)
    assert await auth.authenticate(secret)  # still the answer read a moment ago
    clocks.advance(0.001)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(secret)
    assert keys.finds == 2


async def test_an_unknown_key_is_looked_up_at_most_once_per_cache_time() -> None:
    keys, clocks = CountingKeys(), Clocks()
    unknown = new_secret()
    auth = authenticator(keys, clocks)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await auth.authenticate(unknown)
    assert keys.finds == 1


async def test_the_cache_holds_at_most_its_bound_and_drops_the_least_recently_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(authentication, "CACHE_ENTRIES", 3)
    keys, clocks = CountingKeys(), Clocks()
    secrets = [await stored(keys, Scope.READ) for _ in range(4)]
    auth = authenticator(keys, clocks)
    for secret in secrets[:3]:
        await auth.authenticate(secret)
    await auth.authenticate(secrets[0])  # the most recently used now; secrets[1] the least
    await auth.authenticate(secrets[3])
    assert keys.finds == 4
    await auth.authenticate(secrets[0])
    assert keys.finds == 4
    await auth.authenticate(secrets[1])
    assert keys.finds == 5
    assert CACHE_ENTRIES >= 1024


async def test_use_is_recorded_at_most_once_per_interval() -> None:
    keys, clocks = CountingKeys(), Clocks()
    secret = await stored(keys, Scope.READ)
    auth = authenticator(keys, clocks)
    await auth.authenticate(secret)
    for _ in range(10):
        clocks.advance(CACHE_SECONDS)  # every lookup goes to the repository again
        await auth.authenticate(secret)
    await auth.close()
    assert keys.touches == [("key-0", T0)]
    clocks.advance(TOUCH_EVERY.total_seconds())
    await auth.authenticate(secret)
    await auth.close()
    assert [when for _, when in keys.touches] == [T0, clocks.now]
    assert (await keys.list())[0].last_used_at == clocks.now


async def test_a_use_recorded_by_another_replica_is_not_recorded_again() -> None:
    keys, clocks = CountingKeys(), Clocks()
    secret = await stored(keys, Scope.READ)
    await MemoryKeyRepository.touch(keys, "key-0", T0 - timedelta(seconds=10))
    auth = authenticator(keys, clocks)
    await auth.authenticate(secret)
    await auth.close()
    assert keys.touches == []


class StuckTouch(CountingKeys):
    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def touch(self, key_id: str, when: datetime) -> None:
        await self.release.wait()
        raise StoreUnavailable(StoreRole.REPOSITORY, "down")


async def test_a_slow_or_failing_record_of_use_neither_delays_nor_fails_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys, clocks = StuckTouch(), Clocks()
    secret = await stored(keys, Scope.READ)
    auth = authenticator(keys, clocks)
    async with asyncio.timeout(5):  # the touch never finishes on its own
        assert await auth.authenticate(secret)
    keys.release.set()
    await auth.close()
    assert "could not record the use of API key key-0" in caplog.text


class Verifier:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def verify(self, token: str) -> Principal:
        self.seen.append(token)
        return Principal("oidc-user", frozenset({Scope.READ}))


async def test_other_tokens_go_to_the_verifier_and_keys_never_do() -> None:
    keys, clocks, verifier = CountingKeys(), Clocks(), Verifier()
    auth = authenticator(keys, clocks, verifier=verifier)
    assert (await auth.authenticate("eyJ.a.b")).owner == "oidc-user"
    with pytest.raises(Unauthenticated):
        await auth.authenticate(new_secret())
    assert verifier.seen == ["eyJ.a.b"]


# -- the Authorization header --------------------------------------------------------------------


def _scope(*values: bytes) -> AsgiScope:
    return cast("AsgiScope", {"headers": [(b"authorization", value) for value in values]})


@given(st.binary(max_size=200))
def test_any_authorization_value_parses_without_error(value: bytes) -> None:
    credential = bearer_credential(_scope(value))
    assert credential is None or (credential and value.lower().startswith(b"bearer "))


@given(
    st.from_regex(r"[A-Za-z0-9._~+/-]+=*", fullmatch=True), st.sampled_from(["Bearer", "bearer", "BEARER"])
)
def test_a_bearer_credential_is_found_whatever_the_schemes_case(token: str, scheme: str) -> None:
    assert bearer_credential(_scope(f"{scheme} {token}".encode())) == token


def test_no_single_bearer_header_means_no_credential() -> None:
    for values in ((), (b"Bearer a", b"Bearer a"), (b"Basic a",), (b"Bearer",), (b"Bearer   ",)):
        assert bearer_credential(_scope(*values)) is None


def test_other_headers_are_not_read() -> None:
    scope = cast("AsgiScope", {"headers": [(b"x-authorization", b"Bearer a"), (b"cookie", b"Bearer b")]})
    assert bearer_credential(scope) is None
