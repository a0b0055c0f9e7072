"""Settings from ``DOCPIPE_*`` environment variables, read in this one place."""

from __future__ import annotations

import base64
import hmac
import importlib.util
import ipaddress
import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from docpipe.domain.errors import InvalidInput
from docpipe.domain.links import SigningKey

GIB = 1024**3


class BlobStoreKind(StrEnum):
    """Where document bytes live (``DOCPIPE_BLOB_STORE``)."""

    FILESYSTEM = "filesystem"
    S3 = "s3"
    MEMORY = "memory"


class RepositoryKind(StrEnum):
    """Where document metadata lives (``DOCPIPE_REPOSITORY``)."""

    SQLITE = "sqlite"
    DYNAMODB = "dynamodb"
    MEMORY = "memory"


class AuthMode(StrEnum):
    """Whether requests authenticate (``DOCPIPE_AUTH``): with keys (or tokens), or not at all."""

    KEYS = "keys"
    NONE = "none"


class ProcessingMode(StrEnum):
    """Whether this server process extracts documents' text (``DOCPIPE_PROCESSING``). ``off`` serves the
    API only: documents stay ``pending`` until a process that does (``docpipe reprocess``) takes them."""

    ON = "on"
    OFF = "off"


class QueueKind(StrEnum):
    """Where documents are processed (``DOCPIPE_QUEUE``): ``local``, by the relay of each server process;
    ``sqs``, by ``docpipe worker`` processes that the servers' relays feed through an SQS queue."""

    LOCAL = "local"
    SQS = "sqs"


class SearchKind(StrEnum):
    """Which index ``GET /search`` reads (``DOCPIPE_SEARCH``); unset, it follows the repository: SQLite's
    own index beside SQLite, the in-memory one beside memory, none beside DynamoDB."""

    SQLITE = "sqlite"
    OPENSEARCH = "opensearch"
    MEMORY = "memory"
    NONE = "none"


class LogFormat(StrEnum):
    """How log lines are written (``DOCPIPE_LOG_FORMAT``): one JSON object per line, or plain text for
    people. Unset, text when standard error is a terminal, else JSON."""

    JSON = "json"
    TEXT = "text"


class TraceExporter(StrEnum):
    """Where spans go (``OTEL_TRACES_EXPORTER``): an OTLP collector over HTTP, or standard output."""

    OTLP = "otlp"
    CONSOLE = "console"


class TracingSettings(msgspec.Struct, frozen=True, kw_only=True):
    """OpenTelemetry tracing, asked for through the standard ``OTEL_*`` variables (see ``_tracing``); the
    SDK reads the rest of them (endpoint, headers, sampler, resource, batching) itself."""

    exporters: tuple[TraceExporter, ...]


class Secret:
    """A setting's value that must never be shown: ``repr`` and ``str`` hide it, so that settings in a
    log line or a traceback do not leak it. ``matches`` compares a presented value in constant time."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def matches(self, candidate: str) -> bool:
        return hmac.compare_digest(
            candidate.encode(errors="surrogatepass"), self._value.encode(errors="surrogatepass")
        )

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


MIN_ADMIN_KEY_LENGTH = 16

TRUST_EVERY_PEER = "*"
TRUST_NO_PEER = "none"
DEFAULT_TRUSTED_PROXIES = "127.0.0.0/8,::1"
"""This machine only: a proxy beside docpipe (nginx on the host, a sidecar in the pod) is trusted out of
the box, and a client that can reach loopback runs here already. Anything farther is named."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The peers whose proxy headers docpipe believes (``DOCPIPE_TRUSTED_PROXIES``), as uvicorn's
    ``--forwarded-allow-ips`` names them: addresses and networks separated by commas, ``*`` for every
    peer, ``none`` for none. Their ``X-Request-Id``, ``traceparent`` and ``X-Forwarded-For``/``-Proto``
    are taken; any other peer's are ignored, since anyone can send them."""

    __slots__ = ("_every", "networks")

    def __init__(self, spelling: str) -> None:
        """Raises ``ValueError`` naming an entry that is neither an address nor a network."""
        entries = [entry.strip() for entry in spelling.split(",") if entry.strip()]
        self._every = entries == [TRUST_EVERY_PEER]
        self.networks: tuple[Network, ...] = ()
        if self._every or entries == [TRUST_NO_PEER]:
            return
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (CIDR); list them separated by commas,"
                    f" or give {TRUST_EVERY_PEER!r} or {TRUST_NO_PEER!r} alone"
                ) from None
        self.networks = tuple(networks)

    def trusts(self, peer: str | None) -> bool:
        """Whether ``peer`` (an address as a server reports it, IPv4 mapped into IPv6 included) is one."""
        if self._every:
            return True
        if not peer or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False  # not an IP address: a Unix socket, a test client
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def for_uvicorn(self) -> list[str]:
        """The same peers as uvicorn's ``forwarded_allow_ips``."""
        return [TRUST_EVERY_PEER] if self._every else [str(network) for network in self.networks]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrustedProxies) and (self._every, self.networks) == (
            other._every,
            other.networks,
        )

    def __hash__(self) -> int:
        return hash((self._every, self.networks))

    def __repr__(self) -> str:
        shown = TRUST_EVERY_PEER if self._every else ",".join(self.for_uvicorn()) or TRUST_NO_PEER
        return f"TrustedProxies({shown!r})"


