"""Signed links: tokens that let whoever holds them download one document, or make one upload.

A token is the unpadded URL-safe base64 of

    version (1 byte) | key id (4 bytes) | grant (msgpack) | HMAC-SHA256(key, all that precedes)

The grant says what the link allows (``DownloadGrant``, ``UploadGrant``). Anyone holding the token can
read it, so it carries no secret; it is signed, so changing any bit of it (another document, a later
expiry, a bigger upload) breaks the MAC, which is compared in constant time. The key id says which
signing key signed: the first key signs and every key verifies, so a key is rotated by putting the new
one first and dropping the old one once the links it signed have expired. Key ids are derived from the
keys, so keys need no names. A token has one spelling only: base64 that is not canonical is refused, so
no character of a token can change without the token being refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

import msgspec

from docpipe.domain.errors import BadLinkToken, InvalidInput
from docpipe.domain.idempotency import IdempotencyClaim, new_claim
from docpipe.domain.model import NewDocument

MIN_KEY_LENGTH = 32
"""Characters a signing key has at least: 32 random base64 characters are 192 bits."""
MAX_TOKEN_LENGTH = 2048
"""Characters a token may have; longer ones are refused before any work (no grant comes near it)."""

_VERSION = b"\x01"
_KEY_ID_BYTES = 4
_MAC_BYTES = hashlib.sha256().digest_size
_HEADER_BYTES = len(_VERSION) + _KEY_ID_BYTES
_KEY_ID_MESSAGE = b"docpipe signing key id"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class Disposition(StrEnum):
    """How a download link's content is served (``inline`` only for types safe to show)."""

    ATTACHMENT = "attachment"
    INLINE = "inline"


class DownloadGrant(msgspec.Struct, frozen=True, array_like=True, tag=1):
    """The content of one document, until ``expires_at``, as long as the document's links epoch is
    still ``links_epoch`` (revoking the document's links raises the epoch)."""

    owner: str
    document_id: str
    links_epoch: int
    expires_at: datetime
    disposition: Disposition


class UploadGrant(msgspec.Struct, frozen=True, array_like=True, tag=2):
    """One upload, for ``owner``, until ``expires_at``: once, under ``nonce``, of at most ``max_bytes``
    (the server's limit when ``None``), named ``filename`` when set, tagged with ``tags`` and
    whatever tags the uploader adds."""

    owner: str
    nonce: str
    expires_at: datetime
    max_bytes: int | None
    filename: str | None
    tags: tuple[str, ...]

    def allowed_bytes(self, server_limit: int) -> int:
        """The most this link may upload on a server that takes ``server_limit`` bytes."""
        return server_limit if self.max_bytes is None else min(self.max_bytes, server_limit)

    def describe(self, description: NewDocument) -> NewDocument:
        """What the uploader said, with the link's filename (when set) and the link's tags added.

        Applying it again changes nothing, so it may be applied before a description is checked and
        again when it is committed.
        """
        return msgspec.structs.replace(
            description,
            filename=self.filename or description.filename,
            tags=tuple(dict.fromkeys((*self.tags, *description.tags))),
        )

    def claim(self, now: datetime) -> IdempotencyClaim:
        """The claim that makes this link's upload happen once: keyed on the nonce, in a form no
        Idempotency-Key header can take (those are printable ASCII), and kept as long as the link
        works, so a used link stays used until it has expired anyway."""
        claim = new_claim(self.owner, f"upload-link\N{MIDDLE DOT}{self.nonce}", now)
        return msgspec.structs.replace(claim, expires_at=max(claim.expires_at, self.expires_at))


Grant = DownloadGrant | UploadGrant

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Grant] = msgspec.msgpack.Decoder(Grant)


class SigningKey:
    """A secret that signs links. Its ``repr`` shows the key id only, so settings can be printed."""

    __slots__ = ("_secret", "id")

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_KEY_LENGTH:
            raise InvalidInput(f"a signing key has at least {MIN_KEY_LENGTH} characters")
        self._secret = secret.encode()
        self.id = self.mac(_KEY_ID_MESSAGE)[:_KEY_ID_BYTES]

    def mac(self, message: bytes) -> bytes:
        return hmac.digest(self._secret, message, "sha256")

    def __repr__(self) -> str:
        return f"SigningKey(id={self.id.hex()!r})"


class LinkSigner:
    """Signs grants with the first of ``keys`` and reads tokens signed by any of them."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise ValueError("a link signer needs at least one key")
        self._signing = keys[0]
        self._by_id: dict[bytes, SigningKey] = {}
        for key in keys:
            self._by_id.setdefault(key.id, key)

    def sign(self, grant: Grant) -> str:
        signed = _VERSION + self._signing.id + _encoder.encode(grant)
        return _encode(signed + self._signing.mac(signed))

    def read(self, token: str) -> Grant:
        """The grant ``token`` carries; ``BadLinkToken`` for anything but a token a known key signed."""
        if len(token) > MAX_TOKEN_LENGTH or not _BASE64URL.fullmatch(token):
            raise BadLinkToken
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise BadLinkToken from None
        if _encode(raw) != token or len(raw) <= _HEADER_BYTES + _MAC_BYTES or raw[:1] != _VERSION:
            raise BadLinkToken
        key = self._by_id.get(raw[1:_HEADER_BYTES])
        signed, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if key is None or not hmac.compare_digest(key.mac(signed), mac):
            raise BadLinkToken
        try:
            return _decoder.decode(signed[_HEADER_BYTES:])
        except msgspec.MsgspecError:
            # Signed by us, so written by us: only a grant of a later, unknown shape gets here.
            raise BadLinkToken from None


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
