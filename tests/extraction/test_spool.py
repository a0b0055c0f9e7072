"""Content streamed from a blob store is extracted through a temporary folder that never outlives the call."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from docpipe.adapters.extraction.in_process import InProcessExtractor
from docpipe.adapters.extraction.spool import SpoolingExtractor
from docpipe.domain.processing import ExtractionFailed, ExtractorUnavailable
from tests.extraction import documents


async def streamed(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_streamed_content_is_extracted_and_the_folder_removed(tmp_path: Path) -> None:
    spooling = SpoolingExtractor(InProcessExtractor(), tmp_path)
    pdf = documents.reportlab_pdf(["first page", "second page"], title="Report")
    async with spooling.extract(streamed(pdf, 1000), "application/pdf") as extracted:
        text = b"".join([chunk async for chunk in extracted.chunks()]).decode()
        assert (extracted.extraction.pages, extracted.extraction.title) == (2, "Report")
    assert "first page" in text
    assert "second page" in text
    assert os.listdir(tmp_path) == []


async def test_a_failed_extraction_leaves_no_folder(tmp_path: Path) -> None:
    spooling = SpoolingExtractor(InProcessExtractor(), tmp_path)
    with pytest.raises(ExtractionFailed):
        async with spooling.extract(streamed(documents.truncated_pdf()), "application/pdf"):
            pass
    assert os.listdir(tmp_path) == []


async def test_no_room_for_the_content_is_unavailable_not_a_failure(tmp_path: Path) -> None:
    spooling = SpoolingExtractor(InProcessExtractor(), tmp_path / "missing")
    with pytest.raises(ExtractorUnavailable):
        async with spooling.extract(streamed(b"text"), "text/plain"):
            pass
