"""Signed links: issue and revoke them, and serve ``/l/{token}`` to anyone holding one, no credentials.

Routes under ``LINK_PREFIX`` are ``PUBLIC`` (no authentication): the token is the credential. Tokens
never reach a log line (``link_paths``); link responses tell browsers not to pass them on in a Referer.
"""

from __future__ import annotations

import functools
from datetime import datetime
from http import HTTPStatus
from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, post, route
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import HttpMethod
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from docpipe.domain.fields import MAX_TAGS
from docpipe.domain.identity import Scope
from docpipe.domain.link_service import MAX_EXPIRES_IN, IssuedLink, LinkService
from docpipe.domain.links import Disposition
from docpipe.domain.ports import PresignedDownloads
from docpipe.domain.service import DocumentService
from docpipe.entrypoints.http.allow import allow, options_first
from docpipe.entrypoints.http.authentication import PUBLIC, PUBLIC_ROUTE
from docpipe.entrypoints.http.content import representation_headers, request_header, serve_content
from docpipe.entrypoints.http.dependencies import AnyRequest, CurrentPrincipal
from docpipe.entrypoints.http.documents import UPLOAD_PROBLEMS, created, upload_route
from docpipe.entrypoints.http.link_paths import LINK_PREFIX
from docpipe.entrypoints.http.openapi import ContentOperation, problems, requires
from docpipe.entrypoints.http.schemas import DocumentOut
from docpipe.entrypoints.http.uploads import receive_upload

PRESIGNED_SECONDS = 60
"""How long a presigned S3 URL that a download link redirects to works."""
_NOT_PASSED_ON = {"Referrer-Policy": "no-referrer"}

Service = NamedDependency[DocumentService]
Links = NamedDependency[LinkService]
ExpiresIn = Annotated[int, msgspec.Meta(ge=1, le=MAX_EXPIRES_IN, description="seconds the link works")]


class DownloadLinkIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /documents/{id}/links``: ``inline`` only shows types safe in a browser."""

    expires_in: ExpiresIn
    disposition: Disposition = Disposition.ATTACHMENT


class UploadLinkIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /links/upload``: the document's ``filename`` (else the uploader's), a cap on its size (else
    the server's limit), and tags it gets besides any the uploader sends."""

    expires_in: ExpiresIn
    filename: str | None = None
    max_bytes: Annotated[int, msgspec.Meta(ge=1)] | None = None
    tags: Annotated[list[str], msgspec.Meta(max_length=MAX_TAGS)] = msgspec.field(default_factory=list)


class LinkOut(msgspec.Struct, frozen=True):
    """A link, usable with no credentials until ``expires_at``."""

    url: str
    expires_at: datetime


def provide_links(state: State) -> LinkService:
    links: LinkService = state.links
    return links


def provide_presigned(state: State) -> PresignedDownloads | None:
    presigned: PresignedDownloads | None = state.presigned
    return presigned


def link_out(request: AnyRequest, issued: IssuedLink) -> LinkOut:
    """The link as an absolute URL: on ``DOCPIPE_PUBLIC_URL`` when set (behind a proxy), else on the
    URL this request was sent to."""
    public_url: str | None = request.app.state.public_url
    base = public_url or str(request.base_url)
    return LinkOut(f"{base.rstrip('/')}{LINK_PREFIX}{issued.token}", issued.expires_at)


_link_route = functools.partial(
    route,
    f"{LINK_PREFIX}{{token:str}}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    operation_class=ContentOperation,
    responses=problems(
        HTTPStatus.FORBIDDEN,
        HTTPStatus.NOT_FOUND,
        HTTPStatus.GONE,
        HTTPStatus.PRECONDITION_FAILED,
        HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
    ),
    opt={PUBLIC: True},
)


