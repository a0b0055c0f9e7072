"""Routes on the document resource: upload, list, read, update and delete metadata."""

from __future__ import annotations

import functools
from http import HTTPStatus
from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from docpipe.domain.errors import PreconditionFailed, UnsupportedMediaType
from docpipe.domain.identity import Scope
from docpipe.domain.model import Document, DocumentChanges, keepable
from docpipe.domain.service import DocumentService
from docpipe.entrypoints.http.allow import allow, options_first
from docpipe.entrypoints.http.authentication import principal_of
from docpipe.entrypoints.http.conditional import if_match_hits
from docpipe.entrypoints.http.declared_type import declared_type
from docpipe.entrypoints.http.dependencies import AnyRequest, CurrentPrincipal
from docpipe.entrypoints.http.openapi import UploadOperation, requires
from docpipe.entrypoints.http.prepared import Prepared, prepared_json
from docpipe.entrypoints.http.request_limits import UPLOAD_ROUTE
from docpipe.entrypoints.http.schemas import DocumentListOut, DocumentOut, DocumentPatch, metadata_etag
from docpipe.entrypoints.http.uploads import receive_upload

Service = NamedDependency[DocumentService]


def created(document: Document) -> Response[DocumentOut]:
    return Response(
        DocumentOut.of(document),
        status_code=HTTP_201_CREATED,
        headers={"Location": f"/documents/{document.id}", "ETag": metadata_etag(document)},
    )


REPRESENTATION_CACHE_SIZE = 1024
"""Metadata representations kept: the last made of ``keepable`` documents, the first made going first."""
_representations: dict[tuple[str, str], Prepared[DocumentOut]] = {}
"""By document id and ETag: the ETag changes with every change of the document (its version), made by
any process sharing the store, so a representation found under the ETag just read is the current one."""


async def read_metadata(service: DocumentService, owner: str, document_id: str) -> Prepared[DocumentOut]:
    """``GET /documents/{document_id}``, for its route and for ``point_reads``: the document is read
    every time, its representation (JSON and headers) made once per version."""
    document = await service.get(owner, document_id)
    etag = metadata_etag(document)
    made = _representations.get((document.id, etag))
    if made is None:
        made = prepared_json(DocumentOut.of(document), {"ETag": etag})
        if keepable(document):
            if len(_representations) >= REPRESENTATION_CACHE_SIZE:
                del _representations[next(iter(_representations))]  # the one kept longest
            _representations[document.id, etag] = made
    return made.copy()


upload_route = functools.partial(
    post,
    status_code=HTTP_201_CREATED,
    request_max_body_size=None,  # RequestLimits and the service bound uploads instead
    operation_class=UploadOperation,
    opt={UPLOAD_ROUTE: True},
)
"""``@post`` for a route that receives an upload."""
UPLOAD_PROBLEMS = (
    HTTPStatus.REQUEST_TIMEOUT,
    HTTPStatus.CONFLICT,
    HTTPStatus.GONE,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    HTTPStatus.UNPROCESSABLE_ENTITY,
    HTTPStatus.INSUFFICIENT_STORAGE,
)


