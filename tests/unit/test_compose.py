"""compose.yaml cannot be run here (no Docker engine), so its wiring is checked against the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from docpipe.config import KNOWN_VARIABLES, BlobStoreKind, QueueKind, RepositoryKind, load_settings

COMPOSE = Path(__file__).parents[2] / "compose.yaml"


def _services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    services: dict[str, Any] = document["services"]
    return services


def test_the_api_is_configured_for_s3_and_dynamodb_on_the_emulator() -> None:
    api = _services()["api"]
    settings = load_settings({name: str(value) for name, value in api["environment"].items()})
    assert settings.blob_store is BlobStoreKind.S3
    assert settings.repository is RepositoryKind.DYNAMODB
    assert settings.host == "0.0.0.0"
    assert settings.s3.region == settings.dynamodb.region == api["environment"]["AWS_REGION"]
    assert api["environment"]["AWS_ENDPOINT_URL"] == "http://aws:4566"
    assert f"{settings.port}:{settings.port}" in api["ports"]


def test_every_docpipe_variable_in_compose_is_one_docpipe_reads() -> None:
    for service in ("api", "worker"):
        names = {name for name in _services()[service]["environment"] if name.startswith("DOCPIPE_")}
        assert names <= KNOWN_VARIABLES


def test_services_have_healthchecks_and_start_in_order() -> None:
    services = _services()
    assert services["api"]["depends_on"]["aws"]["condition"] == "service_healthy"
    assert "/health/ready" in " ".join(services["api"]["healthcheck"]["test"])
    assert all(service["healthcheck"]["test"] for service in services.values())


def test_the_worker_shares_the_apis_stores_and_queue() -> None:
    """Processing runs in the worker: it must see the documents the API stores, through the same queue."""
    services = _services()
    worker, api = services["worker"], services["api"]
    assert worker["command"] == ["docpipe", "worker"]
    worker_settings = load_settings({name: str(value) for name, value in worker["environment"].items()})
    api_settings = load_settings({name: str(value) for name, value in api["environment"].items()})
    assert worker_settings.queue is api_settings.queue is QueueKind.SQS
    for part in ("s3", "dynamodb", "sqs"):
        assert getattr(worker_settings, part) == getattr(api_settings, part)
    assert worker["environment"]["AWS_ENDPOINT_URL"] == api["environment"]["AWS_ENDPOINT_URL"]
    assert worker["depends_on"]["api"]["condition"] == "service_healthy"
