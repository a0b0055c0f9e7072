"""API keys: how they look, how they are stored, and how a presented key is checked.

A key is ``dp_`` + 30 random base62 characters (178 bits) + a 6-character base62 CRC32 of the random
part, after GitHub's token format: secret scanners spot the prefix, and a typo or a truncated paste
fails the checksum without a lookup. Only the key's SHA-256 is stored (a key is random enough that a
slow password hash would add nothing but latency); the lookup is by that hash, so comparing secrets
never happens byte by byte in Python.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
import zlib
from datetime import datetime

import msgspec

from docpipe.domain.identity import Principal, Scope
from docpipe.domain.model import new_document_id

KEY_PREFIX = "dp_"
KEY_ID_PREFIX = "key_"
_KEY_ID = re.compile(KEY_ID_PREFIX + "[0-9a-f]{32}")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_IN_ALPHABET = frozenset(_ALPHABET)
_RANDOM_LENGTH = 30
_CHECKSUM_LENGTH = 6


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A stored key: everything but the secret, of which only ``secret_hash`` is kept."""

    id: str
    secret_hash: str
    owner: str
    scopes: frozenset[Scope]
    name: str = ""
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None

    def principal(self) -> Principal:
        return Principal(self.owner, self.scopes)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def new_key_id() -> str:
    """A key's public id: ``key_`` and the hex of a UUIDv7, so that ids sort by creation time."""
    return KEY_ID_PREFIX + uuid.UUID(new_document_id()).hex


def is_key_id(value: str) -> bool:
    """Whether ``value`` has the form of the ids ``new_key_id`` makes."""
    return _KEY_ID.fullmatch(value) is not None


def new_secret() -> str:
    """A fresh key, shown to its creator once."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return KEY_PREFIX + body + _checksum(body)


def well_formed(secret: str) -> bool:
    """Whether ``secret`` has a key's shape and a valid checksum: false for typos, truncations, JWTs."""
    body = secret[len(KEY_PREFIX) : -_CHECKSUM_LENGTH]
    return (
        len(secret) == len(KEY_PREFIX) + _RANDOM_LENGTH + _CHECKSUM_LENGTH
        and secret.startswith(KEY_PREFIX)
        and _IN_ALPHABET.issuperset(secret[len(KEY_PREFIX) :])
        and secrets.compare_digest(_checksum(body), secret[-_CHECKSUM_LENGTH:])
    )


def hash_secret(secret: str) -> str:
    """What the repository stores and looks a key up by."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(_CHECKSUM_LENGTH):
        value, digit = divmod(value, len(_ALPHABET))
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))
