"""The ``docpipe`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import uvicorn

from docpipe.config import Settings, SettingsError, load_settings
from docpipe.container import Container, close, open_service
from docpipe.domain.errors import StoreUnavailable
from docpipe.entrypoints.http.app import create_app

logger = logging.getLogger("docpipe")


async def serve(settings: Settings, host: str, port: int) -> int:
    """Open the stores first, in uvicorn's event loop, so that a store that cannot be reached stops
    start-up with one clear line instead of a lifespan traceback; the app's lifespan then finds them open."""
    container = Container(settings=settings)
    try:
        await open_service(container)
    except StoreUnavailable as error:
        logger.critical("cannot start: %s", error)
        await close(container)
        return 1
    config = uvicorn.Config(
        create_app(settings, container),
        host=host,
        port=port,
        log_level="info",
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    await uvicorn.Server(config).serve()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="docpipe", description="Async document storage service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_command = commands.add_parser(
        "serve", help="serve the HTTP API (settings from DOCPIPE_* variables)"
    )
    serve_command.add_argument("--host", help="overrides DOCPIPE_HOST")
    serve_command.add_argument("--port", type=int, help="overrides DOCPIPE_PORT")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as error:
        logger.critical("%s", error)
        return 2
    return asyncio.run(serve(settings, arguments.host or settings.host, arguments.port or settings.port))


if __name__ == "__main__":
    sys.exit(main())
