"""Who a bearer credential stands for: the admin key, a stored API key, or a token from elsewhere.

A key's lookup is remembered for at most ``CACHE_SECONDS``, so a revocation reaches every replica that
shares the repository within that time while a busy client costs the repository one read a second, not
one a request; at most ``CACHE_ENTRIES`` lookups are remembered, the least recently used going first.
A key's last use is recorded at most once every ``TOUCH_EVERY``, in a task of its own: a slow or
failing write never delays or fails the request that used the key.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

from docpipe.domain.errors import Unauthenticated
from docpipe.domain.identity import ALL_SCOPES, DEFAULT_OWNER, Principal
from docpipe.domain.keys import ApiKey, hash_secret, well_formed
from docpipe.domain.model import utc_now
from docpipe.domain.ports import KeyRepository, TokenVerifier

logger = logging.getLogger(__name__)

CACHE_SECONDS = 1.0
CACHE_ENTRIES = 4096
TOUCH_EVERY = timedelta(minutes=1)

ADMIN = Principal(DEFAULT_OWNER, ALL_SCOPES)
"""The principal of ``DOCPIPE_ADMIN_KEY``."""


class _NotRemembered(enum.Enum):
    TOKEN = enum.auto()


_NOT_REMEMBERED = _NotRemembered.TOKEN
"""No answer of the repository's for a hash is fresh enough to use."""


class Authenticator:
    """Turns the credential of a request into the principal it acts as, or raises ``Unauthenticated``.

    ``is_admin_key`` (``DOCPIPE_ADMIN_KEY``'s constant-time comparison) is asked first. A credential
    shaped like a docpipe key (``well_formed``) is looked up by its hash; any other goes to ``verifier``
    when there is one (OIDC), else is refused.
    """

    def __init__(
        self,
        keys: KeyRepository,
        *,
        is_admin_key: Callable[[str], bool] | None = None,
        verifier: TokenVerifier | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._is_admin_key = is_admin_key
        self._verifier = verifier
        self._clock = clock
        self._monotonic = monotonic
        self._found: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        """Secret hash -> (monotonic time until which the answer holds, the repository's answer)."""
        self._touched: dict[str, datetime] = {}
        self._touches: set[asyncio.Task[None]] = set()

    async def authenticate(self, credential: str | None) -> Principal:
        if not credential:
            raise Unauthenticated("this needs an 'Authorization: Bearer <key>' header")
        if self._is_admin_key is not None and self._is_admin_key(credential):
            return ADMIN
        secret_hash = hash_secret(credential)
        found = self._remembered(secret_hash)
        if found is _NOT_REMEMBERED:
            # Only a key seen in the last second skips this check of its shape and checksum.
            if not well_formed(credential):
                if self._verifier is not None:
                    return await self._verifier.verify(credential)
                raise Unauthenticated("the bearer credential is not an API key")
            found = await self._look_up(secret_hash)
        return self._key_principal(found)

    async def close(self) -> None:
        """Wait for the recordings of last use still in flight: the repository closes next."""
        await asyncio.gather(*self._touches)

    def _key_principal(self, key: ApiKey | None) -> Principal:
        if key is None:
            raise Unauthenticated("the API key is unknown or revoked")
        now = self._clock()
        if key.expired(now):
            raise Unauthenticated("the API key has expired")
        if self._touch_due(key, now):
            task = asyncio.create_task(self._record_use(key.id, now))
            self._touches.add(task)
            task.add_done_callback(self._touches.discard)
        return key.principal()

    def _remembered(self, secret_hash: str) -> ApiKey | _NotRemembered | None:
        """What the repository answered for ``secret_hash`` less than ``CACHE_SECONDS`` ago."""
        cached = self._found.get(secret_hash)
        if cached is None or cached[0] <= self._monotonic():
            return _NOT_REMEMBERED
        self._found.move_to_end(secret_hash)
        return cached[1]

    async def _look_up(self, secret_hash: str) -> ApiKey | None:
        # The time is taken before the read, so that its answer is never used 1 s after it was read.
        until = self._monotonic() + CACHE_SECONDS
        key = await self._keys.find(secret_hash)
        self._found[secret_hash] = (until, key)
        self._found.move_to_end(secret_hash)
        if len(self._found) > CACHE_ENTRIES:
            self._found.popitem(last=False)
        return key

    def _touch_due(self, key: ApiKey, now: datetime) -> bool:
        """Whether to record this use: neither the repository (another replica) nor this process
        recorded one within ``TOUCH_EVERY``."""
        for last in (key.last_used_at, self._touched.get(key.id)):
            if last is not None and now - last < TOUCH_EVERY:
                return False
        if len(self._touched) >= CACHE_ENTRIES:
            self._touched.clear()
        self._touched[key.id] = now
        return True

    async def _record_use(self, key_id: str, when: datetime) -> None:
        try:
            await self._keys.touch(key_id, when)
        except Exception as error:  # a lost last-used time must not surface anywhere
            logger.warning("could not record the use of API key %s: %s", key_id, error)
