"""Ten thousand mixed requests, 64 at a time, against one filesystem + SQLite server.

Each of 64 workers owns the documents it uploads, so patches, deletes and reads of its own documents
never race another worker and every status is predictable: the run asserts each one, no 5xx at all,
and that at the end every acknowledged, undeleted document is listed and downloads with the sha-256
the client computed. Listings run across everyone's documents, with cursors. The achieved rate is
printed, not asserted.

The ten thousand requests go through aiohttp: httpx spends some 1.4 ms of CPU on a request, aiohttp
0.4 ms, and on a shared machine the client's CPU is time the server under load does not get. The
read-your-writes test keeps httpx: its 32 listers only make contention, and faster ones made the
server list more, the test slower (115 s against 76 s, measured).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import itertools
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.credentials import ADMIN_HEADERS
from tests.faults.support import filesystem_env
from tests.live_server import LiveServer, live_server

TOTAL_REQUESTS = 10_000
CONCURRENCY = 64
MAX_BODY = 16 * 1024


@dataclass
class Owned:
    id: str
    body: bytes
    sha256: str
    etag: str


@dataclass
class Answer:
    """A response, its body read whole."""

    method: str
    url: str
    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Client:
    """Requests to the server under test over one aiohttp session, each answered as an ``Answer``."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        content: bytes | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        async with self._session.request(
            method, path, params=params, data=content, json=json, headers=headers
        ) as response:
            body = await response.read()
            return Answer(method, str(response.url), response.status, response.headers, body)

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("POST", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("DELETE", path, **kwargs)


@contextlib.asynccontextmanager
async def client_of(server: LiveServer, connections: int = 1) -> AsyncIterator[Client]:
    """A client of ``server`` sending the admin key, over at most ``connections`` connections."""
    async with aiohttp.ClientSession(
        base_url=server.base_url,
        headers=ADMIN_HEADERS,
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=60),
    ) as session:
        yield Client(session)


@dataclass
class Tally:
    statuses: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)
    unexpected: list[str] = field(default_factory=list)

    def check(self, operation: str, response: Answer, *expected: int) -> bool:
        """Whether ``response`` has an ``expected`` status; if not, it is recorded as unexpected."""
        self.statuses[(operation, response.status_code)] += 1
        if response.status_code in expected:
            return True
        self.unexpected.append(
            f"{operation}: {response.method} {response.url} -> {response.status_code} "
            f"(expected {expected}): {response.text[:200]}"
        )
        return False

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(count for (_, status), count in self.statuses.items() if status >= 500)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """The HTTP core under load, as these tests measured it before processing existed: processing's own
    cost under load is a benchmark's question (bench/), not these tests'."""
    env = {**filesystem_env(tmp_path / "data"), "DOCPIPE_PROCESSING": "off"}
    with live_server(env, tmp_path / "docpipe.log") as server:
        yield server


