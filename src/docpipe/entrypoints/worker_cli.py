"""``docpipe worker``: process documents from the SQS queue the servers' relays feed (``DOCPIPE_QUEUE=sqs``).

Any number of workers may run, on any machine, with the servers' settings. SIGTERM or SIGINT stops one
gracefully (see ``Worker.run``); a worker killed outright loses no job (see ``domain.worker``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

import uvloop

from docpipe import tracing
from docpipe.config import QueueKind, Settings
from docpipe.container import Container, begin_tracing, close
from docpipe.domain.errors import StoreFailure
from docpipe.domain.processing import ExtractorUnavailable
from docpipe.domain.worker import Worker
from docpipe.entrypoints import data_lock

logger = logging.getLogger("docpipe")

CANNOT_RUN = 2


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands.add_parser(
        "worker",
        help="process documents from the SQS queue (DOCPIPE_QUEUE=sqs); run any number, on any machine",
    )


def run(settings: Settings) -> int:
    """Exit status 0 once stopped by a signal, 1 when the stores or the queue cannot be used at start-up,
    ``CANNOT_RUN`` without a queue to work from."""
    if settings.queue is not QueueKind.SQS:
        logger.critical(
            "cannot start: docpipe worker takes its jobs from SQS; set DOCPIPE_QUEUE=sqs, for the servers"
            " too (without it, each server processes documents itself)"
        )
        return CANNOT_RUN
    try:
        with data_lock.serving(settings):  # its text blobs are in flight as uploads are: see fsck
            return uvloop.run(_work(settings))
    except data_lock.FolderInUse as error:
        logger.critical("cannot start: %s", error)
        return 1


async def _work(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    container = Container(settings=settings)
    try:
        try:
            await container.blob_store()
            await container.repository()
            await begin_tracing(container)
            worker: Worker = await container.worker()  # type: ignore[misc]
        except (StoreFailure, ExtractorUnavailable) as error:
            logger.critical("cannot start: %s", error)
            return 1
        logger.info("waiting for documents to process on SQS queue %r", settings.sqs.queue)
        await worker.run(stop)
    finally:
        tracing.end()
        await close(container)
    logger.info("stopped")
    return 0
