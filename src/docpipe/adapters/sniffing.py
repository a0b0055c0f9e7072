"""Content-type detection from a document's first bytes, with puremagic's signature database.

puremagic is pure Python (no libmagic to install) and keeps a maintained table of several hundred
signatures; the file name's extension breaks ties between formats that share a signature (zip and
docx, for instance).
"""

from __future__ import annotations

import puremagic

from docpipe.domain.streams import HEAD_SIZE

_TEXT_CONTROLS = {9, 10, 12, 13}


def detect_content_type(head: bytes, filename: str) -> str | None:
    """The media type ``head`` (the first bytes of a document) looks like, or ``None`` when unsure."""
    if not head:
        return None
    try:
        detected = puremagic.from_string(head[:HEAD_SIZE], mime=True, filename=filename)
    except (puremagic.PureError, ValueError):
        detected = ""
    if detected:
        return str(detected)
    return "text/plain; charset=utf-8" if _looks_like_utf8_text(head[:HEAD_SIZE]) else None


def _looks_like_utf8_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        # The sample may end inside a multi-byte character.
        if error.start < len(head) - 3:
            return False
        text = head[: error.start].decode("utf-8")
    return all(ord(char) >= 32 or ord(char) in _TEXT_CONTROLS for char in text)
