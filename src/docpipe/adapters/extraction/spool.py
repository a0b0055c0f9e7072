"""The content to extract is streamed from the blob store into a private temporary folder, where the
sandboxed extractor reads it as a file; the text it writes there is read back in chunks. The folder is
removed when the caller is done, whatever happened."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO, Literal

from docpipe.domain.processing import Extraction, Extractor, ExtractorUnavailable
from docpipe.domain.streams import CHUNK_SIZE

_SOURCE = "content"
_TEXT = "text.txt"


class SpooledText:
    """An extraction and the file its text was written to."""

    def __init__(self, extraction: Extraction, text: Path) -> None:
        self._extraction = extraction
        self._text = text

    @property
    def extraction(self) -> Extraction:
        return self._extraction

    async def chunks(self) -> AsyncIterator[bytes]:
        file = await _opened(self._text, "rb")
        try:
            while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
                yield chunk
        finally:
            await asyncio.shield(asyncio.to_thread(file.close))


class SpoolingExtractor:
    """A ``ContentExtractor`` over an ``Extractor`` that reads local files; temporary folders are made
    in ``folder`` (the system's temporary folder when ``None``)."""

    def __init__(self, extractor: Extractor, folder: Path | None = None) -> None:
        self._extractor = extractor
        self._folder = folder

    @asynccontextmanager
    async def extract(self, content: AsyncIterable[bytes], content_type: str) -> AsyncIterator[SpooledText]:
        try:
            folder = Path(
                await asyncio.to_thread(tempfile.mkdtemp, prefix="docpipe-extract-", dir=self._folder)
            )
        except OSError as error:
            raise ExtractorUnavailable(f"cannot make a temporary folder: {error.strerror}") from None
        try:
            source = folder / _SOURCE
            await _spool(content, source)
            extraction = await self._extractor.extract(source, content_type, folder / _TEXT)
            yield SpooledText(extraction, folder / _TEXT)
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True))


async def _spool(content: AsyncIterable[bytes], path: Path) -> None:
    try:
        file = await _opened(path, "wb")
        try:
            async for chunk in content:
                await asyncio.to_thread(file.write, chunk)
        finally:
            await asyncio.shield(asyncio.to_thread(file.close))
    except OSError as error:
        raise ExtractorUnavailable(f"cannot keep the content aside to extract it: {error.strerror}") from None


async def _opened(path: Path, mode: Literal["rb", "wb"]) -> BinaryIO:
    """``path`` opened in a worker thread; closed, not leaked, when the caller is cancelled meanwhile."""
    opening = asyncio.ensure_future(asyncio.to_thread(path.open, mode))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise


def _close_opened(opening: asyncio.Future[BinaryIO]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()
