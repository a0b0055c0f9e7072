"""Which processor reads which content type, and titles fit to show."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.domain.processing import (
    DOCX,
    HTML,
    MAX_TITLE_LENGTH,
    PDF,
    PROCESSORS,
    TEXT,
    Processor,
    UnsupportedType,
    clean_title,
    declared_charset,
    processor_for,
)


@pytest.mark.parametrize(
    ("content_type", "processor"),
    [
        ("application/pdf", PDF),
        ("Application/PDF", PDF),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", DOCX),
        ("text/html; charset=utf-8", HTML),
        ("application/xhtml+xml", HTML),
        ("text/plain", TEXT),
        ("text/plain; charset=shift_jis", TEXT),
        ("text/csv", TEXT),
        ("text/markdown", TEXT),
        ("text/x-python", TEXT),
        ("application/json", TEXT),
    ],
)
def test_each_content_type_has_its_processor(content_type: str, processor: Processor) -> None:
    assert processor_for(content_type) == processor


@pytest.mark.parametrize(
    "content_type",
    ["image/png", "application/zip", "application/msword", "application/octet-stream", "not a type", ""],
)
def test_a_type_no_processor_reads_is_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedType):
        processor_for(content_type)


def test_processors_have_distinct_names_and_types() -> None:
    assert len({processor.name for processor in PROCESSORS}) == len(PROCESSORS)
    types = [content_type for processor in PROCESSORS for content_type in processor.content_types]
    assert len(set(types)) == len(types)
    assert PDF.label == "pdf/1"


@pytest.mark.parametrize(
    ("content_type", "charset"),
    [("text/plain; charset=Shift_JIS", "Shift_JIS"), ("text/plain", None), ("text/html; charset=", None)],
)
def test_the_declared_charset_is_read_from_the_type(content_type: str, charset: str | None) -> None:
    assert declared_charset(content_type) == charset


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        (None, None),
        ("", None),
        (" \t\n ", None),
        ("  Annual\n\treport  ", "Annual report"),
        ("evil\u202ereversed", "evilreversed"),
        ("nul\x00byte", "nulbyte"),
        ("Résumé 履歴書", "Résumé 履歴書"),
    ],
)
def test_titles_are_cleaned(raw: str | None, title: str | None) -> None:
    assert clean_title(raw) == title


@given(st.text())
def test_a_clean_title_is_short_visible_and_stable(raw: str) -> None:
    title = clean_title(raw)
    if title is None:
        return
    assert 0 < len(title) <= MAX_TITLE_LENGTH
    assert title == title.strip()
    assert "  " not in title
    assert not any(unicodedata.category(char) in ("Cc", "Cs") for char in title)
    assert clean_title(title) == title
    title.encode()  # every character is encodable
