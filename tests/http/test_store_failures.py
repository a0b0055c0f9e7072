"""The embedded stores failing for real, seen through the API: SQLite's write lock held by another
process, and the disk under the file system blob store and SQLite full. The other adapter pairs have no
such failure (S3 and DynamoDB have no write lock to hold and no disk to fill; their outages are in
tests/faults), so these run over filesystem + SQLite only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from docpipe.adapters.sqlite import DATABASE_NAME
from tests.adapters_under_test import settings_for
from tests.contract.test_sqlite_specifics import write_lock_held_elsewhere
from tests.http.helpers import Client, assert_problem, serve, upload, upload_ok
from tests.small_disk import fill, small_disk


@pytest.fixture(params=[False, True], ids=["on-disk", "small-disk"])
def data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """The data folder: on the test's own disk, or on a small one of its own that a test can fill."""
    if not request.param:
        yield tmp_path / "data"
        return
    with small_disk(tmp_path / "disk") as disk:
        yield disk / "data"


@pytest.fixture
async def client(data_dir: Path) -> AsyncIterator[Client]:
    settings = settings_for(blob_store="filesystem", repository="sqlite", data_dir=data_dir)
    async with serve(settings) as test_client:
        yield test_client


async def _writes(client: Client, document_id: str) -> dict[str, httpx.Response]:
    """One upload, one update and one delete, in turn."""
    return {
        "upload": await upload(client, b"one more document\n", "more.txt"),
        "patch": await client.patch(f"/documents/{document_id}", json={"tags": ["changed"]}),
        "delete": await client.delete(f"/documents/{document_id}"),
    }


@pytest.mark.usefixtures("short_sqlite_busy_timeout")
@pytest.mark.parametrize("data_dir", [False], ids=["on-disk"], indirect=True)
async def test_a_write_lock_held_by_another_process_gives_503_with_retry_after(
    client: Client, data_dir: Path
) -> None:
    document = await upload_ok(client)
    with write_lock_held_elsewhere(data_dir / DATABASE_NAME):
        for response in (await _writes(client, document["id"])).values():
            assert assert_problem(response, 503)["detail"] == "the metadata repository is unavailable"
            assert response.headers.get("retry-after", "").isdigit(), response.headers
        assert (await client.get(f"/documents/{document['id']}")).json() == document
        assert (await client.get("/health/ready")).status_code == 200  # reads are served, writes wait
    assert (await client.patch(f"/documents/{document['id']}", json={"tags": ["later"]})).status_code == 200
    listed = (await client.get("/documents")).json()["documents"]
    assert [entry["id"] for entry in listed] == [document["id"]]


@pytest.mark.parametrize("data_dir", [True], ids=["small-disk"], indirect=True)
async def test_a_full_disk_gives_507_without_retry_after_and_fails_readiness(
    client: Client, data_dir: Path
) -> None:
    document = await upload_ok(client, b"stored before the disk filled up\n")
    filler = fill(data_dir.parent)

    writes = await _writes(client, document["id"])
    for response in writes.values():
        assert_problem(response, 507)
        assert "retry-after" not in response.headers
    assert writes["upload"].json()["detail"] == "the blob store is full"
    assert writes["patch"].json()["detail"] == "the metadata repository is full"
    assert writes["delete"].json()["detail"] == "the metadata repository is full"
    ready = await client.get("/health/ready")
    assert ready.status_code == 503, ready.text
    assert ready.json()["detail"] == "the blob store is full; the metadata repository is full"
    assert "retry-after" not in ready.headers
    assert (await client.get(f"/documents/{document['id']}")).json() == document
    content = await client.get(f"/documents/{document['id']}/content")
    assert content.content == b"stored before the disk filled up\n"

    filler.unlink()
    assert (await client.get("/health/ready")).status_code == 200
    assert (await client.patch(f"/documents/{document['id']}", json={"tags": ["later"]})).status_code == 200
    assert (await client.delete(f"/documents/{document['id']}")).status_code == 204
    await upload_ok(client, b"stored once there was room again\n")
