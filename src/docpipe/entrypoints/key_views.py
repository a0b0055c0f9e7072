"""How a key is shown to people and programs, by the command line and the HTTP API alike: never its
hash, and its secret only in the answer to its creation."""

from __future__ import annotations

from datetime import datetime

import msgspec

from docpipe.domain.identity import Scope
from docpipe.domain.key_service import IssuedKey
from docpipe.domain.keys import ApiKey


class KeyView(msgspec.Struct, frozen=True, kw_only=True):
    """A stored key, as listed."""

    id: str
    owner: str
    scopes: list[Scope]
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class KeyListView(msgspec.Struct, frozen=True):
    """Every key that is not revoked, oldest first."""

    keys: list[KeyView]


class CreatedKeyView(msgspec.Struct, frozen=True, kw_only=True):
    """A key just created, with ``key``: its secret, shown this once and never again."""

    id: str
    key: str
    owner: str
    scopes: list[Scope]
    name: str
    created_at: datetime
    expires_at: datetime | None


def ordered_scopes(key: ApiKey) -> list[Scope]:
    """The key's scopes in the order ``Scope`` declares them (read, write, delete, share, admin)."""
    return [scope for scope in Scope if scope in key.scopes]


def key_view(key: ApiKey) -> KeyView:
    return KeyView(
        id=key.id,
        owner=key.owner,
        scopes=ordered_scopes(key),
        name=key.name,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
    )


def created_key_view(issued: IssuedKey) -> CreatedKeyView:
    key = issued.key
    return CreatedKeyView(
        id=key.id,
        key=issued.secret,
        owner=key.owner,
        scopes=ordered_scopes(key),
        name=key.name,
        created_at=key.created_at,
        expires_at=key.expires_at,
    )
