"""A tus PATCH whose body breaks off keeps every byte the server received, as tus requires: HEAD says
how far they got, and the upload resumes from there to the exact document.

The app is called in process with an ASGI ``receive`` that hands over part of the body in uvicorn-sized
pieces and then either reports the client gone (``http.disconnect``) or stops sending (the request's
body idle timeout then ends it with 408). No socket buffers in between: the offset is exact.

Keeping what arrived is the service's (``ResumableUploads.write``), whatever ended the body; each blob
store then stores a short body as any other, which the resumable-blobs contract tests cover on every
store. So this runs on the filesystem and SQLite only, the pair a client saw lose its bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Literal

import msgspec
import pytest
from litestar.types import Message, Receive, ReceiveMessage

from docpipe.config import LimitSettings, Settings
from tests.http.helpers import Client
from tests.http.test_tus import BYTES, TUS, create, send

DATA = os.urandom(4 * 1024 * 1024)
CUT = 1024 * 1024 + 300_000
"""Where the body breaks off: past a whole MiB (the chunk docpipe stores at once), short of a second."""
PIECE = 64 * 1024
"""What uvicorn hands over at a time."""


pytestmark = pytest.mark.parametrize(
    "settings", [("filesystem", "sqlite")], indirect=True, ids=["filesystem+sqlite"]
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A body that stops is ended after one second instead of thirty."""
    return msgspec.structs.replace(settings, limits=LimitSettings(body_idle_timeout=1))


def breaking_body(data: bytes, end: Literal["disconnect", "stall"]) -> Receive:
    pieces = [data[start : start + PIECE] for start in range(0, len(data), PIECE)]

    async def receive() -> ReceiveMessage:
        if pieces:
            return {"type": "http.request", "body": pieces.pop(0), "more_body": True}
        if end == "stall":
            await asyncio.sleep(60)  # the idle timeout cancels this
        return {"type": "http.disconnect"}

    return receive


async def broken_patch(client: Client, location: str, end: Literal["disconnect", "stall"]) -> int:
    """PATCH all of ``DATA`` from offset 0, breaking off after ``CUT`` bytes; the status answered."""
    headers = {**client.headers, **BYTES, "Upload-Offset": "0", "Content-Length": str(len(DATA))}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PATCH",
        "scheme": "http",
        "path": location,
        "raw_path": location.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "extensions": {},
    }
    statuses: list[int] = []

    async def send_message(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    receive = breaking_body(DATA[:CUT], end)
    await asyncio.to_thread(client.blocking_portal.call, client.app, scope, receive, send_message)
    assert len(statuses) == 1
    return statuses[0]


async def test_a_patch_whose_client_left_keeps_every_byte_received_and_the_upload_resumes(
    client: Client,
) -> None:
    await break_off_and_resume(client, "disconnect", 400)


async def test_a_patch_whose_body_stopped_keeps_every_byte_received_and_the_upload_resumes(
    client: Client,
) -> None:
    await break_off_and_resume(client, "stall", 408)


async def break_off_and_resume(client: Client, end: Literal["disconnect", "stall"], status: int) -> None:
    location = await create(client, len(DATA), filename="broken.bin")
    assert await broken_patch(client, location, end) == status
    head = await client.head(location, headers=TUS)
    assert head.headers["upload-offset"] == str(CUT)
    resumed = await send(client, location, CUT, DATA[CUT:])
    assert resumed.status_code == 204, resumed.text
    document = (await client.get(resumed.headers["location"])).json()
    assert document["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert (await client.get(f"{resumed.headers['location']}/content")).content == DATA
