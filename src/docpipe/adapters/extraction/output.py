"""Where a reader puts what it finds: text, written as UTF-8 up to a limit, and the page count and title."""

from __future__ import annotations

from typing import BinaryIO

from docpipe.adapters.extraction.limits import describe_size
from docpipe.domain.processing import Extraction, clean_title


class Output:
    """Text written to ``file`` as UTF-8, at most ``limit`` bytes in all.

    Text past the limit is dropped, a note saying so ends the file, and ``full`` turns true so that a
    reader can stop early. Lone surrogates (from broken UTF-16 in a PDF string) become ``?``."""

    def __init__(self, file: BinaryIO, limit: int) -> None:
        self._file = file
        self._note = f"\n\n[docpipe kept the first {describe_size(limit)} of this text]\n".encode()
        self._room = limit - len(self._note)
        self.characters = 0
        self.full = False
        self.pages: int | None = None
        self._title: str | None = None

    @property
    def title(self) -> str | None:
        return self._title

    @title.setter
    def title(self, raw: str | None) -> None:
        self._title = clean_title(raw)

    def write(self, text: str) -> None:
        if self.full or not text:
            return
        data = text.encode("utf-8", "replace")
        if len(data) <= self._room:
            self._file.write(data)
            self._room -= len(data)
            self.characters += len(text)
            return
        # Cut at the last whole character that fits: "ignore" drops only the partial one at the end.
        kept = data[: self._room].decode("utf-8", "ignore")
        self._file.write(kept.encode())
        self._file.write(self._note)
        self.characters += len(kept)
        self.full = True

    def result(self) -> Extraction:
        return Extraction(pages=self.pages, title=self.title, characters=self.characters, truncated=self.full)
