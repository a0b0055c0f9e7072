"""The one place that knows every concrete class: settings pick the adapters of the ports."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from operator import methodcaller
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from docpipe import tracing
from docpipe.adapters import (
    filesystem,
    memory,
    memory_search,
    metered,
    signing_key,
    sniffing,
    sqlite,
    sqlite_search,
)
from docpipe.adapters.extraction import sandbox
from docpipe.adapters.extraction.limits import Limits, MiB
from docpipe.adapters.extraction.spool import SpoolingExtractor
from docpipe.config import BlobStoreKind, ProcessingMode, Settings
from docpipe.domain.authentication import Authenticator
from docpipe.domain.document_search import DocumentSearch
from docpipe.domain.fsck import Fsck
from docpipe.domain.key_service import KeyService
from docpipe.domain.link_service import LinkService
from docpipe.domain.model import utc_now
from docpipe.domain.pipeline import DocumentProcessing, SearchIndexing
from docpipe.domain.ports import (
    KeyRepository,
    Outbox,
    PresignedDownloads,
    SearchIndex,
    TokenVerifier,
)
from docpipe.domain.relay import EventConsumer, Relay
from docpipe.domain.service import DocumentService
from docpipe.domain.uploads.service import ResumableUploads
from docpipe.domain.webhooks import RETRY_SCHEDULE, WebhookDispatcher, WebhookQueuing
from docpipe.domain.worker import QueuedProcessing, Worker
from docpipe.entrypoints.http.webhook_payload import webhook_body

if TYPE_CHECKING:
    import aioboto3
    from opentelemetry.sdk.trace import TracerProvider

    from docpipe.adapters import s3

logger = logging.getLogger(__name__)


def _opened_on_demand(module: str, opener: str) -> Callable[..., AsyncIterator[Any]]:
    """``docpipe.adapters.<module>.<opener>`` as a Resource's opener, its module imported only when the
    settings choose that adapter: the AWS SDK, aiohttp and joserfc take most of a second to import, which
    every ``docpipe`` command (and ``make run`` on the embedded default) would otherwise pay, and
    opensearch-py and the OpenTelemetry SDK are extras that may not be installed at all."""

    async def opened(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        open_adapter = getattr(importlib.import_module(f"docpipe.adapters.{module}"), opener)
        async with contextlib.asynccontextmanager(open_adapter)(*args, **kwargs) as adapter:
            yield adapter

    return opened


def _aws_session() -> aioboto3.Session:
    import aioboto3  # noqa: PLC0415 - imported only when an AWS adapter is chosen (see _opened_on_demand)

    return aioboto3.Session()


def _blob_store_kind(settings: Settings) -> str:
    return settings.blob_store.value


def _repository_kind(settings: Settings) -> str:
    return settings.repository.value


def _queue_kind(settings: Settings) -> str:
    return settings.queue.value


def _search_kind(settings: Settings) -> str:
    return settings.search_kind.value


def _oidc_state(settings: Settings) -> str:
    return "off" if settings.oidc is None else "on"


def _webhook_state(settings: Settings) -> str:
    return "off" if settings.webhook is None else "on"


async def _no_token_verifier() -> AsyncIterator[None]:
    yield None


async def _open_authenticator(
    keys: KeyRepository, settings: Settings, verifier: TokenVerifier | None
) -> AsyncIterator[Authenticator]:
    is_admin_key = None if settings.admin_key is None else settings.admin_key.matches
    authenticator = Authenticator(keys, is_admin_key=is_admin_key, verifier=verifier)
    try:
        yield authenticator
    finally:
        await authenticator.close()


def _extraction_limits(settings: Settings) -> Limits:
    extraction = settings.extraction
    return Limits(
        cpu_seconds=extraction.cpu_seconds,
        wall_seconds=extraction.timeout,
        memory_bytes=extraction.memory_mb * MiB,
        text_bytes=extraction.max_text_mb * MiB,
    )


async def _not_offered() -> AsyncIterator[None]:
    """What a Selector yields for a port the chosen adapter does not implement (yet)."""
    yield None


def _relay(
    outbox: Outbox,
    settings: Settings,
    processing: EventConsumer,
    index: SearchIndex | None,
    indexing: SearchIndexing,
    webhooks: WebhookQueuing | None,
) -> Relay:
    """The relay of this process: events to processing (unless ``DOCPIPE_PROCESSING=off``), in process
    or queued for workers, to the search index when there is one, and to the webhook queue when webhooks
    are on."""
    consumers: list[EventConsumer] = []
    if settings.processing is ProcessingMode.ON:
        consumers.append(processing)
    if index is not None:
        consumers.append(indexing)
    if webhooks is not None:
        consumers.append(webhooks)
    return Relay(metered.MeteredOutbox(outbox), consumers)


def _tracing_state(settings: Settings) -> str:
    """``on`` when ``OTEL_*`` variables ask for traces and the ``otel`` extra is installed."""
    if settings.tracing is None:
        return "off"
    try:
        installed = importlib.util.find_spec("opentelemetry.sdk") is not None
    except ModuleNotFoundError:  # its parent package, ``opentelemetry``, is missing too
        installed = False
    return "on" if installed else "missing"


async def _otel_missing() -> AsyncIterator[None]:
    """Telemetry never stops docpipe: traces asked for without the extra are a warning, not a refusal
    (``OTEL_*`` variables are often set for every process of a machine or a pod)."""
    logger.warning(
        "OTEL_* variables ask for traces, but docpipe's otel extra is not installed (pip install"
        " 'docpipe[otel]', or uv sync --extra otel): no spans are made"
    )
    yield None


def _upload_expiry(settings: Settings) -> timedelta:
    return timedelta(hours=settings.upload_expiry_hours)


class Container(containers.DeclarativeContainer):
    """Adapters are Resources: opened (and their bucket, table or folder created, unless
    ``create_missing`` is false) on first use and closed by ``shutdown_resources``. Only the selected
    ones are ever opened."""

    settings = providers.Dependency(instance_of=Settings)

    aws_session = providers.Singleton(_aws_session)

    s3_release_after: providers.Object[float | None] = providers.Object(None)
    """Seconds a download may leave its S3 connection idle; ``None`` is the adapter's own
    (``s3.RELEASE_AFTER``). Tests lengthen it to hold a connection."""

    blob_store = providers.Selector(
        providers.Callable(_blob_store_kind, settings),
        filesystem=providers.Resource(
            filesystem.open_blob_store,
            settings.provided.data_dir,
            create_missing=settings.provided.create_missing,
        ),
        s3=providers.Resource(
            _opened_on_demand("s3", "open_blob_store"),
            aws_session,
            settings.provided.s3,
            create_missing=settings.provided.create_missing,
            release_after=s3_release_after,
        ),
        memory=providers.Resource(memory.open_blob_store),
    )

    sqlite_repository = providers.Resource(
        sqlite.open_repository,
        settings.provided.data_dir,
        create_missing=settings.provided.create_missing,
    )
    dynamodb_repository = providers.Resource(
        _opened_on_demand("dynamodb", "open_repository"),
        aws_session,
        settings.provided.dynamodb,
        create_missing=settings.provided.create_missing,
    )

    memory_repository = providers.Resource(memory.open_repository)

    repository = providers.Selector(
        providers.Callable(_repository_kind, settings),
        sqlite=sqlite_repository,
        dynamodb=dynamodb_repository,
        memory=memory_repository,
    )

    outbox = providers.Selector(
        providers.Callable(_repository_kind, settings),
        sqlite=providers.Factory(methodcaller("outbox"), sqlite_repository),
        dynamodb=providers.Factory(methodcaller("outbox"), dynamodb_repository),
        memory=providers.Factory(methodcaller("outbox"), memory_repository),
    )
    """The events the repository wrote with its changes; one per relay. Built on the selected repository
    itself, like ``keys``."""

    search_index = providers.Selector(
        providers.Callable(_search_kind, settings),
        sqlite=providers.Resource(
            sqlite_search.open_search_index,
            settings.provided.data_dir,
            create_missing=settings.provided.create_missing,
        ),
        opensearch=providers.Resource(
            _opened_on_demand("opensearch_search", "open_search_index"),
            settings.provided.opensearch,
            create_missing=settings.provided.create_missing,
        ),
        memory=providers.Resource(memory_search.open_search_index),
        none=providers.Resource(_not_offered),
    )
    """Full-text search (``DOCPIPE_SEARCH``); ``None`` when there is none (``GET /search`` is 501)."""

    token_verifier = providers.Selector(
        providers.Callable(_oidc_state, settings),
        on=providers.Resource(_opened_on_demand("oidc", "open_token_verifier"), settings.provided.oidc),
        off=providers.Resource(_no_token_verifier),
    )
    """Verifies the OIDC identity provider's bearer tokens; ``None`` when ``DOCPIPE_OIDC_ISSUER`` is unset."""

    keys = providers.Selector(
        providers.Callable(_repository_kind, settings),
        sqlite=providers.Singleton(methodcaller("api_keys"), sqlite_repository),
        dynamodb=providers.Singleton(methodcaller("api_keys"), dynamodb_repository),
        memory=providers.Resource(memory.open_key_repository),
    )
    """The API keys, kept beside the documents' metadata: awaiting it opens the repository. Built on the
    selected repository itself, not on ``repository``, so that a test wrapping the documents' repository
    (a spy, a failing wrapper) leaves keys alone."""

    key_service = providers.Singleton(KeyService, keys=keys)

    metered_blob_store = providers.Singleton(
        metered.MeteredBlobStore, blob_store, providers.Callable(_blob_store_kind, settings)
    )
    metered_repository = providers.Singleton(
        metered.MeteredRepository, repository, providers.Callable(_repository_kind, settings)
    )
    """The stores as the use cases see them: each operation timed and its store failures counted
    (``docpipe.metrics``), by adapter."""

    authenticator = providers.Resource(_open_authenticator, keys, settings, token_verifier)
    """Who a request's credential stands for; opening it opens ``keys`` and ``token_verifier``."""

    service = providers.Singleton(
        DocumentService,
        blobs=metered_blob_store,
        repository=metered_repository,
        max_upload_bytes=settings.provided.max_upload_bytes,
        detect_content_type=providers.Object(sniffing.detect_content_type),
        index=search_index,
    )

    upload_sessions = providers.Selector(
        providers.Callable(_repository_kind, settings),
        sqlite=providers.Singleton(methodcaller("uploads"), sqlite_repository),
        dynamodb=providers.Singleton(methodcaller("uploads"), dynamodb_repository),
        memory=providers.Resource(memory.open_upload_repository),
    )
    """Resumable upload sessions, beside the documents' metadata."""

    resumable_blobs = providers.Selector(
        providers.Callable(_blob_store_kind, settings),
        filesystem=blob_store,
        s3=providers.Singleton(methodcaller("resumable"), blob_store),
        memory=blob_store,
    )
    """Where resumable uploads' bytes go: the blob store itself, or on S3 its multipart uploads."""

    resumable = providers.Singleton(
        ResumableUploads,
        service,
        upload_sessions,
        resumable_blobs,
        expiry=providers.Callable(_upload_expiry, settings),
    )

    link_clock = providers.Object(utc_now)
    """What time links are issued and checked at (tests move it forward)."""

    link_signer = providers.Singleton(signing_key.link_signer, settings)
    """``DOCPIPE_SIGNING_KEY``, or the key kept in the data folder (made on first use)."""

    links = providers.Singleton(LinkService, documents=service, signer=link_signer, clock=link_clock)

    extractor = providers.Resource(
        sandbox.open_extractor,
        limits=providers.Callable(_extraction_limits, settings),
        workers=settings.provided.extraction.workers,
        niceness=settings.provided.extraction.niceness,
    )
    """Text extraction in limited child processes, started when first awaited."""

    processing = providers.Singleton(
        DocumentProcessing,
        blobs=metered_blob_store,
        repository=metered_repository,
        extractor=providers.Singleton(SpoolingExtractor, extractor),
        index=search_index,
    )

    work_queue = providers.Selector(
        providers.Callable(_queue_kind, settings),
        local=providers.Resource(_not_offered),
        sqs=providers.Resource(
            _opened_on_demand("sqs", "open_work_queue"),
            aws_session,
            settings.provided.sqs,
            create_missing=settings.provided.create_missing,
        ),
    )
    """Where the relay queues processing jobs for ``docpipe worker``; ``None`` when servers process."""

    traced_processing = providers.Singleton(metered.TracedProcessing, processing)
    """Processing with each job a span when tracing is on, as the relay and workers run it."""

    processing_consumer = providers.Selector(
        providers.Callable(_queue_kind, settings),
        local=traced_processing,
        sqs=providers.Singleton(QueuedProcessing, work_queue),
    )
    """What the relay hands events to for processing: ``processing`` itself, or the work queue."""

    worker = providers.Singleton(
        Worker,
        work_queue,
        traced_processing,
        concurrency=settings.provided.extraction.workers,
        visibility_seconds=settings.provided.sqs.visibility_timeout,
    )
    """``docpipe worker``'s loop: jobs from the work queue, processed as a server would."""

    indexing = providers.Singleton(SearchIndexing, search_index)

    search = providers.Singleton(DocumentSearch, search_index, metered_repository)

    webhook_queue = providers.Selector(
        providers.Callable(_repository_kind, settings),
        sqlite=providers.Singleton(methodcaller("webhook_queue"), sqlite_repository),
        dynamodb=providers.Singleton(methodcaller("webhook_queue"), dynamodb_repository),
        memory=providers.Singleton(methodcaller("webhook_queue"), memory_repository),
    )
    """The webhooks not yet delivered, beside the documents' metadata: the relay adds, the dispatcher
    posts."""

    webhook_schedule = providers.Object(RETRY_SCHEDULE)
    """Seconds between a failed webhook's tries (tests shorten them)."""

    webhook_queuing = providers.Selector(
        providers.Callable(_webhook_state, settings),
        on=providers.Singleton(WebhookQueuing, webhook_queue),
        off=providers.Resource(_not_offered),
    )

    webhook_dispatcher = providers.Selector(
        providers.Callable(_webhook_state, settings),
        on=providers.Singleton(
            WebhookDispatcher,
            providers.Singleton(metered.MeteredWebhookQueue, webhook_queue),
            providers.Resource(
                _opened_on_demand("webhook_sender", "open_webhook_sender"),
                settings.provided.webhook,
                providers.Object(webhook_body),
            ),
            schedule=webhook_schedule,
        ),
        off=providers.Resource(_not_offered),
    )
    """Posts the queued webhooks (``DOCPIPE_WEBHOOK_URL``); ``None`` when webhooks are off. ``docpipe
    serve`` runs it beside the relay."""

    relay = providers.Singleton(
        _relay, outbox, settings, processing_consumer, search_index, indexing, webhook_queuing
    )
    """Delivers the outbox's events to processing, search indexing and the webhook queue; ``docpipe
    serve`` runs it."""

    tracer_provider = providers.Selector(
        providers.Callable(_tracing_state, settings),
        on=providers.Resource(_opened_on_demand("otel", "open_tracer_provider"), settings.provided.tracing),
        missing=providers.Resource(_otel_missing),
        off=providers.Resource(_not_offered),
    )
    """The OpenTelemetry SDK's provider (``OTEL_*`` variables), ``None`` when tracing is off; tests
    override it with one exporting to memory."""

    fsck = providers.Factory(
        Fsck, blobs=blob_store, repository=repository, uploads=upload_sessions, index=search_index
    )
    """Call with ``grace=``; awaiting the call opens the adapters."""


