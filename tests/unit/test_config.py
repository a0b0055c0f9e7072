"""Settings come from DOCPIPE_* variables; mistakes are reported, not ignored."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import pytest

from docpipe.config import (
    GIB,
    BlobStoreKind,
    OidcSettings,
    ProcessingMode,
    QueueKind,
    SearchKind,
    SettingsError,
    SqsSettings,
    load_settings,
)


def test_defaults_are_the_embedded_setup() -> None:
    settings = load_settings({})
    assert settings.blob_store is BlobStoreKind.FILESYSTEM
    assert settings.data_dir == Path("data")
    assert (settings.host, settings.port, settings.max_upload_bytes) == ("127.0.0.1", 8000, 5 * GIB)
    assert settings.workers == 1
    assert settings.create_missing is True


def test_limits_are_parsed() -> None:
    limits = load_settings({"DOCPIPE_MAX_CONCURRENT_UPLOADS": "4", "DOCPIPE_BODY_IDLE_TIMEOUT": "7"}).limits
    assert (limits.max_concurrent_uploads, limits.body_idle_timeout) == (4, 7)
    assert limits.header_timeout == load_settings({}).limits.header_timeout


def test_extraction_limits_are_parsed() -> None:
    extraction = load_settings(
        {"DOCPIPE_EXTRACT_WORKERS": "3", "DOCPIPE_EXTRACT_MEMORY_MB": "256", "DOCPIPE_EXTRACT_TIMEOUT": "9"}
    ).extraction
    assert (extraction.workers, extraction.memory_mb, extraction.timeout) == (3, 256, 9)
    assert extraction.cpu_seconds == load_settings({}).extraction.cpu_seconds
    assert load_settings({}).extraction.niceness == 10
    assert load_settings({"DOCPIPE_EXTRACT_NICENESS": "0"}).extraction.niceness == 0


def test_processing_can_be_turned_off() -> None:
    assert load_settings({}).processing is ProcessingMode.ON
    assert load_settings({"DOCPIPE_PROCESSING": "off"}).processing is ProcessingMode.OFF


@pytest.mark.parametrize(
    ("repository", "index"),
    [("sqlite", SearchKind.SQLITE), ("memory", SearchKind.MEMORY), ("dynamodb", SearchKind.NONE)],
)
def test_the_search_index_follows_the_repository_unless_named(repository: str, index: SearchKind) -> None:
    assert load_settings({"DOCPIPE_REPOSITORY": repository}).search_kind is index
    named = load_settings({"DOCPIPE_REPOSITORY": repository, "DOCPIPE_SEARCH": "none"})
    assert named.search_kind is SearchKind.NONE


def test_opensearch_settings_are_parsed() -> None:
    settings = load_settings(
        {
            "DOCPIPE_REPOSITORY": "dynamodb",
            "DOCPIPE_SEARCH": "opensearch",
            "DOCPIPE_OPENSEARCH_URL": "https://search.example.com:443",
            "DOCPIPE_OPENSEARCH_USERNAME": "docpipe",
            "DOCPIPE_OPENSEARCH_PASSWORD": "hunter2-hunter2",
        }
    )
    assert settings.search_kind is SearchKind.OPENSEARCH
    opensearch = settings.opensearch
    assert (opensearch.url, opensearch.index, opensearch.username) == (
        "https://search.example.com:443",
        "docpipe-documents",
        "docpipe",
    )
    assert opensearch.password is not None
    assert "hunter2" not in repr(settings)
    assert load_settings({"DOCPIPE_OPENSEARCH_INDEX": "docs"}).opensearch.index == "docs"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"DOCPIPE_SEARCH": "opensearch"}, "DOCPIPE_OPENSEARCH_URL"),
        ({"DOCPIPE_SEARCH": "opensearch", "DOCPIPE_OPENSEARCH_URL": "search:9200"}, "DOCPIPE_OPENSEARCH_URL"),
        (
            {
                "DOCPIPE_SEARCH": "opensearch",
                "DOCPIPE_OPENSEARCH_URL": "https://search:443",
                "DOCPIPE_OPENSEARCH_USERNAME": "docpipe",
            },
            "DOCPIPE_OPENSEARCH_PASSWORD",
        ),
        (
            {
                "DOCPIPE_SEARCH": "opensearch",
                "DOCPIPE_OPENSEARCH_URL": "http://search.example.com:9200",
                "DOCPIPE_OPENSEARCH_USERNAME": "docpipe",
                "DOCPIPE_OPENSEARCH_PASSWORD": "hunter2-hunter2",
            },
            "https",
        ),
        ({"DOCPIPE_SEARCH": "memory"}, "DOCPIPE_REPOSITORY=memory"),
        ({"DOCPIPE_SEARCH": "elastic"}, "search"),
    ],
)
def test_incomplete_or_unsafe_search_settings_are_refused(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


def test_opensearch_without_its_extra_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """``make run`` installs no extras; choosing OpenSearch then says what to install, at start-up."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "opensearchpy" else find_spec(name, *args),
    )
    environ = {"DOCPIPE_SEARCH": "opensearch", "DOCPIPE_OPENSEARCH_URL": "https://search:443"}
    with pytest.raises(SettingsError, match=r"docpipe\[opensearch\]"):
        load_settings(environ)


