"""The visible text and the title of an HTML document, read with the standard library's streaming parser.

No tree is built, so a document nested 100,000 levels deep costs what a flat one does. Text inside
``script``, ``style``, ``template``, ``noscript`` and ``iframe`` is skipped, runs of white space become one
space, and block elements start new lines.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from docpipe.adapters.extraction.encodings import SAMPLE_BYTES, choose_encoding, decode
from docpipe.adapters.extraction.output import Output
from docpipe.domain.processing import MAX_TITLE_LENGTH, ExtractionFailed

FEED_CHARACTERS = 64 * 1024
MAX_PENDING_CHARACTERS = 8_000_000
"""A tag, comment or script that has not ended after this many characters fails the document.

Until it ends the parser keeps it, and scans it again on every feed: the feeds grow as it does, which
keeps the cost linear, and this bound keeps the memory it holds bounded."""

_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_META_SCAN_BYTES = 4096

_HIDDEN = frozenset({"script", "style", "template", "noscript", "iframe"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "dialog", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
        "td", "th", "tr", "ul",
    }
)  # fmt: skip


def read(source: Path, charset: str | None, output: Output) -> None:
    with source.open("rb") as file:
        sample = file.read(SAMPLE_BYTES + 1)
        meta = _META_CHARSET.search(sample, 0, _META_SCAN_BYTES)
        declared = [charset, meta.group(1).decode("ascii") if meta else None]
        encoding = choose_encoding(sample[:SAMPLE_BYTES], declared, whole=len(sample) <= SAMPLE_BYTES)
        file.seek(0)
        parser = _VisibleText(output)
        pending: list[str] = []
        size = 0
        for text in decode(file, encoding):
            pending.append(text)
            size += len(text)
            if size >= max(FEED_CHARACTERS, len(parser.rawdata)):
                _feed(parser, "".join(pending))
                pending.clear()
                size = 0
                if output.full:
                    return
        _feed(parser, "".join(pending))
        parser.close()
    output.title = parser.title


def _feed(parser: _VisibleText, text: str) -> None:
    parser.feed(text)
    if len(parser.rawdata) > MAX_PENDING_CHARACTERS:
        raise ExtractionFailed(
            "the HTML document has a tag, comment or script that runs on for more than "
            f"{MAX_PENDING_CHARACTERS:,} characters"
        )


class _VisibleText(HTMLParser):
    """Writes the text a browser would show to ``output`` as the parser meets it, and keeps the title."""

    def __init__(self, output: Output) -> None:
        super().__init__(convert_charrefs=True)
        self._output = output
        self._hidden: dict[str, int] = {}
        self._in_title = False
        self._title: list[str] | None = None
        self._title_length = 0
        self._preformatted = 0
        self._line_start = True
        self._space = False

    @property
    def title(self) -> str | None:
        return None if self._title is None else "".join(self._title)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden[tag] = self._hidden.get(tag, 0) + 1
        elif tag == "title" and self._title is None:
            self._in_title = True
            self._title = []
        elif tag == "pre":
            self._preformatted += 1
        if tag in _BLOCKS:
            self._new_line()

    def handle_endtag(self, tag: str) -> None:
        if self._hidden.get(tag):
            self._hidden[tag] -= 1
            if not self._hidden[tag]:
                del self._hidden[tag]
        elif tag == "title":
            self._in_title = False
        elif tag == "pre" and self._preformatted:
            self._preformatted -= 1
        if tag in _BLOCKS:
            self._new_line()

    def handle_data(self, data: str) -> None:
        if self._in_title and self._title is not None:
            if self._title_length < MAX_TITLE_LENGTH * 4:
                self._title.append(data[: MAX_TITLE_LENGTH * 4])
                self._title_length += len(self._title[-1])
            return
        if self._hidden:
            return
        if self._preformatted:
            self._output.write(data)
            self._line_start = data.endswith("\n")
            return
        words = data.split()
        if not words:
            self._space = self._space or bool(data)
            return
        if (self._space or data[0].isspace()) and not self._line_start:
            self._output.write(" ")
        self._output.write(" ".join(words))
        self._line_start = False
        self._space = data[-1].isspace()

    def _new_line(self) -> None:
        if not self._line_start:
            self._output.write("\n")
        self._line_start = True
        self._space = False