class Worker:
    def __init__(self, number: int, client: Client, tally: Tally) -> None:
        self.number = number
        self.client = client
        self.tally = tally
        self.rng = random.Random(number)
        self.owned: dict[str, Owned] = {}
        self.uploads = 0

    async def run(self, tickets: Iterator[int]) -> None:
        operations = [
            (self.upload, 12),
            (self.list, 12),
            (self.get, 20),
            (self.ranged, 20),
            (self.download, 10),
            (self.patch, 6),
            (self.delete, 4),
            (self.invalid, 16),
        ]
        choices = [operation for operation, _ in operations]
        weights = [weight for _, weight in operations]
        for _ in tickets:
            operation = self.rng.choices(choices, weights)[0]
            if not self.owned and operation not in (self.list, self.invalid):
                operation = self.upload
            await operation()

    def _pick(self) -> Owned:
        return self.owned[self.rng.choice(list(self.owned))]

    async def upload(self) -> None:
        body = self.rng.randbytes(self.rng.randrange(1, MAX_BODY))
        sha256 = hashlib.sha256(body).hexdigest()
        headers = {"content-type": "application/octet-stream"}
        if self.rng.random() < 0.5:
            headers["content-digest"] = (
                f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"
            )
        self.uploads += 1
        response = await self.client.post(
            "/documents",
            params={"filename": f"w{self.number:02d}-{self.uploads}.bin", "tags": f"worker{self.number}"},
            content=body,
            headers=headers,
        )
        if self.tally.check("upload", response, 201):
            document = response.json()
            if document["sha256"] != sha256:
                self.tally.unexpected.append(f"upload: sha256 {document['sha256']} for a body of {sha256}")
            self.owned[document["id"]] = Owned(document["id"], body, sha256, response.headers["etag"])

    async def list(self) -> None:
        params: dict[str, str | int] = {"limit": self.rng.randrange(1, 25)}
        if self.rng.random() < 0.3:
            params["prefix"] = f"w{self.number:02d}-"
        elif self.rng.random() < 0.3:
            params["tag"] = f"worker{self.number}"
        for _ in range(3):
            response = await self.client.get("/documents", params=params)
            if not self.tally.check("list", response, 200):
                return
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return
            params["cursor"] = cursor

    async def get(self) -> None:
        owned = self._pick()
        response = await self.client.get(f"/documents/{owned.id}")
        if self.tally.check("get", response, 200) and response.json()["sha256"] != owned.sha256:
            self.tally.unexpected.append(f"get: {owned.id} has the wrong sha256")

    async def ranged(self) -> None:
        owned = self._pick()
        start = self.rng.randrange(len(owned.body))
        end = self.rng.randrange(start, len(owned.body))
        response = await self.client.get(
            f"/documents/{owned.id}/content", headers={"range": f"bytes={start}-{end}"}
        )
        if self.tally.check("range", response, 206) and response.content != owned.body[start : end + 1]:
            self.tally.unexpected.append(f"range: {owned.id} bytes {start}-{end} differ")

    async def download(self) -> None:
        owned = self._pick()
        response = await self.client.get(f"/documents/{owned.id}/content")
        if self.tally.check("download", response, 200) and response.content != owned.body:
            self.tally.unexpected.append(f"download: {owned.id} differs")

    async def patch(self) -> None:
        owned = self._pick()
        response = await self.client.patch(
            f"/documents/{owned.id}",
            json={"tags": [f"worker{self.number}", f"v{self.rng.randrange(1000)}"], "metadata": {"k": "v"}},
            headers={"if-match": owned.etag},
        )
        if self.tally.check("patch", response, 200):
            owned.etag = response.headers["etag"]

    async def delete(self) -> None:
        owned = self.owned.pop(self._pick().id)
        if self.tally.check("delete", await self.client.delete(f"/documents/{owned.id}"), 204):
            self.tally.check("gone", await self.client.get(f"/documents/{owned.id}/content"), 404)

    async def invalid(self) -> None:
        kind = self.rng.randrange(6)
        if kind == 0:
            response = await self.client.get("/documents", params={"cursor": "not-a-cursor"})
            self.tally.check("bad cursor", response, 400)
        elif kind == 1:
            response = await self.client.get(f"/documents/{uuid.uuid4()}")
            self.tally.check("unknown id", response, 404)
        elif kind == 2:
            response = await self.client.get(f"/documents/{uuid.uuid4()}/content")
            self.tally.check("unknown content", response, 404)
        elif kind == 3 and self.owned:
            owned = self._pick()
            response = await self.client.get(
                f"/documents/{owned.id}/content", headers={"range": f"bytes={len(owned.body)}-"}
            )
            self.tally.check("range past the end", response, 416)
        elif kind == 4 and self.owned:
            owned = self._pick()
            response = await self.client.patch(
                f"/documents/{owned.id}", json={"tags": ["stale"]}, headers={"if-match": '"0000.v0"'}
            )
            self.tally.check("stale if-match", response, 412)
        else:
            response = await self.client.post(
                "/documents",
                params={"filename": "empty.bin"},
                content=b"",
                headers={"content-type": "text/plain"},
            )
            self.tally.check("empty upload", response, 400)