class LinkController(Controller):
    """Download links (``share``), upload links (``write`` and ``share``), and what they serve."""

    dependencies = {  # noqa: RUF012 (Litestar reads it as a class attribute)
        "links": Provide(provide_links, sync_to_thread=False),
        "presigned": Provide(provide_presigned, sync_to_thread=False),
    }

    # Paths served by several handlers state Allow in full (see ``allow``).
    @route(
        "/documents/{document_id:str}/links",
        http_method=[HttpMethod.OPTIONS],
        include_in_schema=False,
        name="options /documents/{document_id:str}/links",
    )
    async def allow_links(self) -> Response[None]:
        return allow("DELETE, OPTIONS, POST")

    @route(
        f"{LINK_PREFIX}{{token:str}}",
        http_method=[HttpMethod.OPTIONS],
        include_in_schema=False,
        name=f"options {LINK_PREFIX}{{token:str}}",
        opt={PUBLIC: True},
    )
    async def allow_link(self) -> Response[None]:
        return allow("GET, HEAD, OPTIONS, POST")

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        return options_first(super().get_route_handlers())

    @post(
        "/documents/{document_id:str}/links",
        status_code=HTTP_201_CREATED,
        summary="A link to the document's content, usable with no credentials until it expires",
        **requires(Scope.SHARE, HTTPStatus.NOT_FOUND, HTTPStatus.UNPROCESSABLE_ENTITY),
    )
    async def share(
        self,
        document_id: FromPath[str],
        data: JSONBody[DownloadLinkIn],
        request: AnyRequest,
        links: Links,
        principal: CurrentPrincipal,
    ) -> LinkOut:
        issued = await links.share(principal.owner, document_id, data.expires_in, data.disposition)
        return link_out(request, issued)

    @delete(
        "/documents/{document_id:str}/links",
        status_code=HTTP_204_NO_CONTENT,
        summary="Revoke every link to the document issued so far",
        **requires(Scope.SHARE, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
    )
    async def revoke(self, document_id: FromPath[str], links: Links, principal: CurrentPrincipal) -> None:
        await links.revoke(principal.owner, document_id)

    @post(
        "/links/upload",
        status_code=HTTP_201_CREATED,
        summary="A link for one upload by anyone holding it, into the caller's documents",
        description="`POST` the document to the link's `url` as to `POST /documents` (raw or multipart).",
        **requires((Scope.WRITE, Scope.SHARE), HTTPStatus.UNPROCESSABLE_ENTITY),
    )
    async def invite_upload(
        self,
        data: JSONBody[UploadLinkIn],
        request: AnyRequest,
        links: Links,
        principal: CurrentPrincipal,
    ) -> LinkOut:
        issued = links.invite_upload(
            principal.owner,
            data.expires_in,
            filename=data.filename,
            max_bytes=data.max_bytes,
            tags=tuple(data.tags),
        )
        return link_out(request, issued)

    @_link_route(summary="The linked document's content, as `/documents/{id}/content` serves it")
    async def download(
        self,
        token: FromPath[str],
        request: AnyRequest,
        service: Service,
        links: Links,
        presigned: NamedDependency[PresignedDownloads | None],
    ) -> Response[bytes] | Stream:
        document, grant = await links.open_download(token)
        if presigned is None:
            response = await serve_content(
                request.method, request_header(request.scope), service, document, grant.disposition
            )
            response.headers.update(_NOT_PASSED_ON)
            return response
        headers = representation_headers(document, grant.disposition)
        url = await presigned.presigned_get(
            document.blob_key,
            content_type=headers["Content-Type"],
            content_disposition=headers["Content-Disposition"],
            expires_in=PRESIGNED_SECONDS,
        )
        return Response(
            b"",
            status_code=HTTPStatus.FOUND,
            headers={"Location": url, "Cache-Control": "no-store", **_NOT_PASSED_ON},
        )

    @upload_route(
        f"{LINK_PREFIX}{{token:str}}",
        responses=problems(*UPLOAD_PROBLEMS, HTTPStatus.FORBIDDEN),
        summary="Upload through an upload link, as `POST /documents` does; the link is then used",
        **PUBLIC_ROUTE,
    )
    async def upload(
        self, token: FromPath[str], request: AnyRequest, service: Service, links: Links
    ) -> Response[DocumentOut]:
        grant = links.open_upload(token)
        response = created(await receive_upload(request, service, grant.owner, grant))
        response.headers.update(_NOT_PASSED_ON)
        return response
