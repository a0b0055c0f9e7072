"""The text of a DOCX in document order: headers, then the body (paragraphs, tables cell by cell, nested
tables, content controls), then footers; the title from its core properties. Read with python-docx.

python-docx holds every part of the package in memory, so the sizes the zip declares are checked first:
a zip bomb is refused before anything inflates. (A zip member cannot inflate past its declared size:
Python's zipfile stops there.) lxml, as python-docx configures it, resolves no entities, and libxml2
refuses entity expansion that amplifies ("billion laughs").
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import docx
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.opc.exceptions import OpcError
from docx.opc.part import XmlPart
from docx.oxml.ns import qn
from docx.oxml.text.run import CT_R
from docx.oxml.xmlchemy import BaseOxmlElement

from docpipe.adapters.extraction.limits import MiB, describe_size
from docpipe.adapters.extraction.output import Output
from docpipe.domain.processing import ExtractionFailed

MAX_UNPACKED_BYTES = 256 * MiB
"""The most a DOCX may unpack to, all parts together: python-docx reads every part into memory."""

_PARAGRAPH = qn("w:p")
# Elements that hold paragraphs, tables or both: walked into, in order.
_BLOCK_CONTAINERS = frozenset(
    qn(tag) for tag in ("w:tbl", "w:tr", "w:tc", "w:sdt", "w:sdtContent", "w:customXml")
)
# Elements inside a paragraph that hold runs: tracked insertions, links, fields, content controls.
_RUN_CONTAINERS = frozenset(
    qn(tag)
    for tag in ("w:hyperlink", "w:ins", "w:fldSimple", "w:smartTag", "w:sdt", "w:sdtContent", "w:customXml")
)
_DAMAGED = "the DOCX is damaged, or is not a Word document"


def read(source: Path, charset: str | None, output: Output) -> None:
    _refuse_bombs(source)
    try:
        document = docx.Document(str(source))
        output.title = document.core_properties.title
        parts = document.part.rels.values()
        headers = [rel.target_part for rel in parts if rel.reltype == RELATIONSHIP_TYPE.HEADER]
        footers = [rel.target_part for rel in parts if rel.reltype == RELATIONSHIP_TYPE.FOOTER]
        for header in headers:
            _write_part(header, output)
        _write_blocks(document.element.body, output)
        for footer in footers:
            _write_part(footer, output)
    except (zipfile.BadZipFile, OpcError, SyntaxError, ValueError) as error:  # lxml's are SyntaxErrors
        raise ExtractionFailed(_DAMAGED) from error


def _refuse_bombs(source: Path) -> None:
    try:
        with zipfile.ZipFile(source) as package:
            unpacked = sum(member.file_size for member in package.infolist())
    except (zipfile.BadZipFile, OSError) as error:
        raise ExtractionFailed(_DAMAGED) from error
    if unpacked > MAX_UNPACKED_BYTES:
        raise ExtractionFailed(
            f"the DOCX unpacks to more than {describe_size(MAX_UNPACKED_BYTES)} (a zip bomb?)"
        )


def _write_part(part: object, output: Output) -> None:
    if isinstance(part, XmlPart):
        _write_blocks(part.element, output)


def _write_blocks(container: BaseOxmlElement, output: Output) -> None:
    for child in container.iterchildren():
        if output.full:
            return
        if child.tag == _PARAGRAPH:
            output.write("".join(_runs_text(child)) + "\n")
        elif child.tag in _BLOCK_CONTAINERS:
            _write_blocks(child, output)


def _runs_text(container: BaseOxmlElement) -> Iterator[str]:
    for child in container.iterchildren():
        if isinstance(child, CT_R):
            yield child.text
        elif child.tag in _RUN_CONTAINERS:
            yield from _runs_text(child)
