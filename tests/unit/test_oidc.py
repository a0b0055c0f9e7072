"""OIDC bearer tokens, verified against keys an identity provider serves on loopback from the test."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from docpipe.adapters import oidc
from docpipe.config import OidcSettings, load_settings
from docpipe.container import Container, close, open_token_verifier
from docpipe.domain.errors import Unauthenticated
from docpipe.domain.identity import Principal, Scope, clean_owner

AUDIENCE = "docpipe"
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
ROTATED_RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})
EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
ED_KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"})
STRANGER_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
"""Not the provider's key, though it claims the provider's key id."""
GENEROUS = 30.0
"""Seconds within which a call must return for "it does not hang"; far above any fetch timeout here."""


class IdentityProvider:
    """An OpenID provider on loopback: its discovery document and key set, with a count of key set fetches,
    and ways to misbehave (stop, hang, serve another body)."""

    def __init__(self) -> None:
        self.keys: list[Key] = [RSA_KEY, EC_KEY, ED_KEY]
        self.key_set_fetches = 0
        self.key_set_body: bytes | None = None
        """Served instead of the keys when set."""
        self.hang = False
        self._released = asyncio.Event()
        """Ends the hanging answers, so that stopping need not wait for them."""
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(oidc.DISCOVERY_PATH, self._discovery)
        app.router.add_get("/keys", self._key_set)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._released.clear()

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.issuer, "jwks_uri": f"{self.issuer}/keys"})

    async def _key_set(self, request: web.Request) -> web.Response:
        self.key_set_fetches += 1
        if self.hang:
            await self._released.wait()
        if self.key_set_body is not None:
            return web.Response(body=self.key_set_body, content_type="application/json")
        keys = [key.as_dict(private=False) for key in self.keys]
        return web.json_response({"keys": keys}, headers={"Cache-Control": "public, max-age=600"})

    def claims(self, **changes: object) -> dict[str, object]:
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now,
            "exp": now + 300,
            "scope": "read write",
        }
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, key: Key = RSA_KEY, alg: str = "RS256", kid: str | None = None, **changes: object) -> str:
        """A token signed with ``key``; ``changes`` replace claims (``None`` removes one)."""
        header = {"alg": alg, "kid": kid or key.kid}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            return jwt.encode(header, self.claims(**changes), key, algorithms=[alg])


class Clock:
    """Monotonic seconds that move only when a test says so: the verifier paces refetches by it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, object], claims: dict[str, object], hmac_secret: bytes | None) -> str:
    """A token assembled by hand, as an attacker would: unsigned, or HMAC-signed with ``hmac_secret``."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = (
        b"" if hmac_secret is None else hmac.new(hmac_secret, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{_b64(signature)}"


Opener = Callable[..., AbstractAsyncContextManager[oidc.OidcTokenVerifier]]


@pytest.fixture
async def provider() -> AsyncIterator[IdentityProvider]:
    provider = IdentityProvider()
    await provider.start()
    yield provider
    await provider.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def open_verifier(clock: Clock) -> Opener:
    def open_(issuer: str, owner_claim: str = "sub") -> AbstractAsyncContextManager[oidc.OidcTokenVerifier]:
        settings = OidcSettings(issuer=issuer, audience=AUDIENCE, owner_claim=owner_claim)
        return asynccontextmanager(oidc.open_token_verifier)(settings, fetch_timeout=1.0, clock=clock)

    return open_


@pytest.fixture
async def verifier(
    provider: IdentityProvider, open_verifier: Opener
) -> AsyncIterator[oidc.OidcTokenVerifier]:
    async with open_verifier(provider.issuer) as verifier:
        yield verifier


async def refused(verifier: oidc.OidcTokenVerifier, token: str) -> str:
    """The reason ``token`` is refused, which must come soon."""
    with pytest.raises(Unauthenticated) as refusal:
        await asyncio.wait_for(verifier.verify(token), GENEROUS)
    return str(refusal.value)


async def test_a_good_token_is_its_subject_with_its_scopes(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier
) -> None:
    principal = await verifier.verify(provider.token())
    assert principal == Principal("alice", frozenset({Scope.READ, Scope.WRITE}))


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (RSA_KEY, "RS256"),
        (RSA_KEY, "RS512"),
        (RSA_KEY, "PS384"),
        (EC_KEY, "ES256"),
        (ED_KEY, "EdDSA"),
    ],
)
async def test_every_allowed_algorithm_verifies(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier, key: Key, alg: str
) -> None:
    assert (await verifier.verify(provider.token(key, alg, sub="bob"))).owner == "bob"


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        ({"scope": "openid read profile delete"}, {Scope.READ, Scope.DELETE}),
        ({"scope": None, "scp": ["write", "share", "email", 7]}, {Scope.WRITE, Scope.SHARE}),
        ({"scope": None, "scp": "admin read"}, {Scope.ADMIN, Scope.READ}),
        ({"scope": "READ Write"}, set()),
        ({"scope": None}, set()),
    ],
)
async def test_scopes_are_docpipes_words_of_scope_and_scp(
    provider: IdentityProvider,
    verifier: oidc.OidcTokenVerifier,
    claims: dict[str, Any],
    scopes: set[Scope],
) -> None:
    assert (await verifier.verify(provider.token(**claims))).scopes == scopes


async def test_the_owner_may_come_from_another_claim(
    provider: IdentityProvider, open_verifier: Opener
) -> None:
    async with open_verifier(provider.issuer, owner_claim="tenant") as verifier:
        principal = await verifier.verify(provider.token(sub="user-123", tenant="acme"))
        assert principal.owner == "acme"
        assert "'tenant'" in await refused(verifier, provider.token(sub="user-123"))
        assert "'tenant'" in await refused(verifier, provider.token(tenant=["acme"]))


@pytest.mark.parametrize("owner", ["auth0|5f7c8ec7", "a" * 65, "..", "", "alice@example.com"])
async def test_a_claim_that_is_no_owner_is_refused(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier, owner: str
) -> None:
    await refused(verifier, provider.token(sub=owner))


async def test_tokens_with_times_within_the_leeway_verify(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier
) -> None:
    now = int(time.time())
    assert await verifier.verify(provider.token(exp=now - 5, nbf=now + 5, iat=now + 5))


async def test_an_audience_list_holding_docpipes_verifies(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier
) -> None:
    assert await verifier.verify(provider.token(aud=["other-api", AUDIENCE]))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param(lambda now: {"iss": "https://idp.example"}, id="another issuer"),
        pytest.param(lambda now: {"iss": None}, id="no issuer"),
        pytest.param(lambda now: {"aud": "other-api"}, id="another audience"),
        pytest.param(lambda now: {"aud": ["other-api", "third-api"]}, id="audiences without docpipe"),
        pytest.param(lambda now: {"aud": None}, id="no audience"),
        pytest.param(lambda now: {"exp": now - 120}, id="expired"),
        pytest.param(lambda now: {"exp": None}, id="no expiry"),
        pytest.param(lambda now: {"exp": "tomorrow"}, id="expiry not a number"),
        pytest.param(lambda now: {"nbf": now + 120}, id="not yet valid"),
        pytest.param(lambda now: {"iat": now + 120}, id="issued in the future"),
        pytest.param(lambda now: {"sub": None}, id="no subject"),
    ],
)
async def test_claims_docpipe_cannot_accept_are_refused(
    provider: IdentityProvider,
    verifier: oidc.OidcTokenVerifier,
    changes: Callable[[int], dict[str, Any]],
) -> None:
    await refused(verifier, provider.token(**changes(int(time.time()))))


async def test_the_issuer_must_match_exactly(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier
) -> None:
    await refused(verifier, provider.token(iss=provider.issuer + "/"))


async def test_a_bad_signature_is_refused(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier
) -> None:
    assert "signature" in await refused(verifier, provider.token(STRANGER_KEY))
    header, _, signature = provider.token().split(".")
    payload = _b64(json.dumps(provider.claims(sub="mallory")).encode())
    assert "signature" in await refused(verifier, f"{header}.{payload}.{signature}")


async def test_a_key_of_another_type_than_the_algorithm_is_refused(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier
) -> None:
    """A token naming the EC key's id but signed RS256: the key cannot serve that algorithm."""
    await refused(verifier, provider.token(RSA_KEY, "RS256", kid="ec-1"))