async def _listed(client: Client) -> dict[str, str]:
    """Every listed document's sha-256, by id, following cursors."""
    listed: dict[str, str] = {}
    params: dict[str, str | int] = {"limit": 1000}
    while True:
        response = await client.get("/documents", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        listed.update({document["id"]: document["sha256"] for document in page["documents"]})
        if page["next_cursor"] is None:
            return listed
        params["cursor"] = page["next_cursor"]


async def _verify(client: Client, survivors: dict[str, Owned]) -> list[str]:
    limit = asyncio.Semaphore(8)

    async def one(owned: Owned) -> str | None:
        async with limit:
            response = await client.get(f"/documents/{owned.id}/content")
        if response.status_code != 200 or hashlib.sha256(response.content).hexdigest() != owned.sha256:
            return f"{owned.id}: {response.status_code}, content differs from what was uploaded"
        return None

    results = await asyncio.gather(*(one(owned) for owned in survivors.values()))
    return [result for result in results if result is not None]


@pytest.mark.slow
async def test_ten_thousand_mixed_requests_without_a_server_error(server: LiveServer) -> None:
    tally = Tally()
    # One client, hence one connection, per worker: each works through its requests one at a time.
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client_of(server)) for _ in range(CONCURRENCY)]
        tickets = iter(range(TOTAL_REQUESTS))
        workers = [Worker(number, client, tally) for number, client in enumerate(clients)]
        started = time.perf_counter()
        await asyncio.gather(*(worker.run(tickets) for worker in workers))
        elapsed = time.perf_counter() - started
        print(
            f"\n{tally.requests} requests in {elapsed:.1f} s: {tally.requests / elapsed:.0f} requests/s "
            f"at concurrency {CONCURRENCY}"
        )
        for (operation, status), count in sorted(tally.statuses.items()):
            print(f"  {operation:>20} {status}: {count}")

        assert tally.requests >= TOTAL_REQUESTS
        assert tally.server_errors == 0, "\n".join(tally.unexpected[:20])
        assert not tally.unexpected, f"{len(tally.unexpected)} unexpected answers:\n" + "\n".join(
            tally.unexpected[:20]
        )

        survivors = {owned.id: owned for worker in workers for owned in worker.owned.values()}
        checker = await stack.enter_async_context(client_of(server, connections=8))
        listed = await _listed(checker)
        missing = sorted(set(survivors) - set(listed))
        assert not missing, f"{len(missing)} acknowledged documents are not listed: {missing[:10]}"
        assert set(listed) == set(survivors), "listed documents nobody uploaded, or deleted ones"
        assert all(listed[document_id] == owned.sha256 for document_id, owned in survivors.items())
        broken = await _verify(checker, survivors)
        assert not broken, "\n".join(broken[:20])


READ_YOUR_WRITES_PAIRS = 200


@pytest.mark.slow
async def test_read_your_writes(server: LiveServer) -> None:
    """Four clients each upload and at once read their document back while 32 others list big
    pages: an acknowledged upload must be readable by the very next request.

    Regression test. With reads done as ``execute()`` then ``fetch*()`` on one shared aiosqlite
    connection (sqlite.py before 15:49 today), overlapping statements kept that connection's
    implicit read transaction open and its WAL snapshot stale: a few reads in a hundred answered 404
    right after the 201, and this test failed within seconds every time it ran. It stops at the
    first stale read; otherwise it makes ``READ_YOUR_WRITES_PAIRS`` pairs."""
    stop = asyncio.Event()
    stale: list[str] = []
    pairs = itertools.count()

    async def keep_listing() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=60) as client:
            while not stop.is_set():
                response = await client.get("/documents", params={"limit": 200})
                assert response.status_code == 200, response.text

    async def write_then_read(number: int) -> None:
        async with httpx.AsyncClient(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=60) as client:
            while not stop.is_set() and next(pairs) < READ_YOUR_WRITES_PAIRS:
                created = await client.post("/documents", params={"filename": f"ryw-{number}"}, content=b"x")
                assert created.status_code == 201, created.text
                document_id = created.json()["id"]
                read = await client.get(f"/documents/{document_id}")
                if read.status_code != 200:
                    stale.append(f"{document_id}: {read.status_code}")
                    stop.set()

    listers = [asyncio.create_task(keep_listing()) for _ in range(32)]
    try:
        await asyncio.gather(*(write_then_read(number) for number in range(4)))
    finally:
        stop.set()
        await asyncio.gather(*listers)
    assert not stale, f"an upload was not readable right after its 201: {stale}"
