"""The server's periodic removal of expired resumable uploads, with their bytes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from docpipe.domain.uploads.service import ResumableUploads
from docpipe.entrypoints.background import in_background

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 60.0
"""Between two rounds; each round removes at most ``SWEEP_BATCH`` uploads, so its work is bounded."""


async def _sweep_forever(uploads: ResumableUploads, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            swept = await uploads.sweep()
        except Exception:
            logger.warning("expired uploads not swept this round", exc_info=True)
            continue
        if swept:
            logger.info("removed %d expired uploads", swept)


@contextlib.asynccontextmanager
async def sweeping(
    uploads: ResumableUploads, interval: float = SWEEP_INTERVAL_SECONDS
) -> AsyncIterator[None]:
    """Sweep in the background while the block runs."""
    async with in_background(_sweep_forever(uploads, interval)):
        yield
