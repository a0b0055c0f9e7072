"""``docpipe reprocess [--failed | --all]``: extract documents' text again, on the stores the settings select.

It runs whether or not servers use the same stores: each result is recorded atomically, and the event
it writes reaches the search index through a server's relay (at once when one runs, else at its next
start). Without a flag it takes the documents that need it: still pending, or processed by an older
version of their processor (after an upgrade).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import msgspec

from docpipe.config import RepositoryKind, Settings
from docpipe.container import Container, close
from docpipe.domain.errors import StoreFailure, StoreMissing
from docpipe.domain.pipeline import DocumentProcessing, Selection, reprocess
from docpipe.domain.ports import DocumentRepository
from docpipe.domain.processing import ExtractorUnavailable

logger = logging.getLogger("docpipe")

CANNOT_RUN = 2


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "reprocess",
        help="extract documents' text again: pending ones and those of older processors, or as flags say",
    )
    which = command.add_mutually_exclusive_group()
    which.add_argument(
        "--failed", dest="selection", action="store_const", const=Selection.FAILED, help="those that failed"
    )
    which.add_argument(
        "--all", dest="selection", action="store_const", const=Selection.ALL, help="every document"
    )
    command.set_defaults(selection=Selection.OUTDATED)


def run(settings: Settings, arguments: argparse.Namespace) -> int:
    """Exit status 0 when every selected document was processed, ``CANNOT_RUN`` otherwise."""
    if settings.repository is RepositoryKind.MEMORY:
        logger.critical(
            "cannot reprocess: DOCPIPE_REPOSITORY=memory keeps documents in each process's memory"
        )
        return CANNOT_RUN
    return asyncio.run(
        _reprocess(msgspec.structs.replace(settings, create_missing=False), arguments.selection)
    )


async def _reprocess(settings: Settings, selection: Selection) -> int:
    container = Container(settings=settings)
    try:
        await container.blob_store()
        repository: DocumentRepository = await container.repository()
        processing: DocumentProcessing = await container.processing()  # type: ignore[misc]
        report = await reprocess(repository, processing, selection, concurrency=settings.extraction.workers)
    except StoreMissing as error:
        logger.critical("cannot reprocess: no docpipe store there: %s does not exist", error.store)
        return CANNOT_RUN
    except (StoreFailure, ExtractorUnavailable) as error:
        logger.critical("cannot reprocess: %s", error)
        return CANNOT_RUN
    finally:
        await close(container)
    processed = sum(report.states.values())
    ended = ", ".join(f"{count} {state}" for state, count in sorted(report.states.items()))
    print(f"examined {report.examined} documents, processed {processed}" + (f": {ended}" if ended else ""))
    return 0
