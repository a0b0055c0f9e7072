"""The largest legitimate request bodies that carry tags and metadata, derived from the field limits.

A body above these sizes is refused before it is decoded, so no request makes the server decode more
than the fields can hold (only to refuse it item by item afterwards). Every field is counted at its
limit, written the longest way a client may legitimately write it.
"""

from __future__ import annotations

from docpipe.domain.fields import (
    MAX_FILENAME_BYTES,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_VALUE_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)

# JSON may escape every character, and one outside the BMP then takes 12 bytes (``\ud83d\ude00``):
# Python's ``json.dumps`` writes it so by default.
_JSON_BYTES_PER_CHARACTER = 12
# A form field is plain UTF-8.
_UTF8_BYTES_PER_CHARACTER = 4
# What a string brings besides its characters: quotes, a separator, a colon after a key, and the
# newline and indentation of a pretty-printed line.
_FRAMING_BYTES_PER_STRING = 32

_METADATA_JSON_BYTES = (
    MAX_METADATA_ENTRIES * (MAX_METADATA_KEY_LENGTH + MAX_METADATA_VALUE_LENGTH) * _JSON_BYTES_PER_CHARACTER
    + (2 * MAX_METADATA_ENTRIES + 1) * _FRAMING_BYTES_PER_STRING
)

MAX_PATCH_BODY_BYTES = (
    _METADATA_JSON_BYTES
    # A file name of 255 bytes of UTF-8 has at most 255 characters.
    + (MAX_FILENAME_BYTES + MAX_TAGS * MAX_TAG_LENGTH) * _JSON_BYTES_PER_CHARACTER
    # The file name, the tags, and the three keys with the object's braces.
    + (1 + MAX_TAGS + 4) * _FRAMING_BYTES_PER_STRING
)
"""``PATCH /documents/{id}``: a JSON object with ``filename``, ``tags`` and ``metadata`` (about 462 KiB)."""

MAX_FORM_FIELDS_BYTES = _METADATA_JSON_BYTES + MAX_TAGS * (
    MAX_TAG_LENGTH * _UTF8_BYTES_PER_CHARACTER + _FRAMING_BYTES_PER_STRING
)
"""All fields of a multipart upload but the file, together: comma-separated ``tags`` and the
``metadata`` JSON object (about 443 KiB)."""
