"""``download``: a document's bytes to a file, resumed where an earlier run stopped, verified by sha-256.

The bytes go to ``<target>.part`` first. A run that finds one asks only for the rest (``Range``), on
condition that the content is still the one the part holds (``If-Range`` with the document's strong
ETag, ``"<sha256>"``); a server that answers 200 instead sends everything again, and the part starts
over. Only a complete part whose sha-256 is the document's becomes the target.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from rich.progress import Progress

from docpipe_client.api import Api, Document, document_path, expect
from docpipe_client.errors import CommandFailed, ExitCode
from docpipe_client.files import hash_prefix

STDOUT = "-"


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def target_path(output: str | None, document: Document) -> Path:
    """``-o`` as given, or inside it when it is a folder; else the document's own name, here."""
    name = document["filename"].replace("\\", "/").rsplit("/", 1)[-1]
    if name in ("", ".", ".."):
        name = document["id"]
    if output is None:
        return Path(name)
    path = Path(output)
    return path / name if path.is_dir() else path


def download(api: Api, document_id: str, output: str | None, progress: Progress) -> tuple[Document, str]:
    """Fetch the document's bytes to ``output`` (``-`` for stdout); returns the document and where its
    bytes went."""
    document = api.document(document_id)
    if output == STDOUT:
        _stream(api, document, sys.stdout.buffer, progress)
        return document, STDOUT
    target = target_path(output, document)
    part = part_path(target)
    size: int = document["size"]
    digest = hashlib.sha256()
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    hash_prefix(part, have, digest)
    task = progress.add_task(target.name, total=size, completed=have)
    if have < size:
        headers = {"Range": f"bytes={have}-", "If-Range": f'"{document["sha256"]}"'} if have else {}
        with api.http.stream("GET", f"{document_path(document['id'])}/content", headers=headers) as response:
            expect(response, 200, 206)
            if response.status_code == 200 and have:  # the content is not what the part holds
                digest, have = hashlib.sha256(), 0
                progress.reset(task, total=size)
            elif response.status_code == 206 and not response.headers.get("content-range", "").startswith(
                f"bytes {have}-"
            ):
                raise CommandFailed(f"the server sent another range than bytes {have}-", ExitCode.REFUSED)
            with part.open("ab" if have else "wb") as file:
                for chunk in response.iter_bytes():  # as received: a break keeps every byte that came
                    file.write(chunk)
                    digest.update(chunk)
                    progress.advance(task, len(chunk))
    _verify(digest, document, part.unlink)
    os.replace(part, target)
    return document, str(target)


def _stream(api: Api, document: Document, out: BinaryIO, progress: Progress) -> None:
    """The bytes to ``out`` (no resuming: what was written cannot be taken back), verified at the end."""
    digest = hashlib.sha256()
    task = progress.add_task(document["filename"], total=document["size"])
    with api.http.stream("GET", f"{document_path(document['id'])}/content") as response:
        expect(response, 200)
        for chunk in response.iter_bytes():
            out.write(chunk)
            digest.update(chunk)
            progress.advance(task, len(chunk))
    out.flush()
    _verify(digest, document, lambda: None)


def _verify(digest: hashlib._Hash, document: Document, discard: Callable[[], None]) -> None:
    if digest.hexdigest() != document["sha256"]:
        discard()
        raise CommandFailed(
            f"the bytes received have sha-256 {digest.hexdigest()}, not the document's {document['sha256']}",
            ExitCode.CORRUPT,
        )
