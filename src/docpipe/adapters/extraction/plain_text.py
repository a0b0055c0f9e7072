"""Plain text in any encoding, re-encoded as UTF-8."""

from __future__ import annotations

from pathlib import Path

from docpipe.adapters.extraction.encodings import SAMPLE_BYTES, choose_encoding, decode
from docpipe.adapters.extraction.output import Output


def read(source: Path, charset: str | None, output: Output) -> None:
    with source.open("rb") as file:
        sample = file.read(SAMPLE_BYTES + 1)
        encoding = choose_encoding(sample[:SAMPLE_BYTES], [charset], whole=len(sample) <= SAMPLE_BYTES)
        file.seek(0)
        for text in decode(file, encoding):
            output.write(text)
            if output.full:
                return
