"""How the HTTP layer reads a request's ``Content-Type`` to decide what its body is: one reading for
every route.

The media type comes back lower-case, without parameters, as every route compares it; its parameters
(a multipart ``boundary``) beside it. This reading only chooses a route's way; a type that is to be
stored is then validated strictly by ``docpipe.domain.media_types``.
"""

from __future__ import annotations

import multipart

from docpipe.entrypoints.http.dependencies import AnyRequest


def declared_type(request: AnyRequest) -> tuple[str, dict[str, str]]:
    """The request's media type (``""`` when none is declared) and its parameters by lower-case name."""
    media_type, parameters = multipart.parse_options_header(request.headers.get("content-type", ""))
    return media_type, parameters
