"""moto server with DynamoDB requests taken one at a time, as ``python -m tests.atomic_moto HOST PORT``.

Stock moto runs each request on its own thread and does not lock its DynamoDB tables: a transaction
whose condition fails restores a copy of the whole table taken when it began, undoing writes other
threads committed meanwhile (``tests/test_moto_server.py`` shows it). Real DynamoDB never loses a
committed write, so the tests' stand-in must not either. S3 requests stay concurrent: they stream
bodies, and a slow client must not hold up the rest.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def one_dynamodb_request_at_a_time(app: WsgiApp) -> WsgiApp:
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return serve


def main(host: str, port: int) -> None:
    run_simple(
        host,
        port,
        one_dynamodb_request_at_a_time(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
