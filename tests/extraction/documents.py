"""Documents for the extraction tests, made in code: well-formed ones with known text, and hostile ones."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import docx
from docx.document import Document as WordDocument
from docx.enum.text import WD_BREAK
from reportlab.pdfgen import canvas

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_BLOCK = 1 << 20


# PDF


def reportlab_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A PDF with one line of text per page, and ``title`` in its document information."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    if title is not None:
        pdf.setTitle(title)
    for text in pages:
        pdf.drawString(72, 720, text)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def handmade_pdf(objects: list[bytes], trailer: bytes = b"") -> bytes:
    """A PDF of ``objects`` (numbered from 1, the first the catalog), with a correct cross-reference."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    size = len(objects) + 1
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (size, trailer, xref)
    return bytes(out)


def pdf_stream(data: bytes, entries: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), entries, data)


_FONT = b"<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>"


def one_page_pdf(contents: bytes, *, filters: bytes = b"", extra_objects: tuple[bytes, ...] = ()) -> bytes:
    return handmade_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources %s >>" % _FONT,
            pdf_stream(contents, filters),
            *extra_objects,
        ]
    )


def xmp_titled_pdf(title: str, text: str) -> bytes:
    """A PDF whose title is only in its XMP metadata, not in its document information."""
    xmp = (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{title}</rdf:li></rdf:Alt></dc:title>'
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()
    return handmade_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R /Metadata 5 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources %s >>" % _FONT,
            pdf_stream(b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text.encode()),
            pdf_stream(xmp, b"/Type /Metadata /Subtype /XML "),
        ]
    )


def truncated_pdf() -> bytes:
    whole = reportlab_pdf(["first page", "second page"], title="Cut short")
    return whole[: len(whole) // 2]


def decompression_bomb_pdf(inflated: int = 2 << 30) -> bytes:
    """A one-page PDF whose content stream, about 2 MiB, inflates to ``inflated`` bytes of zeros."""
    return one_page_pdf(_zeros_zlib(inflated), filters=b"/Filter /FlateDecode ")


def looping_page_tree_pdf() -> bytes:
    """A PDF whose page tree node's only kid is a node whose only kid is the first."""
    return handmade_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",
        ]
    )


def _zeros_zlib(size: int) -> bytes:
    """zlib data inflating to ``size`` zeros, made without compressing them all: after a full flush a
    deflate block depends on nothing before it, so one block of a MiB of zeros repeats."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(_BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    raw = block * (size // _BLOCK) + compressor.flush()
    adler32 = ((size // _BLOCK * _BLOCK) % 65521) << 16 | 1  # Adler-32 of zeros: a stays 1, b counts them
    return b"\x78\xda" + raw + adler32.to_bytes(4, "big")


# DOCX


def word_document() -> bytes:
    """Paragraphs, a table with a merged cell and a nested table, a header and a footer."""
    document = docx.Document()
    document.core_properties.title = "Annual  report\n"
    section = document.sections[0]
    section.header.paragraphs[0].text = "Header line"
    section.footer.paragraphs[0].text = "Footer line"
    document.add_paragraph("Opening paragraph.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Cell A1"
    table.cell(0, 1).text = "Cell B1"
    merged = table.cell(1, 0).merge(table.cell(1, 1))
    merged.text = "Merged row"
    nested = table.cell(0, 1).add_table(rows=1, cols=2)
    nested.cell(0, 0).text = "Nested X"
    nested.cell(0, 1).text = "Nested Y"
    closing = document.add_paragraph("Closing ")
    closing.add_run("paragraph").add_break(WD_BREAK.LINE)
    closing.add_run("after a break.")
    return _saved(document)


WORD_DOCUMENT_TEXT = (
    "Header line\n"
    "Opening paragraph.\n"
    "Cell A1\n"
    "Cell B1\n"
    "Nested X\n"
    "Nested Y\n"
    "\n"  # python-docx ends a cell holding a table with an empty paragraph, as Word requires
    "Merged row\n"
    "Closing paragraph\nafter a break.\n"
    "Footer line\n"
)


def docx_with_body(body_xml: str) -> bytes:
    """A DOCX whose ``word/document.xml`` is ``body_xml`` (a whole XML document)."""
    return _replace_part(_saved(docx.Document()), "word/document.xml", body_xml.encode())


def billion_laughs_docx() -> bytes:
    entities = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{level} "{f"&a{level - 1};" * 10}">' for level in range(1, 10)
    )
    return docx_with_body(
        f'<?xml version="1.0"?><!DOCTYPE w:document [{entities}]>'
        f"<w:document {_W}><w:body><w:p><w:r><w:t>laughs &a9;</w:t></w:r></w:p></w:body></w:document>"
    )


def external_entity_docx(path: str) -> bytes:
    return docx_with_body(
        f'<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY secret SYSTEM "file://{path}">]>'
        f"<w:document {_W}><w:body><w:p><w:r><w:t>before &secret; after</w:t></w:r></w:p>"
        "</w:body></w:document>"
    )


def zip_bomb_docx(inflated: int = 1 << 30) -> bytes:
    """A real DOCX but for its ``word/document.xml``: valid XML, ``inflated`` bytes of it, mostly spaces,
    deflated to about a thousandth."""
    head = f'<?xml version="1.0"?><w:document {_W}><w:body><w:p><w:r><w:t>bomb</w:t></w:r></w:p>'.encode()
    tail = b"</w:body></w:document>"
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    spaces = b" " * _BLOCK
    blocks = inflated // _BLOCK
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(spaces) + compressor.flush(zlib.Z_FULL_FLUSH)
    last = compressor.compress(tail) + compressor.flush()
    crc = zlib.crc32(head)
    for _ in range(blocks):
        crc = zlib.crc32(spaces, crc)
    crc = zlib.crc32(tail, crc)
    members = []
    with zipfile.ZipFile(io.BytesIO(_saved(docx.Document()))) as package:
        for name in package.namelist():
            if name == "word/document.xml":
                size = len(head) + blocks * _BLOCK + len(tail)
                members.append((name, first + block * blocks + last, crc, size))
            else:
                data = package.read(name)
                deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
                deflated = deflater.compress(data) + deflater.flush()
                members.append((name, deflated, zlib.crc32(data), len(data)))
    return _zip_of_deflated(members)


def _zip_of_deflated(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of members already deflated: (name, deflated bytes, CRC-32 and size of the inflated ones)."""
    out = bytearray()
    directory = bytearray()
    for name, data, crc, size in members:
        encoded = name.encode()
        fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0x21, crc, len(data), size)
        directory += b"PK\x01\x02" + struct.pack("<H", 20) + fields
        directory += struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, 0, len(out)) + encoded
        out += b"PK\x03\x04" + fields + struct.pack("<HH", len(encoded), 0) + encoded + data
    end = struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(directory), len(out), 0)
    return bytes(out + directory + b"PK\x05\x06" + end)


def _saved(document: WordDocument) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _replace_part(package: bytes, name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(package)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy,
    ):
        for member in source.namelist():
            copy.writestr(member, content if member == name else source.read(member))
    return out.getvalue()


# HTML


def deeply_nested_html(depth: int = 100_000) -> bytes:
    return (
        b"<!doctype html><html><head><title>Deep</title></head><body>"
        + b"<div>" * depth
        + b"at the bottom"
        + b"</div>" * depth
        + b"</body></html>"
    )
