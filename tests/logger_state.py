"""Tests that touch a logger's level or handlers leave it as they found it."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def logger_restored(name: str = "") -> Iterator[logging.Logger]:
    """The logger ``name`` (the root by default), its handlers and level put back as they were on leaving."""
    logger = logging.getLogger(name)
    handlers, level = list(logger.handlers), logger.level
    try:
        yield logger
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