def test_variables_are_parsed() -> None:
    settings = load_settings(
        {
            "DOCPIPE_DATA_DIR": "/srv/docs",
            "DOCPIPE_PORT": "9000",
            "DOCPIPE_WORKERS": "4",
            "DOCPIPE_S3_PATH_STYLE": "true",
            "DOCPIPE_S3_PREFIX": "t/",
            "DOCPIPE_CREATE_MISSING": "false",
        }
    )
    assert (settings.data_dir, settings.port, settings.s3.path_style, settings.s3.prefix) == (
        Path("/srv/docs"),
        9000,
        True,
        "t/",
    )
    assert settings.workers == 4
    assert settings.create_missing is False


@pytest.mark.parametrize(
    "environ",
    [
        {"DOCPIPE_BLOB_STORE": "ftp"},
        {"DOCPIPE_PORT": "eighty"},
        {"DOCPIPE_MAX_UPLOAD_BYTES": "0"},
        {"DOCPIPE_S3_MAX_CONNECTIONS": "0"},
        {"DOCPIPE_WORKERS": "0"},
        {"DOCPIPE_WORKERS": "two"},
        {"DOCPIPE_BLOBSTORE": "s3"},
        {"DOCPIPE_HEADER_TIMEOUT": "0"},
        {"DOCPIPE_MAX_CONNECTIONS": "-5"},
        {"DOCPIPE_BODY_MIN_RATE": "fast"},
        {"DOCPIPE_EXTRACT_WORKERS": "0"},
        {"DOCPIPE_PROCESSING": "later"},
        {"DOCPIPE_EXTRACT_MEMORY_MB": "64"},
        {"DOCPIPE_EXTRACT_CPU_SECONDS": "-1"},
        {"DOCPIPE_EXTRACT_NICENESS": "20"},
        {"DOCPIPE_CREATE_MISSING": "sometimes"},
        {"DOCPIPE_PUBLIC_URL": "docs.example.com"},
        {"DOCPIPE_S3_PUBLIC_ENDPOINT_URL": "s3.example.com"},
        {"DOCPIPE_S3_PRESIGNED_REDIRECT": "maybe"},
        {"DOCPIPE_SIGNING_KEY": "short"},
        {"DOCPIPE_QUEUE": "kafka"},
        {"DOCPIPE_SQS_QUEUE": "jobs.fifo"},
        {"DOCPIPE_SQS_QUEUE": "q" * 77},
        {"DOCPIPE_SQS_MAX_ATTEMPTS": "0"},
        {"DOCPIPE_SQS_VISIBILITY_TIMEOUT": "0"},
        {"DOCPIPE_SQS_VISIBILITY_TIMEOUT": "43201"},
    ],
)
def test_bad_settings_are_refused_with_a_clear_error(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"DOCPIPE_WORKERS": "2", "DOCPIPE_BLOB_STORE": "memory"}, "DOCPIPE_BLOB_STORE=memory"),
        ({"DOCPIPE_WORKERS": "3", "DOCPIPE_REPOSITORY": "memory"}, "DOCPIPE_REPOSITORY=memory"),
    ],
)
def test_several_workers_cannot_share_a_memory_store(environ: dict[str, str], named: str) -> None:
    """Each process would have its own data: a document uploaded to one would be missing in the other."""
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


def test_one_worker_may_use_memory_stores() -> None:
    settings = load_settings(
        {"DOCPIPE_WORKERS": "1", "DOCPIPE_BLOB_STORE": "memory", "DOCPIPE_REPOSITORY": "memory"}
    )
    assert settings.workers == 1


