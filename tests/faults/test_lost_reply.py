"""A 201 that never reaches the client: the retry with the same Idempotency-Key must not duplicate.

A ``FaultProxy`` in front of a real docpipe forwards the upload but loses its response, after the
server committed it. The client, having seen only a dead connection, retries through the proxy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.credentials import ADMIN_HEADERS
from tests.faults.proxy import FaultProxy
from tests.faults.support import ADAPTER_PAIRS, list_all, proxied_live_server

KEY = "lost-reply-0193f4d2"
BODY = b"an upload whose 201 never arrives\n" * 1000


@pytest.fixture(params=ADAPTER_PAIRS, ids=["+".join(pair) for pair in ADAPTER_PAIRS])
def proxied_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FaultProxy, str]]:
    with proxied_live_server(request, tmp_path) as proxied:
        yield proxied


def upload(client: httpx.Client) -> httpx.Response:
    return client.post(
        "/documents",
        files={"file": ("lost.txt", BODY, "text/plain")},
        headers={"Idempotency-Key": f'"{KEY}"'},
    )


def test_the_retry_of_a_lost_reply_gets_the_same_document(proxied_server: tuple[FaultProxy, str]) -> None:
    proxy, direct_url = proxied_server
    proxy.drop_responses_to(KEY.encode())
    with httpx.Client(base_url=proxy.url, headers=ADMIN_HEADERS, timeout=30) as client:
        with pytest.raises(httpx.TransportError):
            upload(client)
        assert proxy.lost_responses == 1
        proxy.restore()
        retry = upload(client)
    assert retry.status_code == 201, retry.text
    with httpx.Client(base_url=direct_url, headers=ADMIN_HEADERS, timeout=30) as direct:
        documents = list_all(direct)
    assert [document["id"] for document in documents] == [retry.json()["id"]]
    assert documents[0]["size"] == len(BODY)
