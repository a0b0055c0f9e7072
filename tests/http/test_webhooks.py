"""Webhooks over HTTP on every adapter pair: each change of a document reaches a receiver on loopback,
signed as Standard Webhooks says (checked by its reference library), in commit order, with the
document as the API shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import msgspec
import pytest

from docpipe.config import Settings
from tests.http.helpers import Client, upload_ok
from tests.http.test_processing import processed
from tests.webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.processing


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


@pytest.fixture
def settings(settings: Settings, receiver: Receiver) -> Settings:
    return msgspec.structs.replace(settings, webhook=receiver.settings())


async def test_every_change_is_posted_signed_in_order_with_the_document_as_served(
    client: Client, receiver: Receiver
) -> None:
    created = await upload_ok(client, b"the walrus and the carpenter", "walrus.txt")
    other = await upload_ok(client, b"cabbages and kings", "kings.txt")
    done = await processed(client, created["id"])
    patched = await client.patch(f"/documents/{created['id']}", json={"tags": ["poem"]})
    assert patched.status_code == 200, patched.text
    assert (await client.delete(f"/documents/{created['id']}")).status_code == 204

    await receiver.until(lambda: len(receiver.delivered_of(created["id"])) == 4)
    await receiver.until(lambda: len(receiver.delivered_of(other["id"])) == 2)
    assert all(received.verified for received in receiver.received)
    webhooks = receiver.delivered_of(created["id"])
    assert [webhook.type for webhook in webhooks] == [
        "document.created",
        "document.processed",
        "document.updated",
        "document.deleted",
    ]
    assert [webhook.document for webhook in webhooks] == [created, done, patched.json(), patched.json()]
    assert len({webhook.webhook_id for webhook in webhooks}) == 4
    assert all(webhook.webhook_id.startswith("evt_") for webhook in webhooks)
    assert all(
        datetime.fromisoformat(webhook.payload["timestamp"]).utcoffset() is not None for webhook in webhooks
    )
    assert [webhook.type for webhook in receiver.delivered_of(other["id"])] == [
        "document.created",
        "document.processed",
    ]