@pytest.mark.parametrize(
    ("environ", "s3_region", "dynamodb_region"),
    [
        ({}, None, None),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, "eu-west-1", "eu-west-1"),
        ({"AWS_REGION": "eu-north-1"}, "eu-north-1", "eu-north-1"),
        ({"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "eu-west-1"}, "eu-north-1", "eu-north-1"),
        ({"AWS_REGION": "", "AWS_DEFAULT_REGION": "eu-west-1"}, "eu-west-1", "eu-west-1"),
        (
            {"DOCPIPE_S3_REGION": "us-west-2", "AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "eu-west-1"},
            "us-west-2",
            "eu-north-1",
        ),
        (
            {"DOCPIPE_DYNAMODB_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "eu-west-1"},
            "eu-west-1",
            "ap-south-1",
        ),
    ],
)
def test_each_store_takes_its_own_region_then_aws_region_then_aws_default_region(
    environ: dict[str, str], s3_region: str | None, dynamodb_region: str | None
) -> None:
    """With none of them set the region stays unset, and botocore takes the profile's."""
    settings = load_settings(environ)
    assert (settings.s3.region, settings.dynamodb.region) == (s3_region, dynamodb_region)


def test_servers_process_unless_a_queue_is_chosen() -> None:
    assert load_settings({}).queue is QueueKind.LOCAL
    settings = load_settings(
        {
            "DOCPIPE_QUEUE": "sqs",
            "DOCPIPE_SQS_QUEUE": "acme-jobs",
            "DOCPIPE_SQS_ENDPOINT_URL": "http://localhost:4566",
            "DOCPIPE_SQS_MAX_ATTEMPTS": "3",
            "DOCPIPE_SQS_VISIBILITY_TIMEOUT": "90",
            "AWS_REGION": "eu-north-1",
        }
    )
    assert settings.queue is QueueKind.SQS
    assert settings.sqs == SqsSettings(
        queue="acme-jobs",
        endpoint_url="http://localhost:4566",
        region="eu-north-1",
        max_attempts=3,
        visibility_timeout=90,
    )
    assert (
        load_settings({"DOCPIPE_SQS_REGION": "us-west-2", "AWS_REGION": "eu-north-1"}).sqs.region
        == "us-west-2"
    )


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"DOCPIPE_BLOB_STORE": "memory", "DOCPIPE_REPOSITORY": "memory"}, "memory store"),
        ({"DOCPIPE_REPOSITORY": "memory"}, "memory store"),
        ({"DOCPIPE_PROCESSING": "off"}, "DOCPIPE_PROCESSING=off"),
    ],
)
def test_a_queue_is_refused_where_workers_could_not_do_the_work(environ: dict[str, str], named: str) -> None:
    """A worker cannot see what a memory store holds; and with a queue servers never extract, so
    ``DOCPIPE_PROCESSING=off`` would only leave everything pending by surprise."""
    with pytest.raises(SettingsError, match=named):
        load_settings({"DOCPIPE_QUEUE": "sqs", **environ})


def test_oidc_is_off_unless_an_issuer_is_set() -> None:
    assert load_settings({}).oidc is None


def test_oidc_settings_are_parsed() -> None:
    environ = {"DOCPIPE_OIDC_ISSUER": "https://idp.example/realms/acme", "DOCPIPE_OIDC_AUDIENCE": "docpipe"}
    assert load_settings(environ).oidc == OidcSettings(
        issuer="https://idp.example/realms/acme", audience="docpipe", owner_claim="sub"
    )
    custom = load_settings({**environ, "DOCPIPE_OIDC_OWNER_CLAIM": "tenant"}).oidc
    assert custom is not None
    assert custom.owner_claim == "tenant"


@pytest.mark.parametrize("issuer", ["http://localhost:8080", "http://127.0.0.1:9000/", "http://[::1]:9000/x"])
def test_an_issuer_on_this_machine_may_be_plain_http(issuer: str) -> None:
    settings = load_settings({"DOCPIPE_OIDC_ISSUER": issuer, "DOCPIPE_OIDC_AUDIENCE": "docpipe"})
    assert settings.oidc is not None
    assert settings.oidc.issuer == issuer


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"DOCPIPE_OIDC_ISSUER": "https://idp.example"}, "DOCPIPE_OIDC_AUDIENCE"),
        ({"DOCPIPE_OIDC_AUDIENCE": "docpipe"}, "DOCPIPE_OIDC_ISSUER"),
        ({"DOCPIPE_OIDC_OWNER_CLAIM": "email"}, "DOCPIPE_OIDC_ISSUER"),
        ({"DOCPIPE_OIDC_ISSUER": "http://idp.example", "DOCPIPE_OIDC_AUDIENCE": "d"}, "https"),
        ({"DOCPIPE_OIDC_ISSUER": "idp.example", "DOCPIPE_OIDC_AUDIENCE": "d"}, "http"),
        ({"DOCPIPE_OIDC_ISSUER": "https://idp.example/?tenant=a", "DOCPIPE_OIDC_AUDIENCE": "d"}, "query"),
    ],
)
def test_incomplete_or_unsafe_oidc_settings_are_refused(environ: dict[str, str], named: str) -> None:
    """An issuer without an audience would accept tokens issued for any other service; keys fetched over
    plain http from another machine could be anyone's."""
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


