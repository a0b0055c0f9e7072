"""Why a request failed, noted by the exception handlers for the request's upload outcome metric."""

from __future__ import annotations

from typing import cast

from litestar.types import Scope

_STATE_KEY = "docpipe.refusal"


def note_refusal(scope: Scope, reason: str) -> None:
    """Name why the request failed: a label value from a fixed set (an error class's name)."""
    scope.setdefault("state", {})[_STATE_KEY] = reason


def refusal_of(scope: Scope) -> str | None:
    """The reason ``note_refusal`` noted, if any."""
    return cast("str | None", scope.get("state", {}).get(_STATE_KEY))
