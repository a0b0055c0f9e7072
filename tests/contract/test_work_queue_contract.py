"""The work queue (``ports.WorkQueue``) that feeds ``docpipe worker``: its SQS adapter against a real moto
server, visibility timeouts and the dead-letter queue included. Visibility is 1 s, so redelivery shows
within a couple of seconds."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import aioboto3
import msgspec
import pytest
from types_aiobotocore_sqs import SQSClient

from docpipe.adapters.sqs import DEAD_LETTER_SUFFIX, SqsWorkQueue, open_work_queue
from docpipe.config import SqsSettings
from docpipe.domain.errors import StoreMissing, StoreUnavailable
from docpipe.domain.jobs import Job, JobReceipt
from tests.contract.support import until_it_passes
from tests.moto_server import MotoServer

opened_queue = contextlib.asynccontextmanager(open_work_queue)
VISIBILITY = 1
MAX_ATTEMPTS = 2
LAPSE_WAIT = VISIBILITY + 1
"""Long enough a receive for a hidden job's visibility to lapse meanwhile."""


def fresh_settings(endpoint_url: str) -> SqsSettings:
    return SqsSettings(
        queue=f"docpipe-test-{uuid.uuid4().hex[:12]}",
        endpoint_url=endpoint_url,
        max_attempts=MAX_ATTEMPTS,
        visibility_timeout=VISIBILITY,
    )


def job(number: int = 1) -> Job:
    return Job(event_id=f"evt_{number:032x}", owner="alice", document_id=f"doc-{number}")


@pytest.fixture
def settings(moto_server: MotoServer) -> SqsSettings:
    return fresh_settings(moto_server.endpoint_url)


@pytest.fixture
async def queue(settings: SqsSettings) -> AsyncIterator[SqsWorkQueue]:
    async with opened_queue(aioboto3.Session(), settings) as opened:
        yield opened


@pytest.fixture
async def client(settings: SqsSettings) -> AsyncIterator[SQSClient]:
    """A plain client, to look at the queues as an operator would."""
    async with aioboto3.Session().client("sqs", endpoint_url=settings.endpoint_url) as plain:
        yield plain


async def only(queue: SqsWorkQueue, wait_seconds: float = 0) -> JobReceipt:
    deliveries = await queue.receive(10, wait_seconds)
    assert len(deliveries) == 1, deliveries
    return deliveries[0]


async def dead_letters(client: SQSClient, settings: SqsSettings) -> list[str]:
    url = (await client.get_queue_url(QueueName=settings.queue + DEAD_LETTER_SUFFIX))["QueueUrl"]
    answer = await client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [message["Body"] for message in answer.get("Messages", [])]


async def test_sent_jobs_are_received_at_most_limit_at_a_time_and_hidden_from_other_receivers(
    queue: SqsWorkQueue,
) -> None:
    for number in range(3):
        await queue.send(job(number))
    deliveries = await queue.receive(2, 1)
    assert 1 <= len(deliveries) <= 2
    for _ in range(10):  # SQS may hand out fewer than it holds
        deliveries += await queue.receive(10, 0)
    assert sorted(delivery.job.document_id for delivery in deliveries) == [
        job(n).document_id for n in range(3)
    ]
    assert {delivery.attempt for delivery in deliveries} == {1}


async def test_a_job_not_deleted_comes_back_once_its_visibility_lapses(queue: SqsWorkQueue) -> None:
    await queue.send(job())
    first = await only(queue)
    again = await only(queue, LAPSE_WAIT)
    assert (again.job, again.attempt) == (first.job, 2)
    assert again.receipt != first.receipt


async def test_a_held_job_stays_hidden_past_its_visibility_and_a_deleted_one_never_comes_back(
    queue: SqsWorkQueue,
) -> None:
    await queue.send(job(1))
    await queue.send(job(2))
    held, deleted = await queue.receive(1, 1) + await queue.receive(1, 1)
    await queue.hold(held, 30)
    await queue.delete(deleted)
    assert await queue.receive(10, LAPSE_WAIT) == []