def test_link_settings_are_parsed() -> None:
    settings = load_settings(
        {
            "DOCPIPE_PUBLIC_URL": "https://docs.example.com/api",
            "DOCPIPE_S3_PRESIGNED_REDIRECT": "true",
            "DOCPIPE_S3_PUBLIC_ENDPOINT_URL": "https://s3.example.com",
        }
    )
    assert settings.public_url == "https://docs.example.com/api"
    assert (settings.s3.presigned_redirect, settings.s3.public_endpoint_url) == (
        True,
        "https://s3.example.com",
    )
    defaults = load_settings({})
    assert (defaults.public_url, defaults.s3.presigned_redirect, defaults.signing_keys) == (None, False, ())


WEBHOOK_KEY = bytes(range(32))
WEBHOOK_SECRET = base64.b64encode(WEBHOOK_KEY).decode()


@pytest.mark.parametrize("secret", [WEBHOOK_SECRET, f"whsec_{WEBHOOK_SECRET}"])
def test_webhook_settings_are_parsed_with_or_without_the_whsec_prefix(secret: str) -> None:
    settings = load_settings(
        {"DOCPIPE_WEBHOOK_URL": "https://hooks.example/in?t=1", "DOCPIPE_WEBHOOK_SECRET": secret}
    )
    assert settings.webhook is not None
    assert settings.webhook.url == "https://hooks.example/in?t=1"
    assert settings.webhook.key() == WEBHOOK_KEY
    assert secret not in repr(settings)
    assert load_settings({}).webhook is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"DOCPIPE_WEBHOOK_URL": "https://hooks.example/in"}, "DOCPIPE_WEBHOOK_SECRET"),
        ({"DOCPIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}, "DOCPIPE_WEBHOOK_URL"),
        ({"DOCPIPE_WEBHOOK_URL": "hooks.example/in", "DOCPIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}, "http"),
        (
            {"DOCPIPE_WEBHOOK_URL": "https://hooks.example/#x", "DOCPIPE_WEBHOOK_SECRET": WEBHOOK_SECRET},
            "fragment",
        ),
        (
            {"DOCPIPE_WEBHOOK_URL": "https://hooks.example/", "DOCPIPE_WEBHOOK_SECRET": "not base64!"},
            "base64",
        ),
        (
            {"DOCPIPE_WEBHOOK_URL": "https://hooks.example/", "DOCPIPE_WEBHOOK_SECRET": "c2hvcnQ="},
            "24 to 64 bytes",
        ),
    ],
)
def test_incomplete_or_unusable_webhook_settings_are_refused(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named) as refused:
        load_settings(environ)
    assert "c2hvcnQ" not in str(refused.value)
    assert WEBHOOK_SECRET not in str(refused.value)


def test_the_client_commands_settings_do_not_stop_the_server() -> None:
    """A shell set up for ``docpipe-client`` can still start ``docpipe serve``: the server knows the
    client's variables and ignores them."""
    environ = {"DOCPIPE_URL": "http://docs.example.com", "DOCPIPE_API_KEY": "dp_whatever"}
    assert load_settings(environ) == load_settings({})


def test_trusted_proxies_are_loopback_unless_named() -> None:
    default = load_settings({}).trusted_proxies
    loopback = ("127.0.0.1", "127.4.5.6", "::1", "::ffff:127.0.0.1")
    assert [default.trusts(peer) for peer in loopback] == [True] * 4
    others = ("10.0.0.1", "2001:db8::1", "testclient", "", None)
    assert [default.trusts(peer) for peer in others] == [False] * 5
    named = load_settings({"DOCPIPE_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32 ,192.0.2.1"}).trusted_proxies
    assert named.for_uvicorn() == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32"]
    assert load_settings({"DOCPIPE_TRUSTED_PROXIES": "*"}).trusted_proxies.for_uvicorn() == ["*"]
    assert load_settings({"DOCPIPE_TRUSTED_PROXIES": "none"}).trusted_proxies.for_uvicorn() == []


@pytest.mark.parametrize("value", ["10.0.0.0/33", "proxy.internal", "*,10.0.0.1", "10.0.0.1/8", "none,::1"])
def test_a_trusted_proxy_that_is_no_address_or_network_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match=r"DOCPIPE_TRUSTED_PROXIES: .* is not an IP address or network"):
        load_settings({"DOCPIPE_TRUSTED_PROXIES": value})
