"""Bare Litestar apps that do the least a server must do for each benchmark; docpipe is compared with them.

``python -m bench.baselines {download,files,upload,json} --port N ...`` serves one under uvicorn with
``docpipe serve``'s own configuration (``server_config``: same loop, HTTP parser, log level and access
log), so that a ratio measures docpipe's own work, not a difference in server set-up.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import uvicorn
import uvloop
from litestar import Litestar, Request, Response, get, post, route
from litestar.datastructures import State
from litestar.enums import HttpMethod
from litestar.response import File

from docpipe.config import LimitSettings
from docpipe.entrypoints.cli import server_config

MIB = 1024 * 1024


@get("/health/live", sync_to_thread=False)
def live() -> dict[str, str]:
    return {"status": "ok"}


# ---- download: Litestar's own File response ------------------------------------------------------


def download_app(path: Path) -> Litestar:
    """``GET /file`` streams ``path`` with Litestar's ``File`` response (1 MiB reads in a thread)."""

    @get("/file")
    async def download() -> File:
        return File(path, filename=path.name, media_type="application/octet-stream")

    return Litestar(route_handlers=[live, download])


# ---- files: stat and stream small files ---------------------------------------------------------


def files_app(root: Path) -> Litestar:
    """``GET /files/{name}`` streams a file of ``root`` with Litestar's ``File`` response (which stats it
    first); ``HEAD`` stats it and answers its length: what serving a stored file takes, and no more."""

    @route("/files/{name:str}", http_method=[HttpMethod.GET, HttpMethod.HEAD])
    async def serve_file(name: str, request: Request[Any, Any, State]) -> Response[bytes] | File:
        path = root / name
        if request.method == HttpMethod.HEAD:
            size = (await asyncio.to_thread(path.stat)).st_size
            return Response(b"", headers={"Content-Length": str(size)}, media_type="application/octet-stream")
        return File(path, filename=name, media_type="application/octet-stream")

    return Litestar(route_handlers=[live, serve_file])


# ---- upload: request.stream() to a file in 1 MiB writes -------------------------------------------


class Stored(msgspec.Struct, frozen=True):
    path: str
    size: int


def _fsync_and_close(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()


def upload_app(directory: Path) -> Litestar:
    """``POST /upload`` writes the body to a new file in ``directory`` in 1 MiB writes, in a thread.

    ``?fsync=true`` also fsyncs the file before answering, the durability docpipe's filesystem store
    pays for; the bench deletes the file afterwards.
    """

    @post("/upload", request_max_body_size=None, status_code=201)
    async def upload(request: Request[Any, Any, State], fsync: bool = False) -> Stored:
        path = directory / f"{uuid.uuid4().hex}.bin"
        file: BinaryIO = await asyncio.to_thread(open, path, "xb")
        size = 0
        buffer = bytearray()
        try:
            async for chunk in request.stream():
                buffer += chunk
                if len(buffer) >= MIB:
                    await asyncio.to_thread(file.write, buffer)
                    size += len(buffer)
                    buffer = bytearray()
            if buffer:
                await asyncio.to_thread(file.write, buffer)
                size += len(buffer)
            if fsync:
                await asyncio.to_thread(_fsync_and_close, file)
        finally:
            await asyncio.to_thread(file.close)
        return Stored(str(path), size)

    return Litestar(route_handlers=[live, upload])


# ---- json: a document's metadata, built in memory -------------------------------------------------


class DocumentOut(msgspec.Struct, frozen=True, kw_only=True):
    """The same fields as docpipe's ``GET /documents/{id}`` answer."""

    id: str
    filename: str
    content_type: str
    detected_content_type: str | None
    size: int
    sha256: str
    tags: list[str]
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime


_CREATED = datetime(2025, 1, 1, tzinfo=UTC)
SAMPLE = DocumentOut(
    id="00000000-0000-7000-8000-000000000000",
    filename="quarterly-report.pdf",
    content_type="application/pdf",
    detected_content_type=None,
    size=123_456,
    sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    tags=["finance", "q3"],
    metadata={"project": "apollo", "owner": "bench"},
    created_at=_CREATED,
    updated_at=_CREATED,
)


def json_app() -> Litestar:
    """``GET /documents/{id}`` answers a constant document (with this id) and an ETag: no storage at all."""

    @get("/documents/{document_id:str}", sync_to_thread=False)
    def get_document(document_id: str) -> Response[DocumentOut]:
        document = msgspec.structs.replace(SAMPLE, id=document_id)
        return Response(document, headers={"ETag": f'"{SAMPLE.sha256[:16]}.v1"'})

    return Litestar(route_handlers=[live, get_document])


# ---- serving ---------------------------------------------------------------------------------------


async def _serve(app: Litestar, port: int) -> None:
    await uvicorn.Server(server_config(app, "127.0.0.1", port, LimitSettings())).serve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__)
    parser.add_argument("app", choices=["download", "files", "upload", "json"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", type=Path, help="download: the file to serve")
    parser.add_argument("--dir", type=Path, help="files: the files to serve; upload: where to write uploads")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if arguments.app == "download":
        if arguments.file is None:
            parser.error("download needs --file")
        app = download_app(arguments.file)
    elif arguments.app in {"files", "upload"}:
        if arguments.dir is None:
            parser.error(f"{arguments.app} needs --dir")
        app = files_app(arguments.dir) if arguments.app == "files" else upload_app(arguments.dir)
    else:
        app = json_app()
    uvloop.run(_serve(app, arguments.port))


if __name__ == "__main__":
    main()