async def test_unsigned_and_hmac_tokens_are_refused_without_a_fetch(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier, clock: Clock
) -> None:
    """``alg: none``, and HS256 "signed" with the provider's public key as the secret (the algorithm
    confusion attack), whatever key id they name."""
    await verifier.verify(provider.token())
    fetches = provider.key_set_fetches
    clock.advance(oidc.REFETCH_INTERVAL)
    claims = provider.claims(sub="mallory")
    public_pem = RSA_KEY.as_pem(private=False)
    public_jwk = json.dumps(RSA_KEY.as_dict(private=False)).encode()
    for kid in ("rsa-1", "unknown"):
        await refused(verifier, forged({"alg": "none", "kid": kid}, claims, None))
        await refused(verifier, forged({"alg": "None", "kid": kid}, claims, None))
        await refused(verifier, forged({"alg": "HS256", "kid": kid}, claims, public_pem))
        await refused(verifier, forged({"alg": "HS256", "kid": kid}, claims, public_jwk))
    assert provider.key_set_fetches == fetches


@pytest.mark.parametrize(
    "token",
    [
        "",
        "dp_notajwt",
        "a.b.c",
        "a.b.c.d.e",
        "x" * (oidc.MAX_TOKEN_BYTES + 1),
        "eyJhbGciOiJSUzI1NiJ9.é.x",
        _b64(b'"alg"') + ".e30.AAAA",
        _b64(b'["alg"]') + ".e30.AAAA",
    ],
)
async def test_malformed_tokens_are_refused(verifier: oidc.OidcTokenVerifier, token: str) -> None:
    await refused(verifier, token)