async def open_service(container: Container) -> DocumentService:
    """Open the selected adapters (creating their bucket, table or folder) and return the service.

    The stores open one after the other: resolved together, one failing would leave the other's
    opening in flight, to fail again inside ``close``. Resolving again returns the same service: the
    providers are singletons and resources.
    """
    await container.blob_store()
    await container.repository()
    service: DocumentService = await container.service()  # type: ignore[misc]
    return service


async def open_token_verifier(container: Container) -> TokenVerifier | None:
    """The OIDC token verifier, or ``None`` when OIDC is off. Opening it does not wait for the identity
    provider: its keys are fetched in the background (see ``docpipe.adapters.oidc``)."""
    verifier: TokenVerifier | None = await container.token_verifier()
    return verifier


async def presigned_downloads(container: Container) -> PresignedDownloads | None:
    """The S3 blob store when download links redirect to presigned URLs (``DOCPIPE_S3_PRESIGNED_REDIRECT``),
    else ``None``: links are then served through docpipe."""
    settings: Settings = container.settings()
    if settings.blob_store is BlobStoreKind.S3 and settings.s3.presigned_redirect:
        store: s3.S3BlobStore = await container.blob_store()
        return store
    return None


async def open_authenticator(container: Container) -> Authenticator:
    """Open the key repository and return the authenticator over it."""
    authenticator: Authenticator = await container.authenticator()  # type: ignore[misc]
    return authenticator


async def begin_tracing(container: Container) -> None:
    """Trace this process's requests, store operations and processing jobs, when tracing is on; the
    caller ends it (``tracing.end``) before ``close`` shuts the provider down."""
    provider: TracerProvider | None = await container.tracer_provider()
    if provider is not None:
        from docpipe.adapters import otel  # noqa: PLC0415 - the extra may be absent

        tracing.begin(otel.OtelTracing(provider))


async def close(container: Container) -> None:
    """Close every adapter that was opened; safe to call more than once. The authenticator goes first:
    it waits for its recordings of key use, which need the repository."""
    closing = container.authenticator.shutdown()
    if closing is not None:
        await closing
    await container.shutdown_resources()  # type: ignore[misc]
