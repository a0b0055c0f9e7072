"""Idempotent uploads (draft-ietf-httpapi-idempotency-key-header): the key's rules and its record.

An upload that carries a key first *claims* it: a record written before any byte is read, held by a
random ``token`` under a lease that the upload renews while it runs. The document insert *completes*
the record in the same commit, naming the document and its sha-256. A retry with the key then finds
one of three things: a completed record (it gets that document, if its bytes have the same sha-256),
a claim whose lease still runs (the first attempt is in flight: 409), or nothing, or a claim whose
lease ran out because its server died (the retry takes the key over). Completion is conditional on
the token, so an upload whose key was taken over cannot complete as well: one key, one document.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from docpipe.domain.errors import MalformedInput
from docpipe.domain.model import utc_now

if TYPE_CHECKING:
    from docpipe.domain.ports import DocumentRepository

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255
RETENTION = timedelta(hours=24)
"""How long after its upload completed a key answers retries; afterwards it is free again."""
LEASE = timedelta(seconds=30)
"""How long a claim holds without renewal: how soon a crashed server's key can be taken over."""
RENEWAL_INTERVAL = LEASE / 3


class IdempotencyClaim(msgspec.Struct, frozen=True, kw_only=True):
    """One upload's hold on ``owner``'s ``key``: a key is scoped to its owner (two owners may use the
    same key independently), so every adapter keys its record on both."""

    owner: str
    key: str
    token: str
    lease_until: datetime
    expires_at: datetime
    """When the record may be forgotten (``RETENTION`` after the claim, then after its completion);
    while in flight it counts only until ``lease_until``."""


class CompletedUpload(msgspec.Struct, frozen=True):
    """What a key's record says once its upload was committed."""

    document_id: str
    sha256: str


def clean_idempotency_key(value: str) -> str:
    """``value`` if it is 1 to 255 printable ASCII characters, else ``MalformedInput`` (400)."""
    if not 0 < len(value) <= MAX_KEY_LENGTH or not all(" " <= char <= "~" for char in value):
        raise MalformedInput(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return value


def new_claim(owner: str, key: str, now: datetime) -> IdempotencyClaim:
    return IdempotencyClaim(
        owner=owner, key=key, token=secrets.token_hex(16), lease_until=now + LEASE, expires_at=now + RETENTION
    )


def renewed(claim: IdempotencyClaim, now: datetime) -> IdempotencyClaim:
    return msgspec.structs.replace(claim, lease_until=now + LEASE, expires_at=_retained(claim, now))


def completed(claim: IdempotencyClaim, now: datetime) -> IdempotencyClaim:
    """The claim as its completion stores it: kept for ``RETENTION`` from now, or longer if it was
    made to last longer (an upload link's claim lasts as long as the link)."""
    return msgspec.structs.replace(claim, expires_at=_retained(claim, now))


def _retained(claim: IdempotencyClaim, now: datetime) -> datetime:
    return max(claim.expires_at, now + RETENTION)


@contextlib.asynccontextmanager
async def renewing(repository: DocumentRepository, claim: IdempotencyClaim | None) -> AsyncIterator[None]:
    """Keep renewing ``claim``'s lease while the block runs, so a long upload keeps its key.

    A renewal that fails is logged and tried again at the next interval: should the lease run out
    meanwhile and a retry take the key over, this upload's completion fails instead of duplicating.
    """
    if claim is None:
        yield
        return

    async def renew() -> None:
        while True:
            await asyncio.sleep(RENEWAL_INTERVAL.total_seconds())
            now = utc_now()
            try:
                await repository.claim(renewed(claim, now), now)
            except Exception:
                logger.warning("idempotency key claim not renewed", exc_info=True)

    renewal = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
