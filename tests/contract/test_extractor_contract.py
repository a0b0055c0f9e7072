"""The Extractor port, over every adapter: the sandbox and the in-process one give the same results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from docpipe.adapters.extraction.in_process import InProcessExtractor
from docpipe.adapters.extraction.limits import Limits
from docpipe.adapters.extraction.sandbox import open_extractor
from docpipe.domain.processing import (
    Extraction,
    ExtractionFailed,
    Extractor,
    ExtractorUnavailable,
    UnsupportedType,
)
from tests.extraction import documents

_LIMITS = Limits(text_bytes=16 * 1024)


@pytest.fixture(params=["sandboxed", "in_process"])
async def extractor(request: pytest.FixtureRequest) -> AsyncIterator[Extractor]:
    if request.param == "in_process":
        yield InProcessExtractor(limits=_LIMITS)
        return
    async for sandboxed in open_extractor(limits=_LIMITS, workers=1):
        yield sandboxed


async def _extract(
    extractor: Extractor, tmp_path: Path, data: bytes, content_type: str
) -> tuple[Extraction, str]:
    source = tmp_path / "source"
    source.write_bytes(data)
    text_out = tmp_path / "text"
    extraction = await extractor.extract(source, content_type, text_out)
    return extraction, text_out.read_text(encoding="utf-8")


async def test_each_format_gives_its_text_pages_and_title(extractor: Extractor, tmp_path: Path) -> None:
    pdf = documents.reportlab_pdf(["One", "Two"], title="Report")
    assert await _extract(extractor, tmp_path, pdf, "application/pdf") == (
        Extraction(pages=2, title="Report", characters=9),
        "One\n\fTwo\n",
    )
    extraction, text = await _extract(extractor, tmp_path, documents.word_document(), documents.DOCX_TYPE)
    assert text == documents.WORD_DOCUMENT_TEXT
    assert extraction.title == "Annual report"
    html = b"<title>Page</title><p>Hello <script>x()</script>world</p>"
    assert await _extract(extractor, tmp_path, html, "text/html") == (
        Extraction(pages=None, title="Page", characters=12),
        "Hello world\n",
    )
    text_file = "Grüße".encode("utf-16")
    assert await _extract(extractor, tmp_path, text_file, "text/plain") == (
        Extraction(pages=None, title=None, characters=5),
        "Grüße",
    )


async def test_a_declared_charset_is_used(extractor: Extractor, tmp_path: Path) -> None:
    data = "Ærø og Å".encode("iso8859-15")
    _, text = await _extract(extractor, tmp_path, data, "text/plain; charset=ISO-8859-15")
    assert text == "Ærø og Å"


async def test_text_past_the_limit_is_truncated_not_failed(extractor: Extractor, tmp_path: Path) -> None:
    extraction, text = await _extract(extractor, tmp_path, b"many words " * 10_000, "text/csv")
    assert extraction.truncated
    assert len(text.encode()) <= _LIMITS.text_bytes
    assert text.endswith("[docpipe kept the first 16 KiB of this text]\n")


async def test_a_type_without_processor_is_unsupported(extractor: Extractor, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedType):
        await _extract(extractor, tmp_path, b"\x89PNG\r\n", "image/png")
    assert not (tmp_path / "text").exists()


async def test_a_damaged_file_fails_with_a_reason(extractor: Extractor, tmp_path: Path) -> None:
    with pytest.raises(ExtractionFailed) as failed:
        await _extract(extractor, tmp_path, documents.truncated_pdf(), "application/pdf")
    assert failed.value.reason == "the PDF is truncated or damaged"
    # the extractor goes on working
    extraction, _ = await _extract(extractor, tmp_path, b"fine", "text/plain")
    assert extraction.characters == 4


async def test_a_missing_source_is_the_extractors_problem_not_the_files(
    extractor: Extractor, tmp_path: Path
) -> None:
    with pytest.raises(ExtractorUnavailable):
        await extractor.extract(tmp_path / "missing", "application/pdf", tmp_path / "text")
