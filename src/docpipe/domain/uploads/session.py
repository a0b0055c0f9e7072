"""One resumable upload: how far its bytes got, who may write the next ones, and when it expires.

A session is created with the whole length and what the client said of the file; its bytes are
staged under a blob key minted at creation. A PATCH first takes the session's *lease* (a random token
held until ``lease_until``) with a compare-and-set on the offset it starts from, so of two PATCHes
racing on one upload, in one process or in two, one holds the lease and the other is refused: bytes
are never interleaved. The lease is renewed while the bytes arrive and released with the new offset;
a holder that crashed stops renewing, and its lease runs out after ``LEASE``.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

import msgspec

from docpipe.domain.errors import OffsetMismatch, UploadBusy, UploadExpired, UploadLengthMismatch

LEASE = timedelta(seconds=10)
"""How long a PATCH holds an upload without renewing: how soon a crashed server's upload can resume."""
RENEWAL_INTERVAL = LEASE / 3
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{32}")


class UploadSession(msgspec.Struct, frozen=True, kw_only=True):
    """An upload of ``owner``'s of ``length`` bytes, ``offset`` of them stored under ``blob_key``.

    ``filename``, ``content_type`` (as declared, if at all) and ``tags`` are cleaned at creation.
    ``document_id`` is set once the upload committed its document; the session then only answers
    HEADs until ``expires_at``.
    """

    id: str
    owner: str
    blob_key: str
    length: int
    offset: int = 0
    filename: str
    content_type: str | None = None
    tags: tuple[str, ...] = ()
    created_at: datetime
    expires_at: datetime
    lease_token: str | None = None
    lease_until: datetime | None = None
    document_id: str | None = None

    @property
    def complete(self) -> bool:
        return self.document_id is not None

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= now

    def leased(self, now: datetime) -> bool:
        """Whether a PATCH holds the upload now (a lease that ran out holds nothing)."""
        return self.lease_until is not None and self.lease_until > now


class Lease(msgspec.Struct, frozen=True):
    """A PATCH's hold on an upload: ``token`` is the PATCH's own, ``until`` when it lapses unrenewed."""

    token: str
    until: datetime


def new_upload_id() -> str:
    """32 URL-safe characters from 192 random bits: unguessable, so an id reveals nothing and cannot
    be found by trying."""
    return secrets.token_urlsafe(24)


def is_upload_id(value: str) -> bool:
    return _UPLOAD_ID.fullmatch(value) is not None


def new_lease(now: datetime) -> Lease:
    return Lease(secrets.token_hex(16), now + LEASE)


def refuse_lease(session: UploadSession, offset: int, token: str, now: datetime) -> None:
    """Raise why ``token`` may not take ``session``'s lease to write from ``offset`` at ``now``, if it
    may not: the one rule every ``UploadRepository.take_lease`` applies (adapters that decide inside
    their store, such as SQLite's transaction, call it there)."""
    if session.expired(now):
        raise UploadExpired(session.id)
    if session.complete:
        raise OffsetMismatch(offset, session.length)
    if session.leased(now) and session.lease_token != token:
        raise UploadBusy(session.id)
    if session.offset != offset:
        raise OffsetMismatch(offset, session.offset)


def check_final(final: bool, offset: int, size: int | None, length: int) -> None:
    """Refuse a body from ``offset`` of a declared ``size`` that says it ends the upload (``final``) yet
    ends elsewhere than at its ``length``, or says it does not yet reaches it (``UploadLengthMismatch``);
    a body of unknown size is checked once it has arrived."""
    if size is None:
        return
    end = offset + size
    if (end != length) if final else (end >= length):
        raise UploadLengthMismatch(end, length, final)
