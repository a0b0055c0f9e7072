"""The ``docpipe`` command."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from docpipe.config import SettingsError, load_settings
from docpipe.entrypoints.http.app import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="docpipe", description="Async document storage service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the HTTP API (settings from DOCPIPE_* variables)")
    serve.add_argument("--host", help="overrides DOCPIPE_HOST")
    serve.add_argument("--port", type=int, help="overrides DOCPIPE_PORT")
    arguments = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"docpipe: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=arguments.host or settings.host,
        port=arguments.port or settings.port,
        log_level="info",
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