async def test_a_huge_well_formed_token_is_refused(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier
) -> None:
    assert "longer" in await refused(verifier, provider.token(padding="x" * oidc.MAX_TOKEN_BYTES))


async def test_an_unknown_key_id_is_refused(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier
) -> None:
    await refused(verifier, provider.token(kid="nobody-knows"))


async def test_a_rotated_key_verifies_after_one_refetch_and_a_retired_one_stops(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier, clock: Clock
) -> None:
    old_token = provider.token()
    await verifier.verify(old_token)
    fetches = provider.key_set_fetches
    provider.keys = [ROTATED_RSA_KEY, EC_KEY]
    clock.advance(oidc.REFETCH_INTERVAL)

    assert (await verifier.verify(provider.token(ROTATED_RSA_KEY))).owner == "alice"
    assert provider.key_set_fetches == fetches + 1
    await refused(verifier, old_token)


async def test_unknown_key_ids_fetch_at_most_once_per_interval(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier, clock: Clock
) -> None:
    await verifier.verify(provider.token())
    fetches = provider.key_set_fetches
    assert fetches == 1

    def flood() -> list[str]:
        return [provider.token(kid=str(uuid.uuid4())) for _ in range(50)]

    await refused(verifier, provider.token(kid="early"))
    assert provider.key_set_fetches == fetches, "the first fetch was just now"

    clock.advance(oidc.REFETCH_INTERVAL)
    tokens = flood()
    results = await asyncio.wait_for(
        asyncio.gather(*(verifier.verify(token) for token in tokens), return_exceptions=True), GENEROUS
    )
    assert all(isinstance(result, Unauthenticated) for result in results)
    for token in flood():
        await refused(verifier, token)
    clock.advance(oidc.REFETCH_INTERVAL - 1)
    await refused(verifier, provider.token(kid="still-too-soon"))
    assert provider.key_set_fetches == fetches + 1

    clock.advance(1)
    await refused(verifier, provider.token(kid="later"))
    assert provider.key_set_fetches == fetches + 2


async def test_known_keys_keep_verifying_while_the_provider_is_down(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier, clock: Clock
) -> None:
    await verifier.verify(provider.token())
    await provider.stop()

    for _ in range(3):
        clock.advance(oidc.REFETCH_INTERVAL)
        await refused(verifier, provider.token(ROTATED_RSA_KEY))
        principal = await asyncio.wait_for(verifier.verify(provider.token(EC_KEY, "ES256")), GENEROUS)
        assert principal.owner == "alice"


async def test_a_provider_that_hangs_delays_no_token_for_long(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier, clock: Clock
) -> None:
    """The fetch gives up after its timeout; tokens of known keys never wait for it."""
    await verifier.verify(provider.token())
    provider.hang = True
    clock.advance(oidc.REFETCH_INTERVAL)

    fetch = asyncio.create_task(verifier.verify(provider.token(ROTATED_RSA_KEY)))
    assert (await asyncio.wait_for(verifier.verify(provider.token()), GENEROUS)).owner == "alice"
    with pytest.raises(Unauthenticated):
        await asyncio.wait_for(fetch, GENEROUS)
    assert (await verifier.verify(provider.token())).owner == "alice"


@pytest.mark.parametrize(
    "body",
    [
        b"<html>maintenance</html>",
        b'{"keys": []}',
        b'{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "rsa-2"}]}',
        b'{"keys": [{"kty": "RSA", "kid": "rsa-2", "n": 5}]}',
        json.dumps({"keys": [ROTATED_RSA_KEY.as_dict(private=False)] * 2000}).encode(),
    ],
    ids=["not json", "no keys", "only a shared secret", "broken key", "too large"],
)
async def test_a_key_set_docpipe_cannot_use_keeps_the_last_good_one(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier, clock: Clock, body: bytes
) -> None:
    await verifier.verify(provider.token())
    provider.key_set_body = body
    clock.advance(oidc.REFETCH_INTERVAL)

    await refused(verifier, provider.token(ROTATED_RSA_KEY))
    assert (await verifier.verify(provider.token())).owner == "alice"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_docpipe_starts_while_the_provider_is_down_and_verifies_once_it_is_up(
    provider: IdentityProvider, open_verifier: Opener, clock: Clock
) -> None:
    """Start-up does not wait for the provider: tokens are refused until its keys are fetched."""
    await provider.stop()
    provider.port = _free_port()
    async with open_verifier(provider.issuer) as verifier:
        await refused(verifier, provider.token())
        await provider.start()
        clock.advance(oidc.REFETCH_INTERVAL)
        assert (await verifier.verify(provider.token())).owner == "alice"


