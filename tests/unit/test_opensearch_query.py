"""The search request docpipe sends OpenSearch, for any query a user types: the owner is its first filter,
and what the user typed reaches OpenSearch only as folded words in queries that read no syntax
(``match_bool_prefix``, ``match_phrase``) and as exact ``term`` filters, never in a ``query_string``.

This checks the request docpipe builds, not what OpenSearch makes of it: the fake of OpenSearch uses
docpipe's own word rules, so comparing its answers against a naive matcher would test the fake."""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from docpipe.adapters.opensearch_search import _search_body
from docpipe.domain.errors import InvalidInput
from docpipe.domain.model import new_document_id
from docpipe.domain.search import MAX_SEARCH_LIMIT, SearchPosition, SearchQuery

COMPOUNDS = {"bool", "dis_max", "constant_score"}
"""The queries docpipe nests others in; any other kind is a leaf, and must be one of ``LEAVES``."""
LEAVES = {"term", "match_bool_prefix", "match_phrase"}
"""Queries that take their value as it is (a term) or analyse it into words: none reads query syntax."""


def leaves(query: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every leaf of ``query`` as (kind, field, value); fails on a kind outside the two sets above."""
    [(kind, content)] = query.items()
    if kind == "bool":
        return [leaf for clauses in content.values() for clause in clauses for leaf in leaves(clause)]
    if kind == "dis_max":
        return [leaf for clause in content["queries"] for leaf in leaves(clause)]
    if kind == "constant_score":
        return leaves(content["filter"])
    assert kind in LEAVES, f"{kind} is not a query docpipe sends"
    [(field, value)] = content.items()
    assert isinstance(value, str)
    return [(kind, field, value)]


queries = st.builds(
    lambda text, limit, tag, content_type: (text, limit, tag, content_type),
    st.text(max_size=80),
    st.integers(1, MAX_SEARCH_LIMIT),
    st.none() | st.text(max_size=20),
    st.none() | st.text(max_size=20),
)


@given(owner=st.text(min_size=1, max_size=20), typed=queries, page=st.none() | st.integers(1, 1000))
def test_the_request_is_owner_scoped_and_holds_no_user_syntax(
    owner: str, typed: tuple[str, int, str | None, str | None], page: int | None
) -> None:
    text, limit, tag, content_type = typed
    try:
        query = SearchQuery.parse(text, limit=limit, tag=tag, content_type=content_type)
    except InvalidInput:
        assume(False)
    after = None
    if page is not None:
        after = SearchPosition(min(page, query.most_points), new_document_id())
        query = SearchQuery.parse(
            text, limit=limit, tag=tag, content_type=content_type, cursor=query.cursor_after(after)
        )

    body = _search_body(owner, query)

    scoped = body["query"]["bool"]
    assert scoped["filter"][0] == {"term": {"owner": owner}}
    assert [leaves(filter_) for filter_ in scoped["filter"]] == [
        [("term", "owner", owner)],
        *([[("term", "exact_tags", tag)]] if tag is not None else []),
        *([[("term", "content_type", content_type)]] if content_type is not None else []),
    ]
    assert len(scoped["must"]) == len(query.words)
    for word, clause in zip(query.words, scoped["must"], strict=True):
        assert {(kind, value) for kind, _, value in leaves(clause)} <= {
            ("match_bool_prefix", word),
            ("match_phrase", word),
        }
    highlighted = body["highlight"]["fields"]["passages"]["highlight_query"]
    assert leaves(highlighted) == [("match_bool_prefix", "passages", word) for word in query.words]
    assert body["size"] == limit + 1
    assert body.get("search_after") == (None if after is None else [after.points, after.document_id])