class S3Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the S3 blob store keeps bytes. Credentials come from the standard AWS chain; a region
    left ``None`` is the AWS profile's."""

    bucket: str = "docpipe"
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    path_style: bool = False
    max_connections: int = 64
    """Pooled connections to S3: how many requests to it may be in flight at once."""
    presigned_redirect: bool = False
    """Download links answer with a redirect to a short-lived presigned GET, so bytes bypass docpipe."""
    public_endpoint_url: str | None = None
    """The endpoint clients reach S3 at, which presigned URLs are signed for (``endpoint_url`` when unset)."""


class DynamoDbSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the DynamoDB repository keeps metadata. Credentials come from the standard AWS chain; a
    region left ``None`` is the AWS profile's."""

    table: str = "docpipe-documents"
    endpoint_url: str | None = None
    region: str | None = None


class SqsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The SQS queue that feeds ``docpipe worker`` (with ``DOCPIPE_QUEUE=sqs``), and its dead-letter queue
    ``<queue>-dlq``. Credentials come from the standard AWS chain; a region left ``None`` is the AWS
    profile's."""

    queue: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,76}$")] = "docpipe-events"
    """SQS allows 80 letters, digits, ``-`` and ``_``, and the dead-letter queue's name adds ``-dlq``."""
    endpoint_url: str | None = None
    region: str | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    """Receives of a message before SQS moves it to the dead-letter queue (its ``maxReceiveCount``)."""
    visibility_timeout: Annotated[int, msgspec.Meta(ge=1, le=43200)] = 60
    """Seconds a received message stays hidden from other workers; a worker extends it while working,
    so this is how soon the job of a worker that died is handed to another."""


class OpenSearchSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the OpenSearch search index lives (``DOCPIPE_SEARCH=opensearch``): ``url`` with its port,
    e.g. ``https://search.example.com:443``; basic auth when ``username`` and ``password`` are set."""

    url: str = ""
    index: str = "docpipe-documents"
    username: str | None = None
    password: Secret | None = None


class OidcSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Which identity provider's tokens docpipe accepts, and for whom they must be meant."""

    issuer: str
    """Compared exactly with the tokens' ``iss``; its discovery document names the keys."""
    audience: str
    """What a token's ``aud`` must contain: this docpipe's name at the identity provider."""
    owner_claim: str = "sub"
    """The claim whose value is the owner a token acts for."""


WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
"""What Standard Webhooks secrets may start with, before their base64."""
WEBHOOK_KEY_BYTES = (24, 64)
"""The shortest and longest webhook key the Standard Webhooks specification recommends."""


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where every event is posted, and the secret its signature is made with (see ``domain.webhooks``)."""

    url: str
    secret: Secret
    """Base64, optionally after ``whsec_``: the HMAC key, as the receiver is given it."""

    def key(self) -> bytes:
        """The HMAC key the secret stands for (``load_settings`` checked that it decodes)."""
        return base64.b64decode(self.secret.reveal().removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)


Positive = Annotated[int, msgspec.Meta(gt=0)]


class LimitSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What one client may hold and for how long; times in seconds. See README, "Limits and timeouts"."""

    max_connections: Positive = 1000
    max_concurrent_uploads: Positive = 16
    header_timeout: Positive = 10
    keep_alive_timeout: Positive = 20
    """Longer than client pools keep idle connections (httpx 5 s, aiohttp 15 s, Node 5 s): a server
    closing one as the client reuses it makes the request fail with no response."""
    body_idle_timeout: Positive = 30
    body_min_rate: Positive = 1024
    """Bytes per second, averaged over ``body_rate_window`` seconds of waiting for the client."""
    body_rate_window: Positive = 30
    shutdown_timeout: Positive = 30
    """On SIGTERM, how long requests in flight may go on before they are cancelled."""


class ExtractionSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How text is extracted: ``workers`` child processes per server process, each extraction within
    these limits (see README, "Text extraction")."""

    workers: Positive = 2
    cpu_seconds: Positive = 30
    timeout: Positive = 60
    """Seconds of wall-clock time an extraction may take before its child is killed."""
    memory_mb: Annotated[int, msgspec.Meta(ge=128)] = 512
    max_text_mb: Positive = 64
    niceness: Annotated[int, msgspec.Meta(ge=0, le=19)] = 10
    """How much lower than the server's the CPU priority of the extraction children is."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a docpipe process is configured with, as ``load_settings`` reads it from the
    environment; README's configuration table gives each setting's variable and meaning."""

    blob_store: BlobStoreKind = BlobStoreKind.FILESYSTEM
    repository: RepositoryKind = RepositoryKind.SQLITE
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_upload_bytes: int = 5 * GIB
    upload_expiry_hours: float = 24
    """How long a resumable upload lives after its last write (and a completed one answers HEADs)."""
    create_missing: bool = True
    """Create a missing bucket, table, folder or database, at start-up and when one goes missing."""
    auth: AuthMode = AuthMode.KEYS
    processing: ProcessingMode = ProcessingMode.ON
    queue: QueueKind = QueueKind.LOCAL
    search: SearchKind | None = None
    """``None``: the index that follows the repository (see ``SearchKind`` and ``search_kind``)."""
    admin_key: Secret | None = None
    """A key of owner ``default`` with every scope, taken from the environment; with none, the first
    start writes one to ``<data_dir>/admin.key``."""
    s3: S3Settings = msgspec.field(default_factory=S3Settings)
    dynamodb: DynamoDbSettings = msgspec.field(default_factory=DynamoDbSettings)
    sqs: SqsSettings = msgspec.field(default_factory=SqsSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    extraction: ExtractionSettings = msgspec.field(default_factory=ExtractionSettings)
    opensearch: OpenSearchSettings = msgspec.field(default_factory=OpenSearchSettings)
    oidc: OidcSettings | None = None
    """``None``: bearer tokens other than docpipe's keys are refused."""
    signing_keys: tuple[SigningKey, ...] = ()
    """Keys that sign links, the first signing, all verifying; none: one generated in ``data_dir``."""
    public_url: str | None = None
    """The URL clients reach docpipe at (behind a proxy), which links are made of; else each request's."""
    webhook: WebhookSettings | None = None
    """``None``: no webhooks are posted."""
    log_format: LogFormat | None = None
    """``None``: text on a terminal, else JSON (see ``LogFormat``)."""
    tracing: TracingSettings | None = None
    """``None``: no spans are made (see ``_tracing``)."""
    trusted_proxies: TrustedProxies = msgspec.field(
        default_factory=lambda: TrustedProxies(DEFAULT_TRUSTED_PROXIES)
    )

    @property
    def search_kind(self) -> SearchKind:
        """The search index in use: ``search`` when set, else the one that follows the repository."""
        if self.search is not None:
            return self.search
        return {
            RepositoryKind.SQLITE: SearchKind.SQLITE,
            RepositoryKind.MEMORY: SearchKind.MEMORY,
            RepositoryKind.DYNAMODB: SearchKind.NONE,
        }[self.repository]


class SettingsError(ValueError):
    """A ``DOCPIPE_*`` variable holds a value docpipe cannot use."""


