"""Streaming ``multipart/form-data`` uploads: the file part flows to the store as it arrives.

Nothing is spooled to disk: the body is parsed incrementally with ``multipart.PushMultipartParser``,
the part named ``file`` is handed on chunk by chunk, and the small text fields (``tags``,
``metadata``) are collected whether they come before or after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import multipart

from docpipe.domain.errors import MalformedInput
from docpipe.entrypoints.http.body_limits import MAX_FORM_FIELDS_BYTES

FILE_FIELD = "file"
MAX_PARTS = 16


class MultipartForm:
    """One multipart upload. Iterate ``file_chunks()`` to the end, then read the other attributes."""

    def __init__(self, body: AsyncIterable[bytes], boundary: str) -> None:
        self._body = body
        try:
            self._parser = multipart.PushMultipartParser(
                boundary, max_segment_count=MAX_PARTS, header_charset="utf8"
            )
        except multipart.MultipartError as error:
            raise MalformedInput(f"bad multipart boundary: {error}") from None
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.content_type: str | None = None
        self._file_seen = False
        self._field_bytes = 0

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The bytes of the ``file`` part; the rest of the body is parsed before this ends."""
        current: multipart.MultipartSegment | None = None
        field = bytearray()
        try:
            async for data in self._body:
                for event in self._parser.parse(data):
                    if isinstance(event, multipart.MultipartSegment):
                        current = self._begin(event)
                        field.clear()
                    elif event is None:
                        self._end(current, field)
                        current = None
                    elif current is not None and current.name == FILE_FIELD:
                        yield bytes(event)
                    else:
                        field += event
                        self._field_bytes += len(event)
                        if self._field_bytes > MAX_FORM_FIELDS_BYTES:
                            raise MalformedInput(
                                f"the form fields other than the file exceed {MAX_FORM_FIELDS_BYTES} bytes"
                            )
            if not self._parser.closed:
                self._parser.close()
        except multipart.MultipartError as error:
            raise MalformedInput(f"malformed multipart body: {error}") from None
        if not self._file_seen:
            raise MalformedInput(f"the multipart body has no file part named {FILE_FIELD!r}")

    def _begin(self, segment: multipart.MultipartSegment) -> multipart.MultipartSegment:
        if segment.filename is not None and segment.name != FILE_FIELD:
            raise MalformedInput(f"unexpected file part {segment.name!r}; send the file as {FILE_FIELD!r}")
        if segment.name == FILE_FIELD:
            if self._file_seen:
                raise MalformedInput(f"more than one part named {FILE_FIELD!r}")
            self._file_seen = True
            self.filename = segment.filename
            # The header as sent: the segment's own ``content_type`` drops parameters and guesses.
            declared = [value for name, value in segment.headerlist if name == "Content-Type"]
            self.content_type = ", ".join(declared) if declared else None
        return segment

    def _end(self, segment: multipart.MultipartSegment | None, field: bytearray) -> None:
        if segment is None or segment.name == FILE_FIELD:
            return
        try:
            self.fields[segment.name] = field.decode()
        except UnicodeDecodeError:
            raise MalformedInput(f"form field {segment.name!r} is not UTF-8") from None
