"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from docpipe.config import Settings
from docpipe.container import Container, close, open_service
from docpipe.entrypoints.http import content, documents, health
from docpipe.entrypoints.http.dependencies import provide_service
from docpipe.entrypoints.http.problems import EXCEPTION_HANDLERS

# JSON bodies (PATCH) are small; upload routes lift this limit and enforce their own while streaming.
MAX_JSON_BODY_BYTES = 1024 * 1024


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
        lifespan=[open_stores],
        request_max_body_size=MAX_JSON_BODY_BYTES,
        openapi_config=OpenAPIConfig(title="docpipe", version="0.1.0", path="/schema"),
        on_app_init=[_no_debug],
    )


def _no_debug(config: AppConfig) -> AppConfig:
    config.debug = False
    return config