async def test_holding_for_zero_seconds_hands_the_job_out_at_once(queue: SqsWorkQueue) -> None:
    await queue.send(job())
    await queue.hold(await only(queue), 0)
    assert (await only(queue)).attempt == 2


async def test_a_lapsed_receipt_is_no_error(queue: SqsWorkQueue) -> None:
    """A worker whose job went to another worker meanwhile (it was slow to renew) may still hold or
    delete with its old receipt: SQS decides what that does, and the worker is not failed for it."""
    await queue.send(job())
    old = await only(queue)
    await queue.hold(old, 0)
    current = await only(queue)
    await queue.delete(current)
    await queue.hold(old, 0)
    await queue.delete(old)


async def test_a_job_received_max_attempts_times_goes_to_the_dead_letter_queue(
    queue: SqsWorkQueue, client: SQSClient, settings: SqsSettings
) -> None:
    await queue.send(job())
    for attempt in range(1, MAX_ATTEMPTS + 1):
        delivery = await only(queue)
        assert delivery.attempt == attempt
        await queue.hold(delivery, 0)
    assert await queue.receive(10, 0) == []
    assert [json.loads(body)["document_id"] for body in await dead_letters(client, settings)] == [
        job().document_id
    ]


async def test_a_message_that_is_no_job_is_never_handed_out_and_ends_dead_lettered(
    queue: SqsWorkQueue, client: SQSClient, settings: SqsSettings
) -> None:
    url = (await client.get_queue_url(QueueName=settings.queue))["QueueUrl"]
    await client.send_message(QueueUrl=url, MessageBody="not a job")
    for _ in range(MAX_ATTEMPTS + 1):  # the receive after the last attempt finds it moved
        assert await queue.receive(10, LAPSE_WAIT) == []
    assert await dead_letters(client, settings) == ["not a job"]


async def test_start_up_links_the_queue_to_its_dead_letter_queue_as_the_last_start_says(
    queue: SqsWorkQueue, client: SQSClient, settings: SqsSettings
) -> None:
    """Servers and workers all open the queues at start-up: the last one's DOCPIPE_SQS_MAX_ATTEMPTS holds."""
    assert await redrive_policy(client, settings) == (await dead_letter_arn(client, settings), MAX_ATTEMPTS)
    changed = msgspec.structs.replace(settings, max_attempts=MAX_ATTEMPTS + 3)
    async with opened_queue(aioboto3.Session(), changed) as other:
        await queue.send(job())
        assert (await only(other, 1)).job == job()
    assert await redrive_policy(client, settings) == (
        await dead_letter_arn(client, settings),
        MAX_ATTEMPTS + 3,
    )


async def redrive_policy(client: SQSClient, settings: SqsSettings) -> tuple[str, int]:
    url = (await client.get_queue_url(QueueName=settings.queue))["QueueUrl"]
    answer = await client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    policy = json.loads(answer["Attributes"]["RedrivePolicy"])
    return policy["deadLetterTargetArn"], int(policy["maxReceiveCount"])


async def dead_letter_arn(client: SQSClient, settings: SqsSettings) -> str:
    url = (await client.get_queue_url(QueueName=settings.queue + DEAD_LETTER_SUFFIX))["QueueUrl"]
    answer = await client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return answer["Attributes"]["QueueArn"]


async def test_a_missing_queue_is_refused_when_it_may_not_be_created(settings: SqsSettings) -> None:
    with pytest.raises(StoreMissing) as refused:
        async with opened_queue(aioboto3.Session(), settings, create_missing=False):
            pass
    assert settings.queue in str(refused.value)
    assert refused.value.detail == "the processing queue is missing"


async def test_a_queue_deleted_while_in_use_is_recreated(
    queue: SqsWorkQueue, client: SQSClient, settings: SqsSettings
) -> None:
    await client.delete_queue(QueueUrl=(await client.get_queue_url(QueueName=settings.queue))["QueueUrl"])
    with pytest.raises(StoreUnavailable):
        await queue.send(job())

    async def sent() -> None:
        await queue.send(job())

    await until_it_passes(sent)
    assert (await only(queue, 1)).job == job()
