"""A document's extracted text (see README, "Text extraction")."""

from __future__ import annotations

from http import HTTPStatus

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Stream

from docpipe.domain.identity import Scope
from docpipe.domain.service import DocumentService
from docpipe.entrypoints.http.dependencies import CurrentPrincipal
from docpipe.entrypoints.http.openapi import TextOperation, requires

Service = NamedDependency[DocumentService]


class TextController(Controller):
    """``GET /documents/{id}/text``."""

    @get(
        "/documents/{document_id:str}/text",
        summary="Read a document's extracted text",
        description=(
            "The text extracted from the document (UTF-8), streamed. 404 when it has none: with"
            " `Retry-After` while its processing is pending, without once it ended `failed` or `skipped`."
        ),
        operation_class=TextOperation,
        **requires(Scope.READ, HTTPStatus.NOT_FOUND),
    )
    async def read_text(
        self, service: Service, principal: CurrentPrincipal, document_id: FromPath[str]
    ) -> Stream:
        chunks = await service.open_text(principal.owner, document_id)
        # Litestar adds "; charset=utf-8" to text types.
        return Stream(chunks, media_type="text/plain", headers={"X-Content-Type-Options": "nosniff"})
