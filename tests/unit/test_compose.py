"""compose.yaml cannot be run here (no Docker engine), so its wiring is checked against the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from docpipe.config import KNOWN_VARIABLES, BlobStoreKind, RepositoryKind, load_settings

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
    names = {name for name in _services()["api"]["environment"] if name.startswith("DOCPIPE_")}
    assert names <= KNOWN_VARIABLES


def test_services_have_healthchecks_and_start_in_order() -> None:
    services = _services()
    assert services["api"]["depends_on"]["aws"]["condition"] == "service_healthy"
    assert "/health/ready" in " ".join(services["api"]["healthcheck"]["test"])
    assert all(service["healthcheck"]["test"] for service in services.values())
