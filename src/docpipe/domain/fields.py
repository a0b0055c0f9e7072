"""Validation of the fields a client sets on a document: file name, tags and user metadata.

File names are data: they are reduced to one safe path segment and never reach a file system path
or an object key.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

from docpipe.domain.errors import InvalidInput

MAX_FILENAME_BYTES = 255
MAX_CONTENT_TYPE_LENGTH = 255


def clean_filename(raw: str) -> str:
    """The last path segment of ``raw``, NFC-normalised, without control characters.

    Both ``/`` and ``\\`` separate segments, so ``../../etc/passwd`` and ``C:\\x\\y.txt`` keep only
    their last part. Raises ``InvalidInput`` when nothing usable remains or the name is longer than
    255 bytes of UTF-8 (the limit of common file systems).
    """
    text = unicodedata.normalize("NFC", raw)
    text = "".join(char for char in text if unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp"))
    segment = text.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if segment in ("", ".", ".."):
        raise InvalidInput(f"filename {raw!r} does not name a file")
    if len(segment.encode()) > MAX_FILENAME_BYTES:
        raise InvalidInput(f"filename is longer than {MAX_FILENAME_BYTES} bytes of UTF-8")
    return segment


MAX_TAGS = 32
MAX_TAG_LENGTH = 64
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY_LENGTH = 128
MAX_METADATA_VALUE_LENGTH = 1024


def clean_tags(raw: Sequence[str]) -> tuple[str, ...]:
    """Tags trimmed, without duplicates, in the client's order.

    A tag is 1 to 64 characters without commas (the form field separates tags with commas) or
    control characters; at most 32 tags, duplicates included: the count is checked before any
    tag is looked at, so an oversized list costs nothing.
    """
    if len(raw) > MAX_TAGS:
        raise InvalidInput(f"a document has at most {MAX_TAGS} tags; the request lists {len(raw)}")
    tags: dict[str, None] = {}
    for value in raw:
        tag = value.strip()
        if not tag or len(tag) > MAX_TAG_LENGTH or "," in tag or not tag.isprintable():
            raise InvalidInput(
                f"tag {value!r} must be 1 to {MAX_TAG_LENGTH} printable characters without commas"
            )
        tags[tag] = None
    return tuple(tags)


def clean_metadata(raw: Mapping[str, str]) -> dict[str, str]:
    """User metadata: at most 32 entries, keys of 1 to 128 and values of at most 1024 characters."""
    if len(raw) > MAX_METADATA_ENTRIES:
        raise InvalidInput(f"metadata holds at most {MAX_METADATA_ENTRIES} entries")
    for key, value in raw.items():
        if not key or len(key) > MAX_METADATA_KEY_LENGTH or not key.isprintable():
            raise InvalidInput(
                f"metadata key {key!r} must be 1 to {MAX_METADATA_KEY_LENGTH} printable characters"
            )
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise InvalidInput(
                f"metadata value of {key!r} is longer than {MAX_METADATA_VALUE_LENGTH} characters"
            )
    return dict(raw)
