from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docpipe.entrypoints.http.content import served_media_type
from docpipe.entrypoints.http.disposition import (
    INLINE_SAFE_TYPES,
    ascii_fallback,
    content_disposition,
    disposition_for,
)

_HEADER = re.compile(
    r"""(?P<type>[a-z]+); filename="(?P<fallback>[^"]*)"(?:; filename\*=UTF-8''(?P<ext>\S+))?"""
)
_ATTR_CHARS = re.compile(r"[A-Za-z0-9!#$&+\-.^_`|~%]*")


def _parts(header: str) -> tuple[str, str, str | None]:
    match = _HEADER.fullmatch(header)
    assert match is not None, header
    return match["type"], match["fallback"], match["ext"]


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("report.pdf", 'attachment; filename="report.pdf"'),
        ("Q3 report (final).pdf", 'attachment; filename="Q3 report (final).pdf"'),
        (
            "R\u00e9sum\u00e9.pdf",
            "attachment; filename=\"Resume.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf",
        ),
        (
            "\u5831\u544a.pdf",  # 報告.pdf: nothing survives before the extension
            "attachment; filename=\"download.pdf\"; filename*=UTF-8''%E5%A0%B1%E5%91%8A.pdf",
        ),
        ("\u65e5\u672c", "attachment; filename=\"download\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC"),
        ("\ufb01le.txt", "attachment; filename=\"file.txt\"; filename*=UTF-8''%EF%AC%81le.txt"),  # ﬁ ligature
        ('say "hi".txt', "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt"),
        ("a\\b.txt", "attachment; filename=\"a_b.txt\"; filename*=UTF-8''a%5Cb.txt"),
        ("a;b%20.txt", "attachment; filename=\"a_b_20.txt\"; filename*=UTF-8''a%3Bb%2520.txt"),
        (
            "evil\r\nSet-Cookie: x=1.txt",
            'attachment; filename="evil__Set-Cookie: x=1.txt"; '
            "filename*=UTF-8''evil%0D%0ASet-Cookie%3A%20x%3D1.txt",
        ),
        ("nul\x00.txt", "attachment; filename=\"nul_.txt\"; filename*=UTF-8''nul%00.txt"),
        ("", 'attachment; filename="download"'),
        ('"', "attachment; filename=\"download\"; filename*=UTF-8''%22"),
        (".bashrc", 'attachment; filename=".bashrc"'),
        ("a!#$&+-.^_`|~b", 'attachment; filename="a!#$&+-.^_`|~b"'),
    ],
)
def test_builds_an_rfc_6266_header(filename: str, expected: str) -> None:
    assert content_disposition(filename) == expected


def test_uses_the_requested_disposition_type() -> None:
    assert content_disposition("a.png", "inline") == 'inline; filename="a.png"'


@pytest.mark.parametrize("disposition", ["", "attachment; x=1", "in line", "inline\r\n", '"inline"'])
def test_rejects_a_disposition_type_that_is_not_a_token(disposition: str) -> None:
    with pytest.raises(ValueError, match="not a token"):
        content_disposition("a.txt", disposition)


def test_replaces_lone_surrogates_instead_of_failing() -> None:
    header = content_disposition("\ud800x.txt")
    assert header == "attachment; filename=\"x.txt\"; filename*=UTF-8''%EF%BF%BDx.txt"


def test_fallback_keeps_ascii_and_transliterates_accents() -> None:
    assert ascii_fallback("Cr\u00e8me br\u00fbl\u00e9e.txt") == "Creme brulee.txt"
    assert ascii_fallback("  padded  ") == "padded"
    assert ascii_fallback("\u2603") == "download"


@given(st.text())
def test_any_filename_gives_a_safe_header_that_round_trips(filename: str) -> None:
    header = content_disposition(filename)
    assert not any(char in header for char in "\r\n\x00")
    assert header.isascii()
    disposition, fallback, extended = _parts(header)
    assert disposition == "attachment"
    assert fallback
    assert not re.search(r'[\x00-\x1f\x7f"\\;%]', fallback)
    if extended is None:
        assert fallback == (filename or "download")
    else:
        assert _ATTR_CHARS.fullmatch(extended)
        assert unquote(extended, errors="strict") == filename


@given(st.text(alphabet=st.characters(codec="ascii"), min_size=1))
def test_plain_safe_ascii_names_omit_filename_star(filename: str) -> None:
    _, fallback, extended = _parts(content_disposition(filename))
    assert (extended is None) == (fallback == filename)


@pytest.mark.parametrize(
    ("requested", "content_type", "expected"),
    [
        ("inline", "image/png", "inline"),
        ("inline", "application/pdf", "inline"),
        ("inline", "text/plain; charset=utf-8", "inline"),
        ("INLINE", "Image/JPEG", "inline"),
        ("inline", " video/mp4 ", "inline"),
        ("inline", "application/json", "inline"),
        (None, "image/png", "attachment"),
        ("attachment", "image/png", "attachment"),
        ("", "image/png", "attachment"),
        ("inline", "text/html", "attachment"),
        ("inline", "text/html; charset=utf-8", "attachment"),
        ("inline", "image/svg+xml", "attachment"),
        ("inline", "application/xhtml+xml", "attachment"),
        ("inline", "text/xml", "attachment"),
        ("inline", "application/xml", "attachment"),
        ("inline", "application/javascript", "attachment"),
        ("inline", "text/javascript", "attachment"),
        ("inline", "application/octet-stream", "attachment"),
        ("inline", "", "attachment"),
        ("inline", "image/png+html", "attachment"),
        ("inline", "text/plain; a=b, text/html", "attachment"),
        ("inline", "text/plain, text/html", "attachment"),
        ("inline", "image/png;x=y,text/html", "attachment"),
        ("inline", "text/pl\u0430in", "attachment"),
    ],
)
def test_serves_inline_only_safe_types_on_request(
    requested: str | None, content_type: str, expected: str
) -> None:
    assert disposition_for(requested, served_media_type(content_type)) == expected


def test_the_inline_allowlist_holds_nothing_scriptable() -> None:
    for media_type in INLINE_SAFE_TYPES:
        assert media_type == media_type.lower()
        assert "html" not in media_type
        assert "xml" not in media_type
        assert "script" not in media_type
        assert "svg" not in media_type