_TOP_LEVEL = {
    "DOCPIPE_BLOB_STORE": "blob_store",
    "DOCPIPE_REPOSITORY": "repository",
    "DOCPIPE_DATA_DIR": "data_dir",
    "DOCPIPE_HOST": "host",
    "DOCPIPE_PORT": "port",
    "DOCPIPE_WORKERS": "workers",
    "DOCPIPE_MAX_UPLOAD_BYTES": "max_upload_bytes",
    "DOCPIPE_UPLOAD_EXPIRY_HOURS": "upload_expiry_hours",
    "DOCPIPE_CREATE_MISSING": "create_missing",
    "DOCPIPE_AUTH": "auth",
    "DOCPIPE_PROCESSING": "processing",
    "DOCPIPE_QUEUE": "queue",
    "DOCPIPE_SEARCH": "search",
    "DOCPIPE_ADMIN_KEY": "admin_key",
    "DOCPIPE_PUBLIC_URL": "public_url",
    "DOCPIPE_LOG_FORMAT": "log_format",
    "DOCPIPE_TRUSTED_PROXIES": "trusted_proxies",
}
_SIGNING_KEY = "DOCPIPE_SIGNING_KEY"
_S3 = {
    "DOCPIPE_S3_BUCKET": "bucket",
    "DOCPIPE_S3_PREFIX": "prefix",
    "DOCPIPE_S3_ENDPOINT_URL": "endpoint_url",
    "DOCPIPE_S3_REGION": "region",
    "DOCPIPE_S3_PATH_STYLE": "path_style",
    "DOCPIPE_S3_MAX_CONNECTIONS": "max_connections",
    "DOCPIPE_S3_PRESIGNED_REDIRECT": "presigned_redirect",
    "DOCPIPE_S3_PUBLIC_ENDPOINT_URL": "public_endpoint_url",
}
_DYNAMODB = {
    "DOCPIPE_DYNAMODB_TABLE": "table",
    "DOCPIPE_DYNAMODB_ENDPOINT_URL": "endpoint_url",
    "DOCPIPE_DYNAMODB_REGION": "region",
}
_SQS = {
    "DOCPIPE_SQS_QUEUE": "queue",
    "DOCPIPE_SQS_ENDPOINT_URL": "endpoint_url",
    "DOCPIPE_SQS_REGION": "region",
    "DOCPIPE_SQS_MAX_ATTEMPTS": "max_attempts",
    "DOCPIPE_SQS_VISIBILITY_TIMEOUT": "visibility_timeout",
}

_OPENSEARCH = {
    "DOCPIPE_OPENSEARCH_URL": "url",
    "DOCPIPE_OPENSEARCH_INDEX": "index",
    "DOCPIPE_OPENSEARCH_USERNAME": "username",
    "DOCPIPE_OPENSEARCH_PASSWORD": "password",
}

_LIMITS = {
    "DOCPIPE_MAX_CONNECTIONS": "max_connections",
    "DOCPIPE_MAX_CONCURRENT_UPLOADS": "max_concurrent_uploads",
    "DOCPIPE_HEADER_TIMEOUT": "header_timeout",
    "DOCPIPE_KEEP_ALIVE_TIMEOUT": "keep_alive_timeout",
    "DOCPIPE_BODY_IDLE_TIMEOUT": "body_idle_timeout",
    "DOCPIPE_BODY_MIN_RATE": "body_min_rate",
    "DOCPIPE_BODY_RATE_WINDOW": "body_rate_window",
    "DOCPIPE_SHUTDOWN_TIMEOUT": "shutdown_timeout",
}

_EXTRACTION = {
    "DOCPIPE_EXTRACT_WORKERS": "workers",
    "DOCPIPE_EXTRACT_CPU_SECONDS": "cpu_seconds",
    "DOCPIPE_EXTRACT_TIMEOUT": "timeout",
    "DOCPIPE_EXTRACT_MEMORY_MB": "memory_mb",
    "DOCPIPE_EXTRACT_MAX_TEXT_MB": "max_text_mb",
    "DOCPIPE_EXTRACT_NICENESS": "niceness",
}

_OIDC = {
    "DOCPIPE_OIDC_ISSUER": "issuer",
    "DOCPIPE_OIDC_AUDIENCE": "audience",
    "DOCPIPE_OIDC_OWNER_CLAIM": "owner_claim",
}

