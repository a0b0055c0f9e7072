"""Who is asking: owners, scopes and the principal a request acts as.

Documents belong to an owner; a principal (from an API key, an OIDC token, or the switched-off
authentication of ``DOCPIPE_AUTH=none``) acts for one owner with a set of scopes. Scopes are checked at
the edge (HTTP guards, the CLI); every port call that touches documents carries the owner.
"""

from __future__ import annotations

import re
from enum import StrEnum

import msgspec

from docpipe.domain.errors import InvalidInput

DEFAULT_OWNER = "default"
"""Owner of documents stored before owners existed, of ``DOCPIPE_ADMIN_KEY`` and of ``DOCPIPE_AUTH=none``."""

_OWNER = re.compile(r"[A-Za-z0-9._-]{1,64}")


class Scope(StrEnum):
    """What a key may do: ``admin`` manages keys of any owner and ``metrics`` reads ``/metrics`` (for a
    Prometheus server); neither grants access to documents."""

    READ = "read"
    WRITE = "write"
    DELETE = "delete"
    SHARE = "share"
    ADMIN = "admin"
    METRICS = "metrics"


ALL_SCOPES = frozenset(Scope)


class Principal(msgspec.Struct, frozen=True):
    """The owner a request acts for, and what it may do."""

    owner: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


AUTHENTICATION_OFF = Principal(DEFAULT_OWNER, ALL_SCOPES)
"""Every request's principal under ``DOCPIPE_AUTH=none``."""


def clean_owner(value: str) -> str:
    """``value`` when it names an owner: 1 to 64 of ``[A-Za-z0-9._-]``, not ``.`` or ``..`` (owners become
    path segments and key prefixes in the blob stores)."""
    if not _OWNER.fullmatch(value) or value in {".", ".."}:
        raise InvalidInput("an owner is 1 to 64 of A-Z a-z 0-9 . _ - (and not '.' or '..')")
    return value
