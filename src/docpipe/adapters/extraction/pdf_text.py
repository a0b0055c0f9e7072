"""The text of a PDF page by page (pages separated by form feeds), its page count and its title, with
pypdf. pypdf's own limits (on inflated streams, on loops in the page tree) stand; the child process's
limits catch what they do not."""

from __future__ import annotations

from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PdfReadError, PyPdfError

from docpipe.adapters.extraction.output import Output
from docpipe.domain.processing import ExtractionFailed

PAGE_BREAK = "\f"


def read(source: Path, charset: str | None, output: Output) -> None:
    # An open file rather than a path: pypdf reads a path into memory whole, a file only as it needs it.
    with source.open("rb") as file:
        try:
            reader = PdfReader(file)
            if reader.is_encrypted and not reader.decrypt(""):
                raise ExtractionFailed("the PDF is protected by a password")
            pages = reader.pages
            output.pages = len(pages)
            output.title = _title(reader)
            for number, page in enumerate(pages):
                if output.full:
                    return
                if number:
                    output.write(PAGE_BREAK)
                output.write(page.extract_text())
        except (FileNotDecryptedError, DependencyError) as error:
            raise ExtractionFailed("the PDF is encrypted in a way docpipe cannot read") from error
        except LimitReachedError as error:
            raise ExtractionFailed(
                "the PDF is built to exhaust its reader (a stream that inflates too far, or a loop)"
            ) from error
        except (PdfReadError, PyPdfError) as error:
            raise ExtractionFailed("the PDF is truncated or damaged") from error


def _title(reader: PdfReader) -> str | None:
    """The title in the document information, else in the XMP metadata; ``None`` when neither holds
    one that can be read (a damaged title costs the title, not the text)."""
    try:
        information = reader.metadata
        if information is not None and information.title:
            return str(information.title)
        xmp = reader.xmp_metadata
        titles = xmp.dc_title if xmp is not None else None
    except (PyPdfError, KeyError, ValueError, TypeError, AttributeError):
        return None
    if not titles:
        return None
    return str(titles.get("x-default") or next(iter(titles.values())))
