"""Helpers shared by the adapter-specific suites."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from docpipe.domain.errors import StoreUnavailable

PATIENCE_SECONDS = 30


async def until_it_passes(check: Callable[[], Awaitable[None]]) -> None:
    """Call ``check`` until it stops raising ``StoreUnavailable``; fail after ``PATIENCE_SECONDS``."""
    async with asyncio.timeout(PATIENCE_SECONDS):
        while True:
            try:
                await check()
            except StoreUnavailable:
                await asyncio.sleep(0.1)
            else:
                return


def errors_naming(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    """The messages logged at ERROR that mention ``name``."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.ERROR and name in record.getMessage()
    ]


async def until_logged(caplog: pytest.LogCaptureFixture, name: str) -> None:
    """Wait until an ERROR naming ``name`` is logged; fail after ``PATIENCE_SECONDS``.

    A recreated bucket or table answers before the task recreating it (still waiting for it to be
    reported ready) logs that it did: a test must not close the store before then.
    """
    async with asyncio.timeout(PATIENCE_SECONDS):
        while True:
            if errors_naming(caplog, name):
                return
            await asyncio.sleep(0.1)
