"""Webhooks when the receiver fails: retried with the same webhook-id, a hanging receiver holding up
neither processing nor other documents, given up after the last try, and resumed after a restart. The
retry schedule is shortened to milliseconds; on the memory stores, and SQLite where a restart needs the
queue on disk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from dependency_injector import providers

from docpipe.adapters.extraction.in_process import InProcessExtractor
from docpipe.config import Settings
from docpipe.container import Container
from tests.adapters_under_test import settings_for
from tests.http.helpers import serve, upload_ok
from tests.http.test_auth import logged
from tests.http.test_processing import processed
from tests.webhook_receiver import SECRET, Received, Receiver, accept, receiving

SCHEDULE = (0.01, 0.02, 0.03)
"""Three retries: four tries in all."""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


def settings_of(
    receiver: Receiver, data_dir: Path, *, stores: tuple[str, str] = ("memory", "memory")
) -> Settings:
    blob_store, repository = stores
    settings = settings_for(blob_store=blob_store, repository=repository, data_dir=data_dir)
    return msgspec.structs.replace(settings, webhook=receiver.settings())


def container_of(settings: Settings, schedule: tuple[float, ...] = SCHEDULE) -> Container:
    container = Container(settings=settings)
    container.extractor.override(providers.Object(InProcessExtractor()))
    container.webhook_schedule.override(providers.Object(schedule))
    return container


def of_type(received: list[Received], document_id: str, type_: str) -> list[Received]:
    return [each for each in received if each.document["id"] == document_id and each.type == type_]


async def test_a_failing_receiver_gets_the_same_webhook_until_it_takes_it(
    receiver: Receiver, tmp_path: Path
) -> None:
    answers = iter([500, 302, 408])

    async def fail_three_times(received: Received) -> int:
        return next(answers, 200)

    receiver.answer = fail_three_times
    settings = settings_of(receiver, tmp_path)
    async with serve(settings, container_of(settings)) as client:
        created = await upload_ok(client, b"persistence", "retried.txt")
        await receiver.until(lambda: len(receiver.delivered_of(created["id"])) == 2)

    tries = of_type(receiver.received, created["id"], "document.created")
    assert len(tries) == 4
    assert {each.webhook_id for each in tries} == {receiver.delivered[0].webhook_id}
    assert all(each.verified for each in receiver.received)
    assert [each.type for each in receiver.delivered_of(created["id"])] == [
        "document.created",
        "document.processed",
    ]


async def test_a_hanging_receiver_holds_up_neither_processing_nor_other_documents(
    receiver: Receiver, tmp_path: Path
) -> None:
    released = asyncio.Event()
    hung = asyncio.Event()

    async def hang_on_stuck(received: Received) -> int:
        if received.document["filename"] == "stuck.txt":
            hung.set()
            await released.wait()
        return 204

    receiver.answer = hang_on_stuck
    settings = settings_of(receiver, tmp_path)
    try:
        async with serve(settings, container_of(settings)) as client:
            stuck = await upload_ok(client, b"a receiver that never answers", "stuck.txt")
            async with asyncio.timeout(30):
                await hung.wait()
            free = await upload_ok(client, b"a document of its own", "free.txt")
            await receiver.until(lambda: len(receiver.delivered_of(free["id"])) == 2)
            assert (await processed(client, stuck["id"]))["processing"]["state"] == "done"
            found = (await client.get("/search", params={"q": "never answers"})).json()["results"]
            assert [result["document"]["id"] for result in found] == [stuck["id"]]
            assert receiver.delivered_of(stuck["id"]) == []
    finally:
        released.set()


async def test_a_webhook_is_given_up_after_the_last_try_and_the_next_follows(
    receiver: Receiver, tmp_path: Path
) -> None:
    async def refuse_created(received: Received) -> int:
        return 410 if received.type == "document.created" else 200

    receiver.answer = refuse_created
    settings = settings_of(receiver, tmp_path)
    with logged("docpipe.domain.webhooks") as messages:
        async with serve(settings, container_of(settings)) as client:
            created = await upload_ok(client, b"nobody wants this", "refused.txt")
            await receiver.until(lambda: len(receiver.delivered_of(created["id"])) == 1)

    tries = of_type(receiver.received, created["id"], "document.created")
    assert len(tries) == len(SCHEDULE) + 1
    assert [each.type for each in receiver.delivered_of(created["id"])] == ["document.processed"]
    given_up = [message for message in messages if "given up" in message]
    assert len(given_up) == 1
    assert tries[0].webhook_id in given_up[0]
    assert f"{receiver.url.split('?')[0]} answered 410" in given_up[0]
    assert all("sesame" not in message for message in messages)
    assert all(SECRET.removeprefix("whsec_") not in message for message in messages)


async def test_undelivered_webhooks_survive_a_restart(receiver: Receiver, tmp_path: Path) -> None:
    async def unavailable(received: Received) -> int:
        return 503

    receiver.answer = unavailable
    settings = settings_of(receiver, tmp_path / "data", stores=("filesystem", "sqlite"))
    schedule = (0.5, 0.5, 0.5)
    async with serve(settings, container_of(settings, schedule)) as client:
        created = await upload_ok(client, b"survives a restart", "restart.txt")
        await receiver.until(lambda: len(receiver.received) >= 1)
    assert receiver.delivered == []
    first_id = receiver.received[0].webhook_id

    receiver.answer = accept
    async with serve(settings, container_of(settings, schedule)):
        await receiver.until(lambda: len(receiver.delivered_of(created["id"])) == 2)
    delivered = receiver.delivered_of(created["id"])
    assert [each.type for each in delivered] == ["document.created", "document.processed"]
    assert delivered[0].webhook_id == first_id