_WEBHOOK = {
    "DOCPIPE_WEBHOOK_URL": "url",
    "DOCPIPE_WEBHOOK_SECRET": "secret",
}

_CLIENT = ("DOCPIPE_URL", "DOCPIPE_API_KEY")
"""Read by the ``docpipe-client`` command (client/), never by the server, which knows them only so that a
shell set up for the client can still start it."""

KNOWN_VARIABLES = frozenset(
    {
        *_TOP_LEVEL,
        _SIGNING_KEY,
        *_S3,
        *_DYNAMODB,
        *_SQS,
        *_OPENSEARCH,
        *_LIMITS,
        *_EXTRACTION,
        *_OIDC,
        *_WEBHOOK,
        *_CLIENT,
    }
)
_AWS_REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
"""Where a store's region comes from when its ``DOCPIPE_*_REGION`` is unset, first one set wins; with
none set the AWS profile's applies. Resolved here because the pinned botocore reads only the second."""


def _pick(environ: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    return {field: environ[name] for name, field in names.items() if environ.get(name, "") != ""}


def _with_region(fields: dict[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    region = next((environ[name] for name in _AWS_REGION_VARIABLES if environ.get(name, "") != ""), None)
    if region is not None:
        fields.setdefault("region", region)
    return fields


def untrusted_url_reason(url: str) -> str | None:
    """Why docpipe will not fetch keys from ``url``, or ``None`` when it will: https, or plain http to
    this machine only (anyone on the path could otherwise hand docpipe keys of their own)."""
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        return f"{url!r} is not an http(s) URL"
    if parts.query or parts.fragment:
        return f"{url!r} has a query or a fragment"
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return f"{url!r} is plain http to another machine; use https"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _oidc(environ: Mapping[str, str]) -> dict[str, str] | None:
    fields = _pick(environ, _OIDC)
    if not fields:
        return None
    if "issuer" not in fields:
        named = ", ".join(name for name, field in _OIDC.items() if field in fields)
        raise SettingsError(f"invalid configuration: {named} needs DOCPIPE_OIDC_ISSUER")
    if "audience" not in fields:
        raise SettingsError(
            "invalid configuration: DOCPIPE_OIDC_ISSUER needs DOCPIPE_OIDC_AUDIENCE, the audience docpipe's"
            " tokens are issued for (without it, tokens meant for any other service would be accepted)"
        )
    reason = untrusted_url_reason(fields["issuer"])
    if reason is not None:
        raise SettingsError(f"invalid configuration: DOCPIPE_OIDC_ISSUER {reason}")
    return fields


def _webhook(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The webhook settings, both or neither; the messages never quote the secret."""
    fields = _pick(environ, _WEBHOOK)
    if not fields:
        return None
    if "url" not in fields:
        raise SettingsError("invalid configuration: DOCPIPE_WEBHOOK_SECRET needs DOCPIPE_WEBHOOK_URL")
    if "secret" not in fields:
        raise SettingsError(
            "invalid configuration: DOCPIPE_WEBHOOK_URL needs DOCPIPE_WEBHOOK_SECRET, the key webhooks are"
            " signed with (e.g. the output of: openssl rand -base64 32)"
        )
    parts = urlsplit(fields["url"])
    if parts.scheme not in {"https", "http"} or not parts.hostname or parts.fragment:
        raise SettingsError(
            "invalid configuration: DOCPIPE_WEBHOOK_URL must be an http(s) URL without a fragment"
        )
    try:
        key = WebhookSettings(url=fields["url"], secret=Secret(fields["secret"])).key()
    except ValueError:
        key = b""
    shortest, longest = WEBHOOK_KEY_BYTES
    if not shortest <= len(key) <= longest:
        raise SettingsError(
            "invalid configuration: DOCPIPE_WEBHOOK_SECRET must be the base64 of"
            f" {shortest} to {longest} bytes, optionally after {WEBHOOK_SECRET_PREFIX!r}"
            " (e.g. the output of: openssl rand -base64 32)"
        )
    return fields


_OTEL_OFF = "OTEL_SDK_DISABLED"
_OTEL_EXPORTERS = "OTEL_TRACES_EXPORTER"
_OTEL_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_OTEL_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_OTLP_OVER_HTTP = "http/protobuf"
_NO_EXPORTER = "none"


def _tracing(environ: Mapping[str, str]) -> TracingSettings | None:
    """Tracing is on when ``OTEL_TRACES_EXPORTER`` names exporters, or, unset, when an OTLP endpoint is
    set (then to OTLP), unless ``OTEL_SDK_DISABLED=true``. The specification's default exporter is OTLP
    to this machine's port 4318; docpipe waits for a variable instead, so that an image with the extra
    installed sends nothing to a collector nobody runs."""
    if environ.get(_OTEL_OFF, "").strip().lower() == "true":
        return None
    named = [name.strip().lower() for name in environ.get(_OTEL_EXPORTERS, "").split(",") if name.strip()]
    if not named:
        if not any(environ.get(name, "").strip() for name in _OTEL_ENDPOINTS):
            return None
        named = [TraceExporter.OTLP.value]
    if named == [_NO_EXPORTER]:
        return None
    known = {exporter.value for exporter in TraceExporter}
    unknown = [name for name in named if name not in known]
    if unknown:
        raise SettingsError(
            f"invalid configuration: {_OTEL_EXPORTERS} names {', '.join(unknown)}; docpipe exports traces to"
            f" {', '.join(sorted(known))} or {_NO_EXPORTER!r}"
        )
    protocol = next((environ[name] for name in _OTEL_PROTOCOLS if environ.get(name, "").strip()), None)
    if TraceExporter.OTLP.value in named and protocol not in (None, _OTLP_OVER_HTTP):
        raise SettingsError(
            f"invalid configuration: OTLP protocol {protocol!r}: docpipe exports over {_OTLP_OVER_HTTP!r}"
            f" (the collector's port 4318); set {_OTEL_PROTOCOLS[0]}={_OTLP_OVER_HTTP}"
        )
    return TracingSettings(exporters=tuple(TraceExporter(name) for name in dict.fromkeys(named)))


def _decode(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    if kind is Secret and isinstance(value, str):
        return Secret(value)
    if kind is TrustedProxies and isinstance(value, str):
        try:
            return TrustedProxies(value)
        except ValueError as error:
            raise ValueError(f"DOCPIPE_TRUSTED_PROXIES: {error}") from None
    if kind is SigningKey and isinstance(value, str):
        try:
            return SigningKey(value)
        except InvalidInput as error:  # its message never holds the key
            raise ValueError(error.detail) from None
    raise NotImplementedError


def _signing_keys(environ: Mapping[str, str]) -> list[str]:
    """``DOCPIPE_SIGNING_KEY``: keys separated by commas, spaces around them ignored."""
    return [key.strip() for key in environ.get(_SIGNING_KEY, "").split(",") if key.strip()]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``environ`` (default: the process environment); unset variables keep defaults."""
    env = os.environ if environ is None else environ
    unknown = sorted(name for name in env if name.startswith("DOCPIPE_") and name not in KNOWN_VARIABLES)
    if unknown:
        raise SettingsError(
            f"unknown setting {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_VARIABLES))}"
        )
    raw: dict[str, object] = dict(_pick(env, _TOP_LEVEL))
    raw["s3"] = _with_region(_pick(env, _S3), env)
    raw["dynamodb"] = _with_region(_pick(env, _DYNAMODB), env)
    raw["sqs"] = _with_region(_pick(env, _SQS), env)
    raw["opensearch"] = _pick(env, _OPENSEARCH)
    raw["limits"] = _pick(env, _LIMITS)
    raw["extraction"] = _pick(env, _EXTRACTION)
    raw["oidc"] = _oidc(env)
    raw["signing_keys"] = _signing_keys(env)
    raw["webhook"] = _webhook(env)
    raw["tracing"] = _tracing(env)
    try:
        settings = msgspec.convert(raw, Settings, strict=False, dec_hook=_decode)
    except msgspec.ValidationError as error:
        raise SettingsError(f"invalid configuration: {error}") from None
    if settings.workers < 1:
        raise SettingsError("invalid configuration: DOCPIPE_WORKERS must be at least 1")
    if settings.workers > 1:
        in_memory = [
            f"DOCPIPE_{name}=memory"
            for name, kind in (("BLOB_STORE", settings.blob_store), ("REPOSITORY", settings.repository))
            if kind in (BlobStoreKind.MEMORY, RepositoryKind.MEMORY)
        ]
        if in_memory:
            raise SettingsError(
                f"invalid configuration: DOCPIPE_WORKERS={settings.workers} with {' and '.join(in_memory)}:"
                " each process would hold data of its own; use one worker, or stores on disk or AWS"
            )
    if settings.queue is QueueKind.SQS:
        _check_queue(settings)
    if settings.max_upload_bytes <= 0:
        raise SettingsError("invalid configuration: DOCPIPE_MAX_UPLOAD_BYTES must be positive")
    if settings.upload_expiry_hours <= 0:
        raise SettingsError("invalid configuration: DOCPIPE_UPLOAD_EXPIRY_HOURS must be positive")
    if settings.s3.max_connections <= 0:
        raise SettingsError("invalid configuration: DOCPIPE_S3_MAX_CONNECTIONS must be positive")
    _check_search(settings)
    if settings.admin_key is not None:
        _check_admin_key(settings.admin_key.reveal())
    for name, url in (
        ("DOCPIPE_PUBLIC_URL", settings.public_url),
        ("DOCPIPE_S3_PUBLIC_ENDPOINT_URL", settings.s3.public_endpoint_url),
    ):
        if url is not None and not url.startswith(("http://", "https://")):
            raise SettingsError(f"invalid configuration: {name} must start with http:// or https://")
    return settings


def _check_queue(settings: Settings) -> None:
    """With a queue, workers elsewhere must see the servers' documents, and servers never extract."""
    if settings.repository is RepositoryKind.MEMORY or settings.blob_store is BlobStoreKind.MEMORY:
        raise SettingsError(
            "invalid configuration: DOCPIPE_QUEUE=sqs with a memory store: docpipe worker processes"
            " could not see the documents; use stores on disk or AWS"
        )
    if settings.processing is ProcessingMode.OFF:
        raise SettingsError(
            "invalid configuration: DOCPIPE_PROCESSING=off with DOCPIPE_QUEUE=sqs: with a queue, servers"
            " never extract text (docpipe worker processes do); unset DOCPIPE_PROCESSING"
        )


def _check_search(settings: Settings) -> None:
    opensearch = settings.opensearch
    if settings.search_kind is SearchKind.OPENSEARCH:
        if importlib.util.find_spec("opensearchpy") is None:
            raise SettingsError(
                "invalid configuration: DOCPIPE_SEARCH=opensearch needs docpipe's opensearch extra"
                " (pip install 'docpipe[opensearch]', or uv sync --extra opensearch)"
            )
        if not opensearch.url.startswith(("http://", "https://")):
            raise SettingsError(
                "invalid configuration: DOCPIPE_SEARCH=opensearch needs DOCPIPE_OPENSEARCH_URL, an http:// or"
                " https:// URL with its port (e.g. https://search.example.com:443)"
            )
        if (opensearch.username is None) != (opensearch.password is None):
            raise SettingsError(
                "invalid configuration: DOCPIPE_OPENSEARCH_USERNAME and DOCPIPE_OPENSEARCH_PASSWORD are set"
                " together or not at all"
            )
        host = urlsplit(opensearch.url).hostname or ""
        if (
            opensearch.password is not None
            and opensearch.url.startswith("http://")
            and not _is_loopback(host)
        ):
            raise SettingsError(
                "invalid configuration: DOCPIPE_OPENSEARCH_PASSWORD would cross the network in plain http;"
                " use an https:// DOCPIPE_OPENSEARCH_URL"
            )
    if settings.search is SearchKind.MEMORY and settings.repository is not RepositoryKind.MEMORY:
        raise SettingsError(
            "invalid configuration: DOCPIPE_SEARCH=memory goes with DOCPIPE_REPOSITORY=memory only"
        )


def _check_admin_key(value: str) -> None:
    """Refuse a guessable key, or one no HTTP header can carry; the message never quotes it."""
    if len(value) < MIN_ADMIN_KEY_LENGTH or not all("!" <= character <= "~" for character in value):
        raise SettingsError(
            f"invalid configuration: DOCPIPE_ADMIN_KEY must be at least {MIN_ADMIN_KEY_LENGTH} characters,"
            " printable ASCII without spaces (e.g. the output of: openssl rand -hex 32)"
        )
