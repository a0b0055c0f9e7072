"""Text extraction: the processors, the content types each reads, what one produces, and the port that
runs them.

A processor is named and versioned (``pdf/1``): a document's extracted text is redone when the
processor that made it changes version, so a change to what a processor extracts bumps its version here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

import msgspec

from docpipe.domain.errors import DocpipeError, InvalidInput
from docpipe.domain.media_types import parse_media_type

MAX_TITLE_LENGTH = 500
"""Characters of a title kept; a file's metadata can hold a title of any length."""


class Extraction(msgspec.Struct, frozen=True, kw_only=True):
    """What a processor found in a document; the text itself went to the file the caller named.

    ``truncated`` says the text reached the extractor's size limit: the file holds the text up to it, then
    a note saying so (not counted in ``characters``)."""

    pages: int | None
    title: str | None
    characters: int
    truncated: bool = False


class Processor(msgspec.Struct, frozen=True):
    """A text extractor for some content types, named for ``Processing.processor`` as ``name/version``.

    ``noun`` names what it reads in a failure's reason ("the PDF is truncated or damaged")."""

    name: str
    version: int
    noun: str
    content_types: frozenset[str]

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"


PDF = Processor("pdf", 1, "PDF", frozenset({"application/pdf"}))
DOCX = Processor(
    "docx",
    1,
    "DOCX",
    frozenset({"application/vnd.openxmlformats-officedocument.wordprocessingml.document"}),
)
HTML = Processor("html", 1, "HTML document", frozenset({"text/html", "application/xhtml+xml"}))
TEXT = Processor(
    "text",
    1,
    "text file",
    frozenset({"application/json", "application/xml", "application/yaml", "application/x-ndjson"}),
)
"""Plain text in any encoding: these types, and every ``text/*`` type no other processor takes."""

PROCESSORS = (PDF, DOCX, HTML, TEXT)


class ExtractionFailed(DocpipeError):
    """The file cannot be read, or reading it broke a limit (time, memory). ``reason`` is a short
    sentence a user can read, the processing error recorded on the document; never the file's content.
    ``cause``, for logs only, names what the parser raised (its exception's class), when known."""

    def __init__(self, reason: str, cause: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


class UnsupportedType(DocpipeError):
    """No processor reads this content type: the document is left unprocessed (skipped)."""

    def __init__(self, content_type: str) -> None:
        super().__init__(f"no processor reads {content_type!r}")
        self.content_type = content_type


class ExtractorUnavailable(DocpipeError):
    """The extractor itself cannot run right now (it is shutting down, or a worker process cannot
    start): nothing is known about the document, so its processing should be retried later."""


class Extractor(Protocol):
    """Runs the processor for a content type over a local file."""

    async def extract(self, source: Path, content_type: str, text_out: Path) -> Extraction:
        """Read ``source`` as ``content_type`` and write its text, UTF-8, to ``text_out`` (created or
        replaced).

        Raises ``UnsupportedType`` before reading anything when no processor takes the type,
        ``ExtractionFailed`` when the file cannot be read or broke a limit, and ``ExtractorUnavailable``
        when the extractor cannot run at all. Never blocks the event loop.
        """
        ...


class ExtractedText(Protocol):
    """What ``ContentExtractor.extract`` found: the extraction, and its text read back in chunks."""

    @property
    def extraction(self) -> Extraction: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The text, UTF-8, in chunks of bounded size."""
        ...


class ContentExtractor(Protocol):
    """Extracts the text of a document's content as it streams from the blob store."""

    def extract(
        self, content: AsyncIterable[bytes], content_type: str
    ) -> AbstractAsyncContextManager[ExtractedText]:
        """The extracted text, readable until the block ends, then gone. Raises what
        ``Extractor.extract`` raises; failing to keep the content aside is ``ExtractorUnavailable``."""
        ...


def processor_for(content_type: str) -> Processor:
    """The processor that reads ``content_type`` (parameters such as ``charset`` are ignored), or
    ``UnsupportedType``."""
    try:
        essence = parse_media_type(content_type).essence
    except InvalidInput:
        raise UnsupportedType(content_type) from None
    for processor in PROCESSORS:
        if essence in processor.content_types:
            return processor
    if essence.startswith("text/"):
        return TEXT
    raise UnsupportedType(content_type)


def reads(content_type: str) -> bool:
    """Whether some processor reads ``content_type``: documents of other types are born ``skipped``."""
    try:
        processor_for(content_type)
    except UnsupportedType:
        return False
    return True


def declared_charset(content_type: str) -> str | None:
    """The ``charset`` parameter of ``content_type``, if it has one."""
    try:
        parameters = dict(parse_media_type(content_type).parameters)
    except InvalidInput:
        return None
    return parameters.get("charset")


def clean_title(raw: str | None) -> str | None:
    """A title fit to show: whitespace runs made one space, control characters dropped, at most
    ``MAX_TITLE_LENGTH`` characters; ``None`` when nothing is left."""
    if raw is None:
        return None
    visible = "".join(
        " " if char.isspace() else char
        for char in raw[: MAX_TITLE_LENGTH * 4]
        if char.isspace() or not (unicodedata.category(char) in _INVISIBLE or char in _BIDI_CONTROLS)
    )
    title = " ".join(visible.split())[:MAX_TITLE_LENGTH].rstrip()
    return title or None


# Control characters, lone surrogates (not encodable) and unassigned code points.
_INVISIBLE = frozenset({"Cc", "Cs", "Cn"})
# Bidirectional embeddings, overrides and isolates, which can make a title display misleadingly.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
