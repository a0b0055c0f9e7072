"""Settings that select each adapter the way users select them: through configuration."""

from __future__ import annotations

import uuid
from pathlib import Path

from docpipe.config import (
    GIB,
    BlobStoreKind,
    DynamoDbSettings,
    RepositoryKind,
    S3Settings,
    Secret,
    Settings,
)
from tests.credentials import ADMIN_KEY

BLOB_STORES = [kind.value for kind in BlobStoreKind]
REPOSITORIES = [kind.value for kind in RepositoryKind]
UPLOAD_REPOSITORIES = REPOSITORIES
"""The repositories that hold resumable upload sessions: all of them."""
RESUMABLE_BLOB_STORES = BLOB_STORES
"""The blob stores that take resumable uploads' bytes: all of them."""


def settings_for(
    *,
    blob_store: str = "memory",
    repository: str = "memory",
    data_dir: Path,
    aws_endpoint_url: str | None = None,
    max_upload_bytes: int = GIB,
) -> Settings:
    """Settings for one test: a fresh bucket, table and folder each time, so tests never share state."""
    unique = uuid.uuid4().hex[:12]
    return Settings(
        blob_store=BlobStoreKind(blob_store),
        repository=RepositoryKind(repository),
        data_dir=data_dir,
        s3=S3Settings(bucket=f"docpipe-test-{unique}", endpoint_url=aws_endpoint_url, path_style=True),
        dynamodb=DynamoDbSettings(table=f"docpipe-test-{unique}", endpoint_url=aws_endpoint_url),
        max_upload_bytes=max_upload_bytes,
        admin_key=Secret(ADMIN_KEY),
    )


def needs_aws(kind: str) -> bool:
    return kind in ("s3", "dynamodb")
