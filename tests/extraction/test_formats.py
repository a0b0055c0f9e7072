"""Each format's reader, run in this process: what it extracts, and how a bad file of its kind fails.

The sandbox (test_sandbox.py) runs the same readers in limited child processes; here their results and
reasons are checked directly, quickly."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docpipe.adapters.extraction import docx_text, html_text, pdf_text, plain_text
from docpipe.adapters.extraction.limits import MiB
from docpipe.adapters.extraction.readers import Reader, run_reader
from docpipe.domain.processing import DOCX, HTML, PDF, TEXT, Extraction, ExtractionFailed
from tests.extraction import documents

_PROCESSOR: dict[Reader, str] = {
    pdf_text.read: PDF.name,
    docx_text.read: DOCX.name,
    html_text.read: HTML.name,
}


def _extract(
    tmp_path: Path, reader: Reader, data: bytes, charset: str | None = None, text_bytes: int = 64 * MiB
) -> tuple[Extraction, str]:
    source = tmp_path / "source"
    source.write_bytes(data)
    text_out = tmp_path / "text"
    extraction = run_reader(reader, _PROCESSOR.get(reader, TEXT.name), source, charset, text_out, text_bytes)
    return extraction, text_out.read_text(encoding="utf-8")


def _failure(tmp_path: Path, reader: Reader, data: bytes) -> ExtractionFailed:
    with pytest.raises(ExtractionFailed) as failed:
        _extract(tmp_path, reader, data)
    return failed.value


# PDF


def test_pdf_pages_are_separated_by_form_feeds(tmp_path: Path) -> None:
    data = documents.reportlab_pdf(["First page", "Second page", "Third page"], title="Quarterly report")
    extraction, text = _extract(tmp_path, pdf_text.read, data)
    assert text.split("\f") == ["First page\n", "Second page\n", "Third page\n"]
    assert extraction == Extraction(pages=3, title="Quarterly report", characters=len(text))


def test_a_pdf_title_comes_from_xmp_without_document_information(tmp_path: Path) -> None:
    extraction, text = _extract(tmp_path, pdf_text.read, documents.xmp_titled_pdf("From XMP", "Body"))
    assert extraction.title == "From XMP"
    assert text.strip() == "Body"


def test_a_pdf_without_title_has_none(tmp_path: Path) -> None:
    data = documents.one_page_pdf(b"BT /F1 12 Tf 72 720 Td (Untitled) Tj ET")
    extraction, text = _extract(tmp_path, pdf_text.read, data)
    assert text == "Untitled"
    assert extraction.pages == 1
    assert extraction.title is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (documents.truncated_pdf(), "the PDF is truncated or damaged"),
        (b"", "the PDF is truncated or damaged"),
        (b"%PDF-1.7\nnot really", "the PDF is truncated or damaged"),
        (documents.looping_page_tree_pdf(), "the PDF is truncated or damaged"),
    ],
    ids=["truncated", "empty", "garbage", "looping page tree"],
)
def test_a_broken_pdf_fails_with_a_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    failure = _failure(tmp_path, pdf_text.read, data)
    assert failure.reason == reason
    assert failure.cause is not None


def test_a_pdf_decompression_bomb_fails_before_inflating_it(tmp_path: Path) -> None:
    failure = _failure(tmp_path, pdf_text.read, documents.decompression_bomb_pdf())
    assert "inflates too far" in failure.reason
    assert failure.cause == "LimitReachedError"


def test_pdf_text_stops_at_the_limit(tmp_path: Path) -> None:
    data = documents.reportlab_pdf([f"Page {number} " + "x" * 80 for number in range(200)])
    extraction, text = _extract(tmp_path, pdf_text.read, data, text_bytes=4096)
    assert extraction.truncated
    assert extraction.pages == 200
    assert len(text.encode()) <= 4096
    assert text.startswith("Page 0 ")


# DOCX


def test_docx_text_has_paragraphs_tables_nested_tables_headers_and_footers_in_order(tmp_path: Path) -> None:
    extraction, text = _extract(tmp_path, docx_text.read, documents.word_document())
    assert text == documents.WORD_DOCUMENT_TEXT
    assert extraction == Extraction(pages=None, title="Annual report", characters=len(text))


def test_a_docx_zip_bomb_is_refused_unopened(tmp_path: Path) -> None:
    failure = _failure(tmp_path, docx_text.read, documents.zip_bomb_docx())
    assert failure.reason == "the DOCX unpacks to more than 256 MiB (a zip bomb?)"
    assert failure.cause is None  # refused from the sizes the zip declares: nothing was inflated


def test_a_billion_laughs_docx_fails_without_expanding(tmp_path: Path) -> None:
    failure = _failure(tmp_path, docx_text.read, documents.billion_laughs_docx())
    assert failure.reason == "the DOCX is damaged, or is not a Word document"
    assert failure.cause == "XMLSyntaxError"


def test_a_docx_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    _, text = _extract(tmp_path, docx_text.read, documents.external_entity_docx(str(secret)))
    assert "TOP SECRET" not in text
    assert text.startswith("before")


@pytest.mark.parametrize(
    "data",
    [b"", b"PK\x03\x04 not a zip", documents.reportlab_pdf(["a PDF"]), documents.truncated_pdf()],
    ids=["empty", "broken zip", "a PDF", "a truncated PDF"],
)
def test_a_file_that_is_no_docx_fails_with_a_reason(tmp_path: Path, data: bytes) -> None:
    assert _failure(tmp_path, docx_text.read, data).reason == "the DOCX is damaged, or is not a Word document"


# HTML


def test_html_gives_visible_text_and_title(tmp_path: Path) -> None:
    page = """<!doctype html><html><head><title> The   Title </title>
    <style>body { color: red }</style><script>var hidden = "<p>not text</p>";</script></head>
    <body><h1>Heading</h1><p>First &amp; <b>bold</b>
    paragraph.</p><template><p>template text</p></template><noscript>enable scripts</noscript>
    <ul><li>one</li><li>two</li></ul><pre>  keep
  spacing</pre><p>caf&eacute; &#8364;</p></body></html>"""
    extraction, text = _extract(tmp_path, html_text.read, page.encode())
    assert extraction.title == "The Title"
    assert text == "Heading\nFirst & bold paragraph.\none\ntwo\n  keep\n  spacing\ncafé €\n"
    for hidden in ("color", "hidden", "not text", "template text", "enable scripts"):
        assert hidden not in text


