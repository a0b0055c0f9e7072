"""The work queue (``ports.WorkQueue``) on Amazon SQS, through one long-lived aioboto3 client.

A standard queue, not FIFO: processing needs no order (see ``domain.worker``), and a standard queue
has no per-group head-of-line blocking (a failing job would hold up its group) and no throughput cap.
Beside it, ``<queue>-dlq`` keeps for 14 days (SQS's longest) the jobs received ``max_attempts`` times
without being deleted, which SQS moves there by itself through the queue's redrive policy. Both are
created at start-up unless ``DOCPIPE_CREATE_MISSING=false``, and the redrive policy is set on every
start, so that a changed ``DOCPIPE_SQS_MAX_ATTEMPTS`` takes effect.

A message's body is its ``Job`` as JSON; a message that is not one (sent by something else) is never
handed out and reaches the dead-letter queue after ``max_attempts`` receives, as a failing job does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Final

import aioboto3
import msgspec
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from docpipe.adapters.aws_errors import AwsFailures, code, retries
from docpipe.config import SqsSettings
from docpipe.domain.errors import StoreRole
from docpipe.domain.jobs import Job, JobReceipt

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

logger = logging.getLogger(__name__)

DEAD_LETTER_SUFFIX = "-dlq"
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
MAX_RECEIVE_BATCH = 10
MAX_WAIT_SECONDS = 20
MAX_VISIBILITY_SECONDS = 12 * 3600
_RECEIVE_COUNT: Final = "ApproximateReceiveCount"
_NAME_TAKEN = frozenset({"QueueAlreadyExists", "QueueNameExists"})
_RECEIPT_LAPSED = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "InvalidParameterValue",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
    }
)
"""A receipt no longer this receiver's: the job's visibility lapsed and another receiver has it."""


def _config() -> AioConfig:
    return AioConfig(
        connect_timeout=3,
        read_timeout=MAX_WAIT_SECONDS + 10,  # a long poll answers after up to 20 s
        retries=retries(),
        max_pool_connections=16,
    )


def _failures(settings: SqsSettings, recreate: SqsWorkQueue | None = None) -> AwsFailures:
    return AwsFailures(
        StoreRole.PROCESSING_QUEUE,
        f"SQS queue {settings.queue!r}",
        None if recreate is None else recreate.create_if_missing,
    )


class SqsWorkQueue:
    """Jobs in one SQS queue; every failure of SQS is converted by ``AwsFailures``."""

    def __init__(self, client: SQSClient, settings: SqsSettings, *, create_missing: bool) -> None:
        self._client = client
        self._settings = settings
        self._failures = _failures(settings, self if create_missing else None)
        self._url = ""

    async def send(self, job: Job) -> None:
        with self._failures.converted():
            await self._client.send_message(QueueUrl=self._url, MessageBody=msgspec.json.encode(job).decode())

    async def receive(self, limit: int, wait_seconds: float) -> list[JobReceipt]:
        with self._failures.converted():
            answer = await self._client.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=max(1, min(limit, MAX_RECEIVE_BATCH)),
                WaitTimeSeconds=max(0, min(math.ceil(wait_seconds), MAX_WAIT_SECONDS)),
                VisibilityTimeout=self._settings.visibility_timeout,
                MessageSystemAttributeNames=[_RECEIVE_COUNT],
            )
        deliveries = []
        for message in answer.get("Messages", []):
            try:
                job = msgspec.json.decode(message.get("Body", ""), type=Job)
            except msgspec.DecodeError:
                logger.warning(
                    "message %s in %s is not a docpipe job: left for the dead-letter queue",
                    message.get("MessageId"),
                    self._failures.store,
                )
                continue
            attempt = int(message.get("Attributes", {}).get(_RECEIVE_COUNT, "1"))
            deliveries.append(JobReceipt(job=job, receipt=message["ReceiptHandle"], attempt=attempt))
        return deliveries

    async def hold(self, delivery: JobReceipt, seconds: float) -> None:
        with self._lapsed_ignored(delivery), self._failures.converted():
            await self._client.change_message_visibility(
                QueueUrl=self._url,
                ReceiptHandle=delivery.receipt,
                VisibilityTimeout=max(0, min(math.ceil(seconds), MAX_VISIBILITY_SECONDS)),
            )

    async def delete(self, delivery: JobReceipt) -> None:
        with self._lapsed_ignored(delivery), self._failures.converted():
            await self._client.delete_message(QueueUrl=self._url, ReceiptHandle=delivery.receipt)

    @contextlib.contextmanager
    def _lapsed_ignored(self, delivery: JobReceipt) -> Iterator[None]:
        try:
            yield
        except ClientError as error:
            if code(error) not in _RECEIPT_LAPSED:
                raise
            logger.info("the job of %s went to another receiver meanwhile", delivery.job.event_id)

    async def create_if_missing(self) -> None:
        """Make the dead-letter queue and the queue (each only when missing, so an existing one needs
        no CreateQueue permission) and link them by the redrive policy."""
        with self._failures.converted():
            dead_letters = await self._ensure(
                self._settings.queue + DEAD_LETTER_SUFFIX,
                {"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_SECONDS)},
            )
            answer = await self._client.get_queue_attributes(
                QueueUrl=dead_letters, AttributeNames=["QueueArn"]
            )
            policy = {
                "deadLetterTargetArn": answer["Attributes"]["QueueArn"],
                "maxReceiveCount": str(self._settings.max_attempts),
            }
            self._url = await self._ensure(self._settings.queue, {"RedrivePolicy": json.dumps(policy)})

    async def find(self) -> None:
        """Find the queue, which must exist (``DOCPIPE_CREATE_MISSING=false``): else ``StoreMissing``."""
        with self._failures.converted():
            answer = await self._client.get_queue_url(QueueName=self._settings.queue)
        self._url = answer["QueueUrl"]

    async def _ensure(self, name: str, attributes: dict[str, str]) -> str:
        try:
            url = (await self._client.get_queue_url(QueueName=name))["QueueUrl"]
        except self._client.exceptions.QueueDoesNotExist:
            try:
                url = (await self._client.create_queue(QueueName=name))["QueueUrl"]
            except ClientError as error:  # created meanwhile by another process
                if code(error) not in _NAME_TAKEN:
                    raise
                url = (await self._client.get_queue_url(QueueName=name))["QueueUrl"]
        await self._client.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
        return url

    async def close(self) -> None:
        """Stop a recreation of the queues still in progress."""
        await self._failures.close()


async def open_work_queue(
    session: aioboto3.Session, settings: SqsSettings, *, create_missing: bool = True
) -> AsyncIterator[SqsWorkQueue]:
    """Open the process's one SQS client and make sure the queues exist (see the module docstring);
    close the client on exit. Endpoint, region and credentials not in ``settings`` come from the
    standard AWS chain, as for S3 and DynamoDB."""
    async with contextlib.AsyncExitStack() as stack:
        with _failures(settings).converted():
            client = await stack.enter_async_context(
                session.client(
                    "sqs", endpoint_url=settings.endpoint_url, region_name=settings.region, config=_config()
                )
            )
        queue = SqsWorkQueue(client, settings, create_missing=create_missing)
        stack.push_async_callback(queue.close)
        if create_missing:
            await queue.create_if_missing()
        else:
            await queue.find()
        yield queue
