"""Concurrent PATCHes of one document through a real server, on every adapter pair.

The in-process test client runs one request at a time, so contention needs a real server: here
50 clients update one document at once, through one worker process or two. Without If-Match every
update must apply, one after the other; with one shared If-Match exactly one may.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.credentials import ADMIN_HEADERS
from tests.faults.support import ADAPTER_PAIRS, pair_env
from tests.live_server import LiveServer, live_server

WRITERS = 50
CLIENT_SECONDS = 60.0
CLIENT_TIMEOUT = httpx.Timeout(CLIENT_SECONDS)


SERVERS = [(pair, 1) for pair in ADAPTER_PAIRS] + [
    (pair, 2) for pair in ADAPTER_PAIRS if "memory" not in pair
]
"""Each pair with one worker, and those that can be shared with two: then updates of one document
contend across processes too, where only the store's conditional writes keep them apart."""


@pytest.fixture(
    scope="module", params=SERVERS, ids=[f"{'+'.join(pair)}-{workers}-workers" for pair, workers in SERVERS]
)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server per configuration for both tests: each contends over a document of its own."""
    pair, workers = request.param
    folder = tmp_path_factory.mktemp("contention")
    endpoint = request.getfixturevalue("moto_server").endpoint_url if "s3" in pair else None
    env = {**pair_env(pair, folder / "data", endpoint), "DOCPIPE_WORKERS": str(workers)}
    with live_server(env, folder / "docpipe.log") as running:
        yield running


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=WRITERS)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=ADMIN_HEADERS, timeout=CLIENT_TIMEOUT, limits=limits
    ) as http:
        yield http


def version_of(etag: str) -> int:
    """The version in a metadata ETag, ``"<sha256 prefix>.v<version>"``."""
    return int(etag.strip('"').rsplit(".v", 1)[1])


async def upload(client: httpx.AsyncClient) -> str:
    """A text document, once processed: processing records its result as an update of its own, which
    would take a version and move the ETag in the middle of the writers' race."""
    response = await client.post("/documents", params={"filename": "contended.txt"}, content=b"contended\n")
    assert response.status_code == 201, response.text
    document_id: str = response.json()["id"]
    deadline = asyncio.get_running_loop().time() + CLIENT_SECONDS
    while (await client.get(f"/documents/{document_id}")).json()["processing"]["state"] == "pending":
        assert asyncio.get_running_loop().time() < deadline, "the document was never processed"
        await asyncio.sleep(0.05)
    return document_id


async def test_concurrent_patches_without_if_match_all_apply(client: httpx.AsyncClient) -> None:
    url = f"/documents/{await upload(client)}"
    start = version_of((await client.get(url)).headers["etag"])
    responses = await asyncio.gather(
        *(client.patch(url, json={"metadata": {"writer": str(n)}}) for n in range(WRITERS))
    )
    refused = [
        f"{response.status_code}: {response.text}" for response in responses if response.status_code != 200
    ]
    assert not refused, f"{len(refused)} of {WRITERS} refused, e.g. {refused[0]}"
    # Each applied on top of the one before: the 50 versions after the processed one, each handed out once.
    versions = sorted(version_of(response.headers["etag"]) for response in responses)
    assert versions == list(range(start + 1, start + WRITERS + 1))
    final = await client.get(url)
    assert version_of(final.headers["etag"]) == start + WRITERS
    last = max(responses, key=lambda response: version_of(response.headers["etag"]))
    assert final.json()["metadata"] == last.json()["metadata"]


async def test_concurrent_patches_with_one_if_match_let_exactly_one_through(
    client: httpx.AsyncClient,
) -> None:
    url = f"/documents/{await upload(client)}"
    etag = (await client.get(url)).headers["etag"]
    start = version_of(etag)
    responses = await asyncio.gather(
        *(client.patch(url, json={"tags": [f"t{n}"]}, headers={"if-match": etag}) for n in range(WRITERS))
    )
    assert sorted(response.status_code for response in responses) == [200] + [412] * (WRITERS - 1)
    winner = next(response for response in responses if response.status_code == 200)
    final = await client.get(url)
    assert version_of(final.headers["etag"]) == start + 1
    assert final.json()["tags"] == winner.json()["tags"]
