"""The API key use cases: issue a key (its secret shown once, then only its hash is kept), list, revoke.

Who may call them (the ``admin`` scope over HTTP, anyone with the data folder or the AWS credentials on
the command line) is the entrypoints' business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from docpipe.domain.errors import InvalidInput, KeyNotFound
from docpipe.domain.identity import Scope, clean_owner
from docpipe.domain.keys import ApiKey, hash_secret, is_key_id, new_key_id, new_secret
from docpipe.domain.model import utc_now
from docpipe.domain.ports import KeyRepository

MAX_NAME_LENGTH = 100
MIN_LIFETIME_SECONDS = 1
MAX_LIFETIME_SECONDS = 10 * 365 * 24 * 3600
"""Ten years: the longest ``expires_in`` a key may be issued with (without one, a key never expires)."""


class IssuedKey(NamedTuple):
    """A key just stored, and its secret: the only time anyone sees the secret."""

    key: ApiKey
    secret: str


class KeyService:
    """Issues, lists and revokes the keys of ``keys``; ``clock`` lets tests fix the time."""

    def __init__(self, keys: KeyRepository, clock: Callable[[], datetime] = utc_now) -> None:
        self._keys = keys
        self._clock = clock

    async def create(
        self, owner: str, scopes: Iterable[str], *, name: str = "", expires_in: int | None = None
    ) -> IssuedKey:
        """A new key of ``owner`` with ``scopes`` (at least one), a ``name`` for people (at most
        ``MAX_NAME_LENGTH`` characters) and, with ``expires_in``, an expiry that many seconds from now.

        Raises ``InvalidInput`` naming what is wrong, before anything is stored."""
        key_owner = clean_owner(owner)
        key_scopes = clean_scopes(scopes)
        key_name = clean_name(name)
        now = self._clock()
        expires_at = None if expires_in is None else now + timedelta(seconds=clean_lifetime(expires_in))
        secret = new_secret()
        key = ApiKey(
            id=new_key_id(),
            secret_hash=hash_secret(secret),
            owner=key_owner,
            scopes=key_scopes,
            name=key_name,
            created_at=now,
            expires_at=expires_at,
        )
        await self._keys.add(key)
        return IssuedKey(key, secret)

    async def list(self) -> list[ApiKey]:
        """Every key not revoked, oldest first, expired ones included (with their ``expires_at``)."""
        return await self._keys.list()

    async def revoke(self, key_id: str) -> None:
        """Refuse the key from now on; raises ``KeyNotFound`` when no key has ``key_id``."""
        if not is_key_id(key_id):
            raise KeyNotFound(key_id[:100])
        await self._keys.revoke(key_id)


def clean_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """The scopes ``values`` name: at least one, each one of ``Scope``."""
    scopes = set()
    for value in values:
        try:
            scopes.add(Scope(value))
        except ValueError:
            known = ", ".join(scope.value for scope in Scope)
            raise InvalidInput(f"{value[:100]!r} is not a scope; the scopes are {known}") from None
    if not scopes:
        raise InvalidInput("a key needs at least one scope")
    return frozenset(scopes)


def clean_name(value: str) -> str:
    """``value`` when it can name a key: at most ``MAX_NAME_LENGTH`` characters, none of them control
    characters (names are printed in terminals)."""
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput(f"a key's name is at most {MAX_NAME_LENGTH} characters")
    if not value.isprintable():
        raise InvalidInput("a key's name may not hold control characters")
    return value


def clean_lifetime(seconds: int) -> int:
    """``seconds`` when a key may live that long: from 1 second to 10 years."""
    if not MIN_LIFETIME_SECONDS <= seconds <= MAX_LIFETIME_SECONDS:
        raise InvalidInput(
            f"expires_in is from {MIN_LIFETIME_SECONDS} to {MAX_LIFETIME_SECONDS} seconds (10 years)"
        )
    return seconds
