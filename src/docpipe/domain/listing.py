"""Filtering and paging rules every repository applies, stated once for the adapters that filter in Python."""

from __future__ import annotations

from collections.abc import Sequence

from docpipe.domain.model import Document, ListQuery

EXAMINED_PER_PAGE = 1000
"""Most entries one page examines where a repository must filter beyond an index (combined filters,
a prefix longer than its index). A page that finds fewer than ``limit`` matches among them stops
there, short, and says where the next page resumes, as S3 and DynamoDB listings do: the work of a
request stays bounded however rare the matches are."""

PREFIX_ENTRY_LENGTH = 8
"""Longest filename prefix a repository indexes with entries of its own; a longer prefix is listed from
the entries of its first ``PREFIX_ENTRY_LENGTH`` characters, the rest filtered. Each document has one
entry per prefix length, so this bounds what an upload or rename writes."""


def examine_budget(limit: int) -> int:
    """How many entries one page may examine: never too few for a full page and the entry after it,
    which tells whether another page follows."""
    return max(limit + 1, EXAMINED_PER_PAGE)


def resume_point(matched_ids: Sequence[str], limit: int, last_examined: str | None) -> str | None:
    """Where the page after this one resumes.

    ``matched_ids`` are the matches a page found, newest first, possibly more than ``limit``;
    ``last_examined`` is the last entry it examined when it stopped on its budget, ``None`` when it
    examined everything below its start. A page that found more than ``limit`` matches resumes after
    its last document; otherwise everything it examined is accounted for.
    """
    return matched_ids[limit - 1] if len(matched_ids) > limit else last_examined


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
