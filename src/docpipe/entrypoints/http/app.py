"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig

from docpipe import metrics, tracing
from docpipe.config import AuthMode, Settings
from docpipe.container import (
    Container,
    begin_tracing,
    close,
    open_authenticator,
    open_service,
    presigned_downloads,
)
from docpipe.domain.service import DocumentService
from docpipe.domain.webhooks import WebhookDispatcher
from docpipe.entrypoints import data_lock
from docpipe.entrypoints.background import in_background
from docpipe.entrypoints.http.authentication import (
    AUTHENTICATE,
    PUBLIC,
    Authentication,
    authentication_off,
)
from docpipe.entrypoints.http.body_limits import MAX_PATCH_BODY_BYTES
from docpipe.entrypoints.http.content import ContentController
from docpipe.entrypoints.http.dependencies import (
    provide_key_service,
    provide_principal,
    provide_search,
    provide_uploads,
)
from docpipe.entrypoints.http.documents import DocumentController
from docpipe.entrypoints.http.health import HealthController
from docpipe.entrypoints.http.keys import KeyController
from docpipe.entrypoints.http.links import LinkController
from docpipe.entrypoints.http.observed import Observed
from docpipe.entrypoints.http.openapi import SECURITY_COMPONENTS
from docpipe.entrypoints.http.point_reads import PointReads
from docpipe.entrypoints.http.problems import EXCEPTION_HANDLERS
from docpipe.entrypoints.http.prometheus import MetricsController
from docpipe.entrypoints.http.request_limits import RequestLimits
from docpipe.entrypoints.http.search import SearchController
from docpipe.entrypoints.http.text import TextController
from docpipe.entrypoints.http.tus import UploadController
from docpipe.entrypoints.sweeper import sweeping

logger = logging.getLogger("docpipe.http")

_AUTHENTICATION_OFF = (
    "DOCPIPE_AUTH=none: authentication is off, every request acts as owner 'default' with every scope"
)


def create_app(settings: Settings, container: Container | None = None) -> Litestar:
    """An app over the adapters ``settings`` select; pass ``container`` to override providers in tests."""
    container = container or Container(settings=settings)

    @asynccontextmanager
    async def open_stores(app: Litestar) -> AsyncIterator[None]:
        """Every process serving holds the data folder's lock (see ``data_lock``), workers included:
        one that outlives its supervisor still has uploads in flight that fsck must not judge."""
        with data_lock.serving(settings):
            try:
                app.state.service = await open_service(container)
                await begin_tracing(container)
                app.state.links = await container.links()  # type: ignore[misc]
                app.state.presigned = await presigned_downloads(container)
                app.state.key_service = await container.key_service()  # type: ignore[misc]
                authenticator = await open_authenticator(container)
                app.state[AUTHENTICATE] = authenticator.authenticate
                if settings.auth is AuthMode.NONE:
                    logger.warning(_AUTHENTICATION_OFF)
                    app.state[AUTHENTICATE] = authentication_off
                app.state.resumable = await container.resumable()  # type: ignore[misc]
                app.state.search = await container.search()  # type: ignore[misc]
                relay = await container.relay()  # type: ignore[misc]
                webhooks: WebhookDispatcher | None = await container.webhook_dispatcher()
                async with (
                    sweeping(app.state.resumable),
                    in_background(relay.run()),
                    in_background(webhooks.run()) if webhooks is not None else contextlib.nullcontext(),
                ):
                    yield
            finally:
                tracing.end()
                await close(container)
                metrics.process_exiting()

    def provide_service() -> DocumentService:
        """Without parameters, Litestar calls it without converting any: a ``state`` parameter would
        be a new ``State``, with its own lock, on every request."""
        service: DocumentService = app.state.service
        return service

    app = Litestar(
        route_handlers=[
            DocumentController,
            ContentController,
            LinkController,
            UploadController,
            HealthController,
            KeyController,
            TextController,
            SearchController,
            MetricsController,
        ],
        dependencies={
            "service": Provide(provide_service, sync_to_thread=False),
            "key_service": Provide(provide_key_service, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=False),
            "uploads": Provide(provide_uploads, sync_to_thread=False),
            "search": Provide(provide_search, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            DefineMiddleware(Authentication),
            DefineMiddleware(
                RequestLimits,
                limits=settings.limits,
                upload_slots=asyncio.Semaphore(settings.limits.max_concurrent_uploads),
            ),
        ],
        lifespan=[open_stores],
        # Logging is docpipe's: ``docpipe serve`` configures it, and uvicorn (``logs.logging_config``) in
        # every worker process. Litestar's own configuration would replace the root logger's handler
        # with its queue, in text, there; and an app built in a test must leave the test's logging be.
        logging_config=None,
        state=State({"public_url": settings.public_url}),
        # The only other bodies are uploads, whose routes lift this limit and enforce their own.
        request_max_body_size=MAX_PATCH_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="docpipe",
            version="0.1.0",
            openapi_router=Router("/schema", route_handlers=[], include_in_schema=False, opt={PUBLIC: True}),
            components=SECURITY_COMPONENTS,
        ),
    )
    # Around Litestar's routing and exception handling, so that every request is measured and logged,
    # those no route answers included (see ``observed``); the most frequent reads answered before
    # Litestar routes them (see ``point_reads``).
    app.asgi_handler = Observed(PointReads(app.asgi_handler, app), settings.trusted_proxies)
    return app