async def test_keys_arrive_by_themselves_once_the_provider_is_up(
    provider: IdentityProvider, open_verifier: Opener
) -> None:
    """No token may fetch here (the monotonic clock stands still): the retries in the background do."""
    await provider.stop()
    provider.port = _free_port()
    async with open_verifier(provider.issuer) as verifier:
        await refused(verifier, provider.token())
        await provider.start()
        async with asyncio.timeout(GENEROUS):
            while True:
                try:
                    assert (await verifier.verify(provider.token())).owner == "alice"
                    break
                except Unauthenticated:
                    await asyncio.sleep(0.1)


async def test_a_provider_naming_another_issuer_is_not_trusted(
    provider: IdentityProvider, open_verifier: Opener
) -> None:
    """Its discovery document says ``http://127.0.0.1:…``; docpipe was configured with ``localhost``."""
    issuer = f"http://localhost:{provider.port}"
    async with open_verifier(issuer) as verifier:
        await refused(verifier, provider.token(iss=issuer))
    assert provider.key_set_fetches == 0


@pytest.mark.parametrize(
    ("cache_control", "seconds"),
    [
        ("", oidc.REFRESH_INTERVAL),
        ("no-cache", oidc.REFRESH_INTERVAL),
        ("public, max-age=1200", 1200),
        ("max-age=0", oidc.SHORTEST_REFRESH),
        ("max-age=86400, must-revalidate", oidc.REFRESH_INTERVAL),
        ("s-maxage=10", oidc.REFRESH_INTERVAL),
    ],
)
def test_the_key_set_is_refreshed_per_its_max_age_within_bounds(cache_control: str, seconds: float) -> None:
    assert oidc.fresh_for(cache_control) == seconds


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(["scope", "scp", "sub"]), _json | st.sampled_from(list(Scope))))
def test_scopes_are_only_docpipes_whatever_the_claims_hold(claims: dict[str, Any]) -> None:
    assert oidc.scopes_of(claims) <= set(Scope)


def _segment(value: object) -> str:
    return _b64(json.dumps(value).encode())


_tokens = (
    st.text(max_size=300)
    | st.builds(
        lambda header, claims, signature: f"{_segment(header)}.{_segment(claims)}.{_b64(signature)}",
        st.dictionaries(st.sampled_from(["alg", "kid", "crit", "typ", "b64"]), _json),
        _json,
        st.binary(max_size=300),
    )
    | st.builds(
        lambda header, claims: forged({"alg": "RS256", "kid": "rsa-1", **header}, claims, None),
        st.dictionaries(st.sampled_from(["crit", "typ", "b64", "jku", "x5c", "zip", "enc"]), _json),
        st.dictionaries(st.sampled_from(["iss", "aud", "exp", "nbf", "iat", "sub"]), _json),
    )
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(_tokens)
async def test_anything_that_is_not_a_good_token_is_refused_and_nothing_else(
    verifier: oidc.OidcTokenVerifier, token: str
) -> None:
    with pytest.raises(Unauthenticated):
        await asyncio.wait_for(verifier.verify(token), GENEROUS)


async def test_the_container_has_no_verifier_while_oidc_is_off() -> None:
    container = Container(settings=load_settings({}))
    assert await open_token_verifier(container) is None
    await close(container)


async def test_the_container_opens_the_verifier_and_closes_it(provider: IdentityProvider) -> None:
    environ = {"DOCPIPE_OIDC_ISSUER": provider.issuer, "DOCPIPE_OIDC_AUDIENCE": AUDIENCE}
    container = Container(settings=load_settings(environ))
    verifier = await open_token_verifier(container)
    assert verifier is not None
    assert (await verifier.verify(provider.token())).owner == "alice"
    await close(container)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["iss", "aud", "exp", "nbf", "iat", "sub", "scope", "scp", "jti"]), _json, max_size=4
    )
)
async def test_signed_tokens_with_any_claims_are_a_principal_or_refused(
    provider: IdentityProvider, verifier: oidc.OidcTokenVerifier, changes: dict[str, Any]
) -> None:
    try:
        principal = await asyncio.wait_for(verifier.verify(provider.token(**changes)), GENEROUS)
    except Unauthenticated:
        return
    assert clean_owner(principal.owner) == principal.owner
    assert principal.scopes <= set(Scope)
