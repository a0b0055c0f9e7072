"""``InProcessExtractor``: the readers run in a worker thread of this process, with no limit but the text
size. For tests, and for setups that hold everything in memory anyway; never for files from strangers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from docpipe.adapters.extraction.limits import Limits
from docpipe.adapters.extraction.readers import DEFAULT_READERS, Readers, run_reader
from docpipe.domain.processing import Extraction, ExtractorUnavailable, declared_charset, processor_for


class InProcessExtractor:
    """An ``Extractor`` without a sandbox: the same readers and results, none of the protection."""

    def __init__(self, *, limits: Limits | None = None, readers: Mapping[str, str] = DEFAULT_READERS) -> None:
        self._text_bytes = (limits or Limits()).text_bytes
        self._readers = Readers(readers)

    async def extract(self, source: Path, content_type: str, text_out: Path) -> Extraction:
        processor = processor_for(content_type)
        reader = await asyncio.to_thread(self._readers.get, processor.name)  # imports it the first time
        if reader is None:
            raise ExtractorUnavailable(f"this extractor has no reader for {processor.name!r}")
        try:
            return await asyncio.to_thread(
                run_reader,
                reader,
                processor.name,
                source,
                declared_charset(content_type),
                text_out,
                self._text_bytes,
            )
        except OSError as error:
            raise ExtractorUnavailable(f"{type(error).__name__}: {error.strerror or error}") from error
