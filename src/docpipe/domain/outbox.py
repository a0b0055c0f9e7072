"""What every outbox adapter shares (see ``ports.Outbox``): how long a relay's lease runs and when it
is renewed, and the signal of this process's commits that wakes a relay before its next poll."""

from __future__ import annotations

import asyncio

LEASE_SECONDS = 30.0
"""How long the events handed to one relay are handed to no other: a relay that died is taken over
after at most this long; one that stopped cleanly released its lease at once."""


RENEW_SECONDS = LEASE_SECONDS / 6
"""How often a relay delivering a batch renews its lease: a renewal writes once half of the lease has
run, so the lease always has a third of its term left, for a renewal slowed by a busy store."""


def needs_renewal(until: float, now: float, lease_seconds: float) -> bool:
    """Whether a lease that runs until ``until`` is renewed at ``now``: once half of it has run, so a
    relay that asks for events more often than every half lease keeps it without a write per ask."""
    return until - now < lease_seconds / 2


class Commits:
    """Rung by a repository after each commit that wrote an event; a relay waits on ``next()``."""

    def __init__(self) -> None:
        self._next = asyncio.Event()

    def ring(self) -> None:
        self._next.set()
        self._next = asyncio.Event()

    def next(self) -> asyncio.Event:
        """Set by the first commit after this call: a relay takes it before it reads the outbox, so a
        commit between its read and its wait still wakes it."""
        return self._next