def test_html_without_a_closing_head_still_shows_its_body(tmp_path: Path) -> None:
    _, text = _extract(tmp_path, html_text.read, b"<html><head><title>t</title><body>visible")
    assert text == "visible"


@pytest.mark.parametrize(
    ("data", "charset"),
    [
        ('<meta charset="shift_jis"><p>日本語のテキスト</p>'.encode("shift_jis"), None),
        (b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1252"><p>caf\xe9</p>', None),
        ("<p>日本語のテキスト</p>".encode("euc_jp"), "euc-jp"),
        ("\ufeff<p>café</p>".encode("utf-16-le"), None),
    ],
    ids=["meta charset", "meta http-equiv", "declared", "byte order mark"],
)
def test_html_is_decoded_as_declared(tmp_path: Path, data: bytes, charset: str | None) -> None:
    _, text = _extract(tmp_path, html_text.read, data, charset)
    assert text in ("日本語のテキスト\n", "café\n")


def test_deeply_nested_html_costs_nothing_special(tmp_path: Path) -> None:
    extraction, text = _extract(tmp_path, html_text.read, documents.deeply_nested_html())
    assert text == "at the bottom\n"
    assert extraction.title == "Deep"


def test_html_with_a_comment_that_never_ends_fails(tmp_path: Path) -> None:
    data = b"<p>before</p><!--" + b"x" * (html_text.MAX_PENDING_CHARACTERS + 1024)
    failure = _failure(tmp_path, html_text.read, data)
    assert "runs on for more than" in failure.reason


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["<", ">", "/", "!--", "&", ";", "#x", '"', "=", " ", "a", "div", "script"])))
def test_any_html_reads_without_error(tmp_path: Path, pieces: list[str]) -> None:
    extraction, text = _extract(tmp_path, html_text.read, "".join(pieces).encode())
    assert extraction.characters == len(text)


# Plain text


@pytest.mark.parametrize(
    "data",
    [
        "Grüße aus Köln".encode(),
        "\ufeffGrüße aus Köln".encode("utf-16-le"),
        "Grüße aus Köln, schöne Straße, süße Äpfel und Öl für Größe.".encode("cp1252"),
    ],
    ids=["utf-8", "utf-16 with mark", "cp1252"],
)
def test_plain_text_becomes_utf8(tmp_path: Path, data: bytes) -> None:
    extraction, text = _extract(tmp_path, plain_text.read, data)
    assert text.startswith("Grüße aus Köln")
    assert extraction == Extraction(pages=None, title=None, characters=len(text))


def test_shift_jis_text_becomes_utf8(tmp_path: Path) -> None:
    japanese = "吾輩は猫である。名前はまだ無い。\nどこで生れたかとんと見当がつかぬ。\n" * 50
    _, text = _extract(tmp_path, plain_text.read, japanese.encode("shift_jis"))
    assert text == japanese


def test_plain_text_stops_at_the_limit(tmp_path: Path) -> None:
    extraction, text = _extract(tmp_path, plain_text.read, b"word " * 100_000, text_bytes=8192)
    assert extraction.truncated
    assert len(text.encode()) <= 8192
    assert text.startswith("word word")
