"""Bearer tokens from an OpenID Connect identity provider: JWTs checked against the signing keys its
discovery document names.

The keys are fetched in the background and kept: when a refresh fails (the provider is down, answers
garbage), the last good key set stays in use, so tokens signed by known keys keep verifying. A token
signed by a key not in the set may trigger a refetch (the provider rotated its keys), at most one per
``REFETCH_INTERVAL``, so a flood of tokens with made-up key ids cannot turn docpipe against the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import msgspec
from joserfc import jws, jwt
from joserfc.errors import ClaimError, JoseError, SecurityWarning
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from docpipe.config import OidcSettings, untrusted_url_reason
from docpipe.domain.errors import InvalidInput, Unauthenticated
from docpipe.domain.identity import Principal, Scope, clean_owner

ALGORITHMS = (
    *("RS256", "RS384", "RS512"),
    *("PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512"),
    "EdDSA",
)
"""Signature algorithms accepted: asymmetric only. ``none`` and the HMAC ones (HS*) are refused, so a
token cannot be "signed" with nothing, or with the provider's public key used as an HMAC secret."""
_KEY_TYPES: Mapping[str, type[RSAKey | ECKey | OKPKey]] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}
"""JWK types read from the key set; any other (``oct``: a shared secret) is skipped."""

MAX_TOKEN_BYTES = 16 * 1024
MAX_DOCUMENT_BYTES = 256 * 1024
"""Largest discovery document or key set read; real ones are a few KiB."""
FETCH_TIMEOUT = 5.0
"""Seconds one request to the identity provider may take, connection included."""
CLOCK_LEEWAY = 30
"""Seconds of clock skew allowed when checking ``exp``, ``nbf`` and ``iat``."""
REFETCH_INTERVAL = 30.0
"""Least seconds between two fetches that tokens with an unknown key id may cause."""
REFRESH_INTERVAL = 3600.0
"""Seconds between refreshes when the key set's ``Cache-Control: max-age`` says nothing (it can only
shorten this, down to ``SHORTEST_REFRESH``)."""
SHORTEST_REFRESH = 300.0
FIRST_RETRY = 1.0
"""Seconds before the first retry of a failed refresh; each failure doubles it up to ``REFETCH_INTERVAL``."""
DISCOVERY_PATH = "/.well-known/openid-configuration"

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age=(\d+)", re.IGNORECASE)
_SCOPES = {scope.value: scope for scope in Scope}
_log = logging.getLogger(__name__)


class _FetchFailed(Exception):
    """The identity provider's answer cannot be used (a status, a size, a mismatch)."""


class _Discovery(msgspec.Struct):
    issuer: str
    jwks_uri: str


class _KeySetDocument(msgspec.Struct):
    keys: list[dict[str, Any]]


class _SigningKeys:
    """One fetched key set, found by key id; a token without a key id is checked against a set's only key."""

    def __init__(self, keys: list[tuple[str | None, Key]]) -> None:
        self.count = len(keys)
        self._by_kid = {kid: key for kid, key in keys if kid is not None}
        self._sole = keys[0][1] if len(keys) == 1 else None

    def find(self, kid: str | None) -> Key | None:
        return self._sole if kid is None else self._by_kid.get(kid)

    @classmethod
    def parse(cls, body: bytes) -> _SigningKeys:
        """The signing keys of a JWKS document; keys docpipe cannot use are skipped (RFC 7517 section 5)."""
        keys: list[tuple[str | None, Key]] = []
        for data in msgspec.json.decode(body, type=_KeySetDocument).keys:
            key_type = _KEY_TYPES.get(data.get("kty", ""))
            if key_type is None or data.get("use", "sig") != "sig":
                continue
            try:
                keys.append((data.get("kid"), key_type.import_key(data)))
            except (JoseError, ValueError, KeyError, TypeError) as error:
                _log.warning("skipping key %r of the identity provider's key set: %s", data.get("kid"), error)
        if not keys:
            raise _FetchFailed("the key set holds no signing key docpipe can use")
        return cls(keys)


