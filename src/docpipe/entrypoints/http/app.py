"""The Litestar application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Response, route
from litestar.di import Provide
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig

from docpipe.config import Settings
from docpipe.container import Container, close, open_service
from docpipe.entrypoints.http import content, documents, health
from docpipe.entrypoints.http.body_limits import MAX_PATCH_BODY_BYTES
from docpipe.entrypoints.http.dependencies import provide_service
from docpipe.entrypoints.http.problems import EXCEPTION_HANDLERS
from docpipe.entrypoints.http.request_id import send_request_id
from docpipe.entrypoints.http.request_limits import RequestLimits


def create_app(settings: Settings, container: Container | None = None) -> Litestar:
    """An app over the adapters ``settings`` select; pass ``container`` to override providers in tests."""
    container = container or Container(settings=settings)

    @asynccontextmanager
    async def open_stores(app: Litestar) -> AsyncIterator[None]:
        try:
            app.state.service = await open_service(container)
            yield
        finally:
            await close(container)

    return Litestar(
        route_handlers=[
            *allow_handlers(),
            documents.upload_document,
            documents.upload_form,
            documents.list_documents,
            documents.get_document,
            documents.update_document,
            documents.delete_document,
            content.document_content,
            content.download_by_filename,
            health.live,
            health.ready,
        ],
        dependencies={"service": Provide(provide_service, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            DefineMiddleware(
                RequestLimits,
                limits=settings.limits,
                upload_slots=asyncio.Semaphore(settings.limits.max_concurrent_uploads),
            )
        ],
        before_send=[send_request_id],
        lifespan=[open_stores],
        # The only other bodies are uploads, whose routes lift this limit and enforce their own.
        request_max_body_size=MAX_PATCH_BODY_BYTES,
        openapi_config=OpenAPIConfig(title="docpipe", version="0.1.0", path="/schema"),
    )


# Paths served by more than one handler. Litestar builds a path's automatic OPTIONS answer from the first
# handler registered there, so its Allow header would miss the others; these state it in full.
_METHODS_OF_SHARED_PATHS = {
    "/documents": "GET, OPTIONS, POST",
    "/documents/{document_id:str}": "DELETE, GET, OPTIONS, PATCH",
}


def allow_handlers() -> list[HTTPRouteHandler]:
    def handler_for(path: str, methods: str) -> HTTPRouteHandler:
        @route(path, http_method=[HttpMethod.OPTIONS], include_in_schema=False, name=f"options {path}")
        async def options() -> Response[None]:
            return Response(None, status_code=204, headers={"Allow": methods})

        return options

    return [handler_for(path, methods) for path, methods in _METHODS_OF_SHARED_PATHS.items()]
