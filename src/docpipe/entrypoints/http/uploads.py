"""Turn an upload request, raw body or multipart form, into an upload of ``DocumentService``.

The wire formats are read here (headers, the comma-separated ``tags`` field, the JSON ``metadata``
field); the values they carry are cleaned by the service."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import urllib.parse
from collections.abc import AsyncIterator
from typing import cast

import msgspec
import multipart

from docpipe.domain.errors import (
    ChecksumMismatch,
    IncompleteBody,
    InvalidInput,
    MalformedInput,
    UploadTooLarge,
)
from docpipe.domain.idempotency import clean_idempotency_key
from docpipe.domain.links import UploadGrant
from docpipe.domain.model import Document, NewDocument
from docpipe.domain.service import DocumentService
from docpipe.entrypoints.http.declared_type import declared_type
from docpipe.entrypoints.http.dependencies import AnyRequest
from docpipe.entrypoints.http.multipart_form import MultipartForm

# What a multipart body may add around the file's bytes: boundaries, part headers, small fields.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024
_SHA256_DIGEST = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([^:,]*):\s*(?:;[^,]*)?(?=,|$)", re.IGNORECASE)

_SF_STRING = re.compile(r'"((?:[ !#-\[\]-~]|\\["\\])*)"')
_SF_ESCAPE = re.compile(r'\\(["\\])')
_EXTENDED_FILENAME = re.compile(r"filename\*\s*=\s*(utf-8|iso-8859-1)'[^']*'([^;\s]+)", re.IGNORECASE)


async def receive_upload(
    request: AnyRequest, service: DocumentService, owner: str, link: UploadGrant | None = None
) -> Document:
    """Stream the request body into the service as an upload of ``owner``'s; multipart bodies go
    through ``MultipartForm``.

    Through an upload ``link`` (of ``owner``'s), the link caps the size and may name the file; an
    Idempotency-Key is ignored, the link being single-use itself.
    """
    media_type, options = declared_type(request)
    expected_sha256 = parse_content_digest(request.headers.get("content-digest"))
    idempotency_key = (
        None if link is not None else parse_idempotency_key(request.headers.get("idempotency-key"))
    )
    upload_limit = service.max_upload_bytes if link is None else link.allowed_bytes(service.max_upload_bytes)
    if media_type == "multipart/form-data":
        return await _receive_form(
            request, service, owner, options, expected_sha256, idempotency_key, link, upload_limit
        )
    _refuse_oversized(request.content_length, upload_limit, upload_limit)
    filename = (
        (link and link.filename)
        or request.query_params.get("filename")
        or filename_from_disposition(request.headers.get("content-disposition"))
    )
    if not filename:
        raise InvalidInput("name the file with ?filename= or a Content-Disposition header")
    description = NewDocument(
        filename=filename,
        # Repeated fields combine into a list (RFC 9110 §5.3), which the media-type parser refuses.
        content_type=", ".join(request.headers.getall("content-type")) if media_type else None,
        tags=split_tags_field(request.query_params.get("tags")),
        metadata=decode_metadata_field(request.query_params.get("metadata")),
    )
    return await service.upload(
        owner,
        body_chunks(request, upload_limit, upload_limit),
        description,
        expected_sha256=expected_sha256,
        idempotency_key=idempotency_key,
        link=link,
    )


async def _receive_form(
    request: AnyRequest,
    service: DocumentService,
    owner: str,
    options: dict[str, str],
    expected_sha256: str | None,
    idempotency_key: str | None,
    link: UploadGrant | None,
    upload_limit: int,
) -> Document:
    """Stage the file part; the form fields and the body's digest are known once it has all arrived."""
    body_limit = upload_limit + MULTIPART_OVERHEAD_BYTES
    _refuse_oversized(request.content_length, body_limit, upload_limit)
    if "boundary" not in options:
        raise MalformedInput("multipart/form-data without a boundary parameter")
    # Content-Digest covers the content as sent (RFC 9530 §2): here the whole multipart body.
    body_sha256 = hashlib.sha256()
    body = body_chunks(request, body_limit, upload_limit)
    form = MultipartForm(body if expected_sha256 is None else _hashed(body, body_sha256), options["boundary"])
    async with service.new_upload(owner, idempotency_key=idempotency_key, link=link) as upload:
        await upload.stage(form.file_chunks())
        if expected_sha256 is not None and expected_sha256 != body_sha256.hexdigest():
            raise ChecksumMismatch(expected_sha256, body_sha256.hexdigest())
        filename = (link and link.filename) or form.filename or request.query_params.get("filename")
        if not filename:
            raise InvalidInput("the file part carries no filename")
        return await upload.commit(
            NewDocument(
                filename=filename,
                content_type=form.content_type,
                tags=split_tags_field(form.fields.get("tags")),
                metadata=decode_metadata_field(form.fields.get("metadata")),
            )
        )


async def body_chunks(request: AnyRequest, limit: int, upload_limit: int) -> AsyncIterator[bytes]:
    """The request body as the server receives it, at most ``limit`` bytes (``UploadTooLarge`` past it).

    Read from ASGI directly (not ``request.stream()``) so that a client leaving mid-body is
    ``IncompleteBody``, not a generic server error. The limit also bounds what follows a multipart
    body's file part, which the service's own count of file bytes does not see.
    """
    received = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise IncompleteBody
        if body := cast("bytes", message.get("body", b"")):
            received += len(body)
            if received > limit:
                raise UploadTooLarge(upload_limit)
            yield body
        if not message.get("more_body", False):
            return


async def _hashed(chunks: AsyncIterator[bytes], sha256: hashlib._Hash) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        sha256.update(chunk)
        yield chunk


def _refuse_oversized(declared_length: int | None, allowed: int, upload_limit: int) -> None:
    if declared_length is not None and declared_length > allowed:
        raise UploadTooLarge(upload_limit)


def split_tags_field(raw: str | None) -> list[str]:
    """The tags of a comma-separated form or query field; empty items are ignored."""
    return [part for part in (raw or "").split(",") if part.strip()]


def decode_metadata_field(raw: str | None) -> dict[str, str]:
    """The JSON object of a ``metadata`` form or query field."""
    if raw is None or not raw.strip():
        return {}
    try:
        return msgspec.json.decode(raw, type=dict[str, str])
    except msgspec.DecodeError:
        raise InvalidInput("metadata must be a JSON object of string values") from None


def parse_content_digest(header: str | None) -> str | None:
    """The hex sha-256 from an RFC 9530 ``Content-Digest`` header; other algorithms are ignored."""
    if header is None:
        return None
    match = _SHA256_DIGEST.search(header)
    if match is None:
        return None
    try:
        digest = base64.b64decode(match.group(1), validate=True)
    except binascii.Error:
        raise MalformedInput("Content-Digest sha-256 value is not base64") from None
    if len(digest) != 32:
        raise MalformedInput("Content-Digest sha-256 value is not 32 bytes")
    return digest.hex()


def parse_idempotency_key(header: str | None) -> str | None:
    """The key of an ``Idempotency-Key`` header: a Structured Field String (``"…"``, as the draft
    specifies, with ``\\"`` and ``\\\\`` escapes) or, as most clients send it, the bare value."""
    if header is None:
        return None
    value = header.strip(" \t")
    if value.startswith('"'):
        match = _SF_STRING.fullmatch(value)
        if match is None:
            raise MalformedInput("Idempotency-Key is not a well-formed quoted string")
        value = _SF_ESCAPE.sub(r"\1", match.group(1))
    return clean_idempotency_key(value)


def filename_from_disposition(header: str | None) -> str | None:
    """The file name of a ``Content-Disposition`` request header, preferring RFC 8187 ``filename*``."""
    if not header:
        return None
    extended = _EXTENDED_FILENAME.search(header)
    if extended is not None:
        charset, encoded = extended.groups()
        return urllib.parse.unquote(encoded, encoding=charset, errors="replace")
    _, options = multipart.parse_options_header(header, unquote=multipart.content_disposition_unquote)
    filename: str | None = options.get("filename")
    return filename