def scopes_of(claims: Mapping[str, object]) -> frozenset[Scope]:
    """docpipe's scopes among the words of ``scope`` (a space-separated string) and ``scp`` (a list, or a
    string like ``scope``); words that name no docpipe scope are ignored."""
    words: list[object] = []
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            words.extend(value.split())
        elif isinstance(value, list):
            words.extend(value)
    return frozenset(_SCOPES[word] for word in words if isinstance(word, str) and word in _SCOPES)


def fresh_for(cache_control: str) -> float:
    """Seconds until the next refresh of a key set served with ``cache_control``: its max-age, within
    ``SHORTEST_REFRESH`` and ``REFRESH_INTERVAL``."""
    max_age = _MAX_AGE.search(cache_control)
    if max_age is None:
        return REFRESH_INTERVAL
    return min(max(float(max_age.group(1)), SHORTEST_REFRESH), REFRESH_INTERVAL)


class OidcTokenVerifier:
    """Verifies JWTs from one issuer for one audience, with that issuer's published keys.

    ``clock`` (monotonic seconds) paces refetches; tokens' times are checked against the wall clock.
    """

    def __init__(
        self,
        settings: OidcSettings,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._session = session
        self._clock = clock
        self._discovery_url = settings.issuer.rstrip("/") + DISCOVERY_PATH
        self._claims = jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY,
            iss={"essential": True, "value": settings.issuer},
            aud={"essential": True, "value": settings.audience},
            exp={"essential": True},
        )
        self._keys: _SigningKeys | None = None
        self._last_fetch: float | None = None
        self._fetching: asyncio.Task[float | None] | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Fetch the keys now, in the background, and keep them fresh until ``close``."""
        self._refreshing = asyncio.create_task(self._keep_fresh())

    async def close(self) -> None:
        for task in (self._refreshing, self._fetching):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def verify(self, token: str) -> Principal:
        raw = token.encode() if token.isascii() else b""
        kid = self._key_id(raw)
        key = self._find(kid)
        if key is None and self._may_refetch():
            await self._refresh()
            key = self._find(kid)
        if key is None:
            raise Unauthenticated("the token is not signed by a key its issuer publishes")
        claims = self._verified_claims(raw, key)
        return Principal(self._owner(claims), scopes_of(claims))

    def _find(self, kid: str | None) -> Key | None:
        return None if self._keys is None else self._keys.find(kid)

    @staticmethod
    def _key_id(raw: bytes) -> str | None:
        """The ``kid`` of a well-formed token (JWTs are ASCII) whose algorithm is allowed; checked before
        any key is looked up, so that no malformed token can cause a fetch."""
        if len(raw) > MAX_TOKEN_BYTES:
            raise Unauthenticated(f"the token is longer than {MAX_TOKEN_BYTES} bytes")
        try:
            header: object = jws.extract_compact(raw).headers()
        except JoseError:
            raise Unauthenticated("the token is not a signed JWT") from None
        if not isinstance(header, dict):
            raise Unauthenticated("the token's header is not a JSON object")
        if "crit" in header:
            # RFC 7515 section 4.1.11: extensions marked critical must be understood; docpipe knows none.
            raise Unauthenticated("the token needs extensions docpipe does not know (crit)")
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated(f"the token's algorithm is not one of {', '.join(ALGORITHMS)}")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("the token's key id is not a string")
        return kid

    def _verified_claims(self, raw: bytes, key: Key) -> dict[str, Any]:
        try:
            with warnings.catch_warnings():
                # RFC 9864 deprecates the name "EdDSA" for the fully specified "Ed25519" and "Ed448";
                # verifying with it is still sound, and providers still issue it.
                warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)
                claims = jwt.decode(raw, key, algorithms=ALGORITHMS).claims
            self._claims.validate(claims)
        except ClaimError as error:
            raise Unauthenticated(f"the token is not accepted: {error.description}") from None
        except JoseError:
            raise Unauthenticated("the token's signature does not verify") from None
        return claims

    def _owner(self, claims: Mapping[str, object]) -> str:
        name = self._settings.owner_claim
        value = claims.get(name)
        if not isinstance(value, str):
            raise Unauthenticated(f"the token has no {name!r} claim naming its owner")
        try:
            return clean_owner(value)
        except InvalidInput as error:
            raise Unauthenticated(f"the token's {name!r} claim is not an owner: {error}") from None

    def _may_refetch(self) -> bool:
        """Whether a token with an unknown key id may fetch the keys: it joins a fetch in flight, or
        starts one when none started within ``REFETCH_INTERVAL``."""
        if self._fetching is not None and not self._fetching.done():
            return True
        return self._last_fetch is None or self._clock() - self._last_fetch >= REFETCH_INTERVAL

    async def _refresh(self) -> float | None:
        """Fetch the keys, or join the fetch in flight; the seconds they stay fresh, ``None`` on failure.
        A caller cancelled while waiting leaves the fetch running for the others."""
        if self._fetching is None or self._fetching.done():
            self._last_fetch = self._clock()
            self._fetching = asyncio.create_task(self._fetch())
        return await asyncio.shield(self._fetching)

    async def _keep_fresh(self) -> None:
        failures = 0
        while True:
            fresh_for = await self._refresh()
            if fresh_for is None:
                failures += 1
                await asyncio.sleep(min(FIRST_RETRY * 2 ** (failures - 1), REFETCH_INTERVAL))
            else:
                failures = 0
                await asyncio.sleep(fresh_for)

    async def _fetch(self) -> float | None:
        """Replace the keys by the provider's current ones. Every failure of the provider ends here: it is
        logged, and the keys held stay in use."""
        try:
            body, _ = await self._get(self._discovery_url)
            discovery = msgspec.json.decode(body, type=_Discovery)
            if discovery.issuer != self._settings.issuer:
                raise _FetchFailed(
                    f"the discovery document names the issuer {discovery.issuer!r},"
                    f" not DOCPIPE_OIDC_ISSUER {self._settings.issuer!r}"
                )
            reason = untrusted_url_reason(discovery.jwks_uri)
            if reason is not None:
                raise _FetchFailed(f"the jwks_uri {reason}")
            body, cache_control = await self._get(discovery.jwks_uri)
            keys = _SigningKeys.parse(body)
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError, _FetchFailed) as error:
            held = (
                "tokens are refused until it answers"
                if self._keys is None
                else f"the {self._keys.count} keys fetched before stay in use"
            )
            _log.warning(
                "cannot fetch the keys of identity provider %s (%s: %s); %s",
                self._settings.issuer,
                type(error).__name__,
                error,
                held,
            )
            return None
        self._keys = keys
        return fresh_for(cache_control)

    async def _get(self, url: str) -> tuple[bytes, str]:
        """The body of a 200 answer, at most ``MAX_DOCUMENT_BYTES``, and its ``Cache-Control``."""
        async with self._session.get(url, allow_redirects=False) as response:
            if response.status != 200:
                raise _FetchFailed(f"{url} answered {response.status}")
            if (response.content_length or 0) > MAX_DOCUMENT_BYTES:
                raise _FetchFailed(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise _FetchFailed(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
            return bytes(body), response.headers.get("Cache-Control", "")


async def open_token_verifier(
    settings: OidcSettings,
    *,
    fetch_timeout: float = FETCH_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[OidcTokenVerifier]:
    """A verifier whose first fetch of the keys is under way, not awaited: docpipe starts while the
    identity provider is unreachable, refuses tokens until it answers, and keeps retrying."""
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=fetch_timeout),
        connector=aiohttp.TCPConnector(limit=2),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"Accept": "application/json"},
        # HTTPS_PROXY and NO_PROXY apply, as they do to the AWS SDK: the provider is often outside.
        trust_env=True,
    ) as session:
        verifier = OidcTokenVerifier(settings, session, clock=clock)
        verifier.start()
        try:
            yield verifier
        finally:
            await verifier.close()
