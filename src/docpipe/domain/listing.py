"""Filtering and paging rules every repository applies, stated once for the adapters that filter in Python."""

from __future__ import annotations

from docpipe.domain.model import Document, ListQuery


def matches(document: Document, query: ListQuery) -> bool:
    """Whether ``document`` belongs in the listing ``query`` describes (ignoring paging)."""
    if query.after_id is not None and document.id >= query.after_id:
        return False
    if query.prefix is not None and not document.filename.startswith(query.prefix):
        return False
    if query.tag is not None and query.tag not in document.tags:
        return False
    if query.content_type is not None and document.content_type != query.content_type:
        return False
    return query.filename is None or document.filename == query.filename
