"""Every response carries a request id, which problem bodies repeat, on every adapter pair."""

from __future__ import annotations

import pytest

from tests.http.helpers import Client, assert_problem, upload


async def test_every_response_carries_a_request_id(client: Client) -> None:
    responses = [
        await client.get("/health/live"),
        await client.get("/health/ready"),
        await upload(client),
        await client.get("/documents"),
        await client.get("/documents/no-such-document"),
        await client.get("/no/such/route"),
        await client.delete("/health/live"),
    ]
    ids = [response.headers.get("x-request-id") for response in responses]
    assert all(ids), [(response.request.url, response.headers) for response in responses]
    assert len(set(ids)) == len(ids)


async def test_a_problem_body_repeats_the_request_id(client: Client) -> None:
    response = await client.get("/documents/no-such-document")
    problem = assert_problem(response, 404)
    assert problem["request_id"] == response.headers["x-request-id"]
    response = await client.get("/no/such/route")
    assert assert_problem(response, 404)["request_id"] == response.headers["x-request-id"]


async def test_a_well_formed_incoming_request_id_is_kept(client: Client) -> None:
    incoming = {"x-request-id": "client-7f3a.retry:2"}
    ok = await client.get("/documents", headers=incoming)
    assert ok.headers["x-request-id"] == "client-7f3a.retry:2"
    missing = await client.get("/documents/no-such-document", headers=incoming)
    assert missing.headers["x-request-id"] == "client-7f3a.retry:2"
    assert missing.json()["request_id"] == "client-7f3a.retry:2"


@pytest.mark.parametrize("incoming", ["x" * 500, "has spaces", "<script>", ""])
async def test_an_unsafe_incoming_request_id_is_replaced(client: Client, incoming: str) -> None:
    response = await client.get("/documents/no-such-document", headers={"x-request-id": incoming})
    chosen = response.headers["x-request-id"]
    assert chosen != incoming
    assert chosen.isalnum()
    assert response.json()["request_id"] == chosen