class DocumentController(Controller):
    """The document resource: its uploads, its listing, and each document's metadata.

    Paths are written out in full because the original API's ``POST /upload`` sits outside
    ``/documents``. Both upload routes carry the ``UPLOAD_ROUTE`` mark that ``RequestLimits`` counts.
    """

    # Paths served by several handlers state Allow in full (see ``allow``).
    @route("/documents", http_method=[HttpMethod.OPTIONS], include_in_schema=False, name="options /documents")
    async def allow_collection(self) -> Response[None]:
        return allow("GET, OPTIONS, POST")

    @route(
        "/documents/{document_id:str}",
        http_method=[HttpMethod.OPTIONS],
        include_in_schema=False,
        name="options /documents/{document_id:str}",
    )
    async def allow_document(self) -> Response[None]:
        return allow("DELETE, GET, OPTIONS, PATCH")

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        """Litestar's handlers in its own order (by name), but the OPTIONS handlers first."""
        return options_first(super().get_route_handlers())

    @upload_route(
        "/documents",
        **requires(Scope.WRITE, *UPLOAD_PROBLEMS),
        summary="Upload a document",
        description=(
            "Send `multipart/form-data` with one file part named `file` (optional fields `tags`, comma "
            "separated, and `metadata`, a JSON object), or any other body as the raw bytes named by "
            "`?filename=` or `Content-Disposition`. An optional `Content-Digest: sha-256=:…:` is verified."
        ),
    )
    async def upload_document(
        self, request: AnyRequest, service: Service, principal: CurrentPrincipal
    ) -> Response[DocumentOut]:
        return created(await receive_upload(request, service, principal.owner))

    @upload_route(
        "/upload",
        **requires(Scope.WRITE, *UPLOAD_PROBLEMS, HTTPStatus.UNSUPPORTED_MEDIA_TYPE),
        summary="Upload a document (original route)",
        description="The same as a multipart `POST /documents`.",
    )
    async def upload_form(
        self, request: AnyRequest, service: Service, principal: CurrentPrincipal
    ) -> Response[DocumentOut]:
        if declared_type(request)[0] != "multipart/form-data":
            raise UnsupportedMediaType("POST /upload takes multipart/form-data with a part named 'file'")
        return created(await receive_upload(request, service, principal.owner))

    @get(
        "/documents",
        summary="List documents, newest first",
        description=(
            "Follow `next_cursor` until it is null to see every match once. A page holds at most `limit`"
            " documents and may hold fewer, even none, when a combination of filters is rare: each page"
            " examines a bounded number of entries and then stops, its `next_cursor` resuming where it"
            " stopped. Only a null `next_cursor` means that no match remains."
        ),
        **requires(Scope.READ),
    )
    async def list_documents(
        self,
        service: Service,
        principal: CurrentPrincipal,
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="page size, 1 to 1000")] = 100,
        cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
        prefix: Annotated[str | None, QueryParameter(description="filename prefix")] = None,
        tag: FromQuery[str | None] = None,
        content_type: FromQuery[str | None] = None,
    ) -> DocumentListOut:
        listing = await service.list(
            principal.owner, limit=limit, cursor=cursor, prefix=prefix, tag=tag, content_type=content_type
        )
        return DocumentListOut.of(listing)

    @get(
        "/documents/{document_id:str}",
        summary="A document's metadata",
        **requires(Scope.READ, HTTPStatus.NOT_FOUND),
    )
    async def get_document(
        self, document_id: FromPath[str], request: AnyRequest, service: Service
    ) -> Response[DocumentOut]:
        return await read_metadata(service, principal_of(request.scope).owner, document_id)

    @patch(
        "/documents/{document_id:str}",
        summary="Change filename, tags or metadata",
        **requires(
            Scope.WRITE,
            HTTPStatus.NOT_FOUND,
            HTTPStatus.REQUEST_TIMEOUT,
            HTTPStatus.CONFLICT,
            HTTPStatus.PRECONDITION_FAILED,
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            HTTPStatus.UNPROCESSABLE_ENTITY,
            HTTPStatus.INSUFFICIENT_STORAGE,
        ),
    )
    async def update_document(
        self,
        document_id: FromPath[str],
        data: JSONBody[DocumentPatch],
        request: AnyRequest,
        service: Service,
        principal: CurrentPrincipal,
    ) -> Response[DocumentOut]:
        media_type, _ = declared_type(request)
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise UnsupportedMediaType("PATCH takes a JSON body")
        changes = DocumentChanges(filename=data.filename, tags=data.tags, metadata=data.metadata)
        if_match = request.headers.get("if-match")
        precondition = (
            None if if_match is None else (lambda current: if_match_hits(if_match, metadata_etag(current)))
        )
        try:
            document = await service.update(principal.owner, document_id, changes, precondition)
        except PreconditionFailed:
            raise PreconditionFailed(
                f"If-Match {if_match} does not match the document's current ETag"
            ) from None
        return Response(DocumentOut.of(document), headers={"ETag": metadata_etag(document)})

    @delete(
        "/documents/{document_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a document by id, or every document with that filename",
        description=(
            "A value shaped like a document id is only ever an id (404 when no such document exists); "
            "any other value deletes every document with that filename (NFC-normalised)."
        ),
        **requires(Scope.DELETE, HTTPStatus.NOT_FOUND, HTTPStatus.INSUFFICIENT_STORAGE),
    )
    async def delete_document(
        self, document_id: FromPath[str], service: Service, principal: CurrentPrincipal
    ) -> None:
        """``document_id`` may also be a filename, as in the original API.

        See ``DocumentService.delete_by_id_or_filename``.
        """
        await service.delete_by_id_or_filename(principal.owner, document_id)
