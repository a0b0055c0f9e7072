"""``GET /search`` over the AWS pair with OpenSearch as its index (``DOCPIPE_SEARCH=opensearch``),
against the fake of OpenSearch's REST API: the server's relay indexes names and text as it does into
the embedded index."""

from __future__ import annotations

import uuid
from pathlib import Path

import msgspec
import pytest

from docpipe.config import OpenSearchSettings, SearchKind, Settings
from tests.adapters_under_test import settings_for
from tests.http.helpers import Client, upload_ok
from tests.http.test_processing import (
    found,
    found_by_name_at_once_and_by_text_once_processed,
    sees_only_the_callers_documents_and_not_deleted_ones,
)
from tests.moto_server import MotoServer
from tests.opensearch_fake import RunningFake


@pytest.fixture
def settings(tmp_path: Path, moto_server: MotoServer, opensearch_fake: RunningFake) -> Settings:
    aws = settings_for(
        blob_store="s3",
        repository="dynamodb",
        data_dir=tmp_path / "data",
        aws_endpoint_url=moto_server.endpoint_url,
    )
    index = OpenSearchSettings(url=opensearch_fake.url, index=f"docpipe-test-{uuid.uuid4().hex[:12]}")
    return msgspec.structs.replace(aws, search=SearchKind.OPENSEARCH, opensearch=index)


async def test_a_document_is_found_by_name_at_once_and_by_text_once_processed(client: Client) -> None:
    result = await found_by_name_at_once_and_by_text_once_processed(client)
    assert result["score"] == 0.125


async def test_search_sees_only_the_callers_documents_and_not_deleted_ones(client: Client) -> None:
    await sees_only_the_callers_documents_and_not_deleted_ones(client)


async def test_renames_and_tags_reach_the_index(client: Client) -> None:
    uploaded = await upload_ok(client, b"text", "draft.txt")
    renamed = await client.patch(
        f"/documents/{uploaded['id']}", json={"filename": "final.txt", "tags": ["approved"]}
    )
    assert renamed.status_code == 200, renamed.text
    assert await found(client, "final approved") == [uploaded["id"]]
    assert await found(client, "draft") == []
