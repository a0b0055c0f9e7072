"""Which reader function reads each processor's files, and running one: the part of an extraction that
is the same in the sandbox's child process and in process.

Readers are named by reference (``module:function``) so that a child process can import them itself,
and so that tests can put a reader of their own (one that loops, say) where a real one goes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import cast

from docpipe.adapters.extraction.output import Output
from docpipe.domain.processing import DOCX, HTML, PDF, PROCESSORS, TEXT, Extraction, ExtractionFailed

Reader = Callable[[Path, str | None, Output], None]
"""Reads a file (with the charset its content type declares, if any) into an ``Output``; raises
``ExtractionFailed`` for what it recognises as a bad file, anything else for what it does not."""

DEFAULT_READERS: Mapping[str, str] = MappingProxyType(
    {
        PDF.name: f"{__package__}.pdf_text:read",
        DOCX.name: f"{__package__}.docx_text:read",
        HTML.name: f"{__package__}.html_text:read",
        TEXT.name: f"{__package__}.plain_text:read",
    }
)

_NOUNS = {processor.name: processor.noun for processor in PROCESSORS}


class Readers:
    """Each processor's reader, imported when first asked for: a child process that reads only text
    never spends a second importing the PDF and DOCX libraries."""

    def __init__(self, references: Mapping[str, str]) -> None:
        self._references = dict(references)
        self._loaded: dict[str, Reader] = {}

    def get(self, processor: str) -> Reader | None:
        """The reader of ``processor``; ``None`` when there is none."""
        if processor not in self._loaded:
            reference = self._references.get(processor)
            if reference is None:
                return None
            module, _, name = reference.partition(":")
            self._loaded[processor] = cast(Reader, getattr(importlib.import_module(module), name))
        return self._loaded[processor]


def run_reader(
    reader: Reader, processor: str, source: Path, charset: str | None, text_out: Path, text_bytes: int
) -> Extraction:
    """Run ``reader``, its text to ``text_out``.

    A failure becomes ``ExtractionFailed`` with a reason naming the kind of file and the parser's
    exception as cause, except two that are not the file's doing: ``MemoryError`` (the caller knows the
    limit) and ``OSError`` (the source or ``text_out`` cannot be opened, the disk is full)."""
    noun = _NOUNS.get(processor, "file")
    try:
        with text_out.open("wb") as file:
            output = Output(file, text_bytes)
            reader(source, charset, output)
        return output.result()
    except ExtractionFailed as error:
        if error.cause is None and error.__cause__ is not None:
            error.cause = type(error.__cause__).__name__
        raise
    except (MemoryError, OSError):
        raise
    except RecursionError as error:
        raise ExtractionFailed(f"the {noun} nests too deeply to read", type(error).__name__) from error
    except Exception as error:  # a parser's failures are as many as the ways a file can be broken
        raise ExtractionFailed(f"the {noun} could not be read", type(error).__name__) from error
