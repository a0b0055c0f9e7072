"""The use cases of signed links: share a document, revoke its links, invite an upload, open a link.

A link is checked in the order its failures are reported: a token this service did not sign is
``BadLinkToken`` (403), an expired one ``LinkGone`` (410) without a lookup, one for a document no longer
there ``DocumentNotFound`` (404), one issued before the document's links were revoked ``LinkGone``.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

import msgspec

from docpipe.domain.errors import BadLinkToken, InvalidInput, LinkGone
from docpipe.domain.fields import clean_filename, clean_tags
from docpipe.domain.links import Disposition, DownloadGrant, Grant, LinkSigner, UploadGrant
from docpipe.domain.model import Document, utc_now
from docpipe.domain.service import DocumentService

MAX_EXPIRES_IN = 7 * 24 * 3600
"""The longest a link may work, in seconds."""
_NONCE_BYTES = 16

_G = TypeVar("_G", DownloadGrant, UploadGrant)


class IssuedLink(msgspec.Struct, frozen=True):
    """A link's token and when it stops working (a whole second: tokens carry no fractions)."""

    token: str
    expires_at: datetime


class LinkService:
    """``clock`` tells the time links are issued and checked at (tests move it forward)."""

    def __init__(
        self, documents: DocumentService, signer: LinkSigner, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._documents = documents
        self._signer = signer
        self._clock = clock

    async def share(
        self, owner: str, document_id: str, expires_in: int, disposition: Disposition = Disposition.ATTACHMENT
    ) -> IssuedLink:
        """A link to the content of one of ``owner``'s documents, working for ``expires_in`` seconds."""
        expires_at = self._expiry(expires_in)
        document = await self._documents.get(owner, document_id)
        return self._issue(DownloadGrant(owner, document.id, document.links_epoch, expires_at, disposition))

    async def revoke(self, owner: str, document_id: str) -> None:
        """Every link to the document issued so far stops working."""
        await self._documents.revoke_links(owner, document_id)

    def invite_upload(
        self,
        owner: str,
        expires_in: int,
        *,
        filename: str | None = None,
        max_bytes: int | None = None,
        tags: tuple[str, ...] = (),
    ) -> IssuedLink:
        """A link for one upload into ``owner``'s documents, of at most ``max_bytes`` (at most the
        server's limit), named ``filename`` when set, tagged with ``tags``."""
        expires_at = self._expiry(expires_in)
        limit = self._documents.max_upload_bytes
        if max_bytes is not None and not 0 < max_bytes <= limit:
            raise InvalidInput(f"max_bytes must be 1 to {limit}, the server's upload limit")
        return self._issue(
            UploadGrant(
                owner=owner,
                nonce=secrets.token_urlsafe(_NONCE_BYTES),
                expires_at=expires_at,
                max_bytes=max_bytes,
                filename=None if filename is None else clean_filename(filename),
                tags=clean_tags(tags),
            )
        )

    async def open_download(self, token: str) -> tuple[Document, DownloadGrant]:
        """The document a download link serves, and how."""
        grant = self._read(token, DownloadGrant)
        document = await self._documents.get(grant.owner, grant.document_id)
        if document.links_epoch != grant.links_epoch:
            raise LinkGone("the links to this document were revoked")
        return document, grant

    def open_upload(self, token: str) -> UploadGrant:
        """The upload an upload link allows; whether it was used is known once the upload claims it."""
        return self._read(token, UploadGrant)

    def _read(self, token: str, kind: type[_G]) -> _G:
        grant: Grant = self._signer.read(token)
        if not isinstance(grant, kind):
            raise BadLinkToken
        if self._clock() >= grant.expires_at:
            raise LinkGone("the link has expired")
        return grant

    def _issue(self, grant: Grant) -> IssuedLink:
        return IssuedLink(self._signer.sign(grant), grant.expires_at)

    def _expiry(self, expires_in: int) -> datetime:
        if not 0 < expires_in <= MAX_EXPIRES_IN:
            raise InvalidInput(f"expires_in must be 1 to {MAX_EXPIRES_IN} seconds")
        now = self._clock()
        whole_second = now.replace(microsecond=0)
        return whole_second + timedelta(seconds=expires_in + math.ceil(now.microsecond / 1_000_000))
