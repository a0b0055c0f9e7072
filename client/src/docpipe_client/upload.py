"""``upload``: a file streamed to docpipe, its sha-256 computed on the way and compared with the one the
server stored.

A small file (or any file, where the server offers no resumable uploads) is one multipart
``POST /documents``. A large one goes through tus (``/uploads``) when the server offers it (``OPTIONS
/uploads``): the upload's URL is remembered (see ``state``), so a run that was interrupted (Ctrl+C, a
broken connection) resumes at the offset the server reports instead of starting over.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import secrets
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path

from rich.progress import Progress, TaskID

from docpipe_client.api import Api, Document, expect
from docpipe_client.errors import CommandFailed, ExitCode
from docpipe_client.files import hash_prefix, read_range
from docpipe_client.state import UploadState

RESUMABLE_ABOVE = 8 * 1024 * 1024
"""Files of at least this many bytes go through tus in ``auto`` mode: below it, a broken upload costs
little to repeat and one request is quicker than tus's three."""
TUS_CHUNK = 8 * 1024 * 1024
"""Bytes per tus PATCH: what an interruption may cost. docpipe keeps the bytes of a PATCH whose body
merely ends early, but drops the whole PATCH when its connection is reset."""
TUS = {"Tus-Resumable": "1.0.0"}


class Resumable(enum.Enum):
    """``--resumable``: when an upload goes through tus."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class Uploader:
    """Uploads files to one server, asking it once whether it offers tus."""

    def __init__(self, api: Api, progress: Progress, states: Path, resumable: Resumable) -> None:
        self._api = api
        self._progress = progress
        self._states = states
        self._resumable = resumable

    @cached_property
    def _tus_offered(self) -> bool:
        response = self._api.http.options("/uploads", headers=TUS)
        if response.status_code in (404, 405, 501):
            return False
        expect(response, 200, 204)
        return "1.0.0" in response.headers.get("tus-version", "")

    def upload(self, path: Path, tags: list[str], content_type: str | None) -> Document:
        try:
            size = path.stat().st_size
        except OSError as error:
            raise CommandFailed(f"cannot read {path}: {error.strerror}", ExitCode.USAGE) from None
        if path.is_dir():
            raise CommandFailed(f"{path} is a folder", ExitCode.USAGE)
        wanted = self._resumable is Resumable.ALWAYS or (
            self._resumable is Resumable.AUTO and size >= RESUMABLE_ABOVE
        )
        if wanted and self._tus_offered:
            document, digest = self._tus(path, size, tags, content_type)
        elif self._resumable is Resumable.ALWAYS:
            raise CommandFailed("the server offers no resumable uploads (tus)", ExitCode.REFUSED)
        else:
            document, digest = self._post(path, size, tags, content_type)
        if document["sha256"] != digest:
            raise CommandFailed(
                f"document {document['id']} was stored with sha-256 {document['sha256']}, "
                f"but the file sent has {digest}",
                ExitCode.CORRUPT,
            )
        return document

    def _post(self, path: Path, size: int, tags: list[str], content_type: str | None) -> tuple[Document, str]:
        boundary = secrets.token_hex(16)
        head = b""
        if tags:
            head += _form_field(boundary, 'name="tags"', ",".join(tags).encode())
        name = path.name.replace("\\", "\\\\").replace('"', '\\"')
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: {content_type or 'application/octet-stream'}\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        digest = hashlib.sha256()
        task = self._progress.add_task(path.name, total=size)

        def body() -> Iterator[bytes]:
            yield head
            yield from read_range(path, 0, size, digest, self._advancer(task))
            yield tail

        response = self._api.http.post(
            "/documents",
            content=body(),
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(head) + size + len(tail)),
            },
        )
        document: Document = expect(response, 201).json()
        return document, digest.hexdigest()

    def _tus(self, path: Path, size: int, tags: list[str], content_type: str | None) -> tuple[Document, str]:
        state = UploadState(self._states, self._api.url, path)
        url = state.load()
        offset, location = self._where(url) if url else (0, None)
        if url is None or offset is None:
            url, offset, location = self._create(path, size, tags, content_type), 0, None
            state.save(url)
        digest = hashlib.sha256()
        hash_prefix(path, offset, digest)
        task = self._progress.add_task(path.name, total=size, completed=offset)
        while location is None:
            stop = min(size, offset + TUS_CHUNK)
            response = self._api.http.patch(
                url,
                content=read_range(path, offset, stop, digest, self._advancer(task)),
                headers={
                    **TUS,
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                    "Content-Length": str(stop - offset),
                },
            )
            expect(response, 204)
            offset = int(response.headers["upload-offset"])
            location = response.headers.get("location")
        state.clear()
        return self._api.document_at(location), digest.hexdigest()

    def _where(self, url: str) -> tuple[int | None, str | None]:
        """The offset an earlier run's upload reached and, once committed, its document's path; no
        offset when that upload is gone (expired, deleted) and a new one must start."""
        response = self._api.http.head(url, headers=TUS)
        if response.status_code in (404, 410):
            return None, None
        expect(response, 200)
        return int(response.headers["upload-offset"]), response.headers.get("location")

    def _create(self, path: Path, size: int, tags: list[str], content_type: str | None) -> str:
        metadata = {"filename": path.name}
        if tags:
            metadata["tags"] = ",".join(tags)
        if content_type:
            metadata["filetype"] = content_type
        encoded = ",".join(
            f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in metadata.items()
        )
        response = self._api.http.post(
            "/uploads", headers={**TUS, "Upload-Length": str(size), "Upload-Metadata": encoded}
        )
        return str(self._api.http.base_url.join(expect(response, 201).headers["location"]))

    def _advancer(self, task: TaskID) -> Callable[[int], None]:
        return lambda size: self._progress.advance(task, size)


def _form_field(boundary: str, disposition: str, value: bytes) -> bytes:
    return f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n".encode() + value + b"\r\n"
