"""What every DocumentRepository adapter must do with Idempotency-Key records.

Time is passed in (``now``), so leases and retention run out without waiting.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from docpipe.domain.errors import DocumentNotFound, DuplicateDocument, IdempotencyKeyInUse
from docpipe.domain.idempotency import (
    LEASE,
    RETENTION,
    CompletedUpload,
    IdempotencyClaim,
    completed,
    new_claim,
    renewed,
)
from docpipe.domain.model import utc_now
from docpipe.domain.ports import DocumentRepository
from tests.contract.test_repository_contract import OWNER, make_document

SECOND = timedelta(seconds=1)


def claim_of(key: str = "key-1") -> IdempotencyClaim:
    return new_claim(OWNER, key, utc_now())


async def test_a_free_key_is_claimed_and_then_in_use(repository: DocumentRepository) -> None:
    first = claim_of()
    assert await repository.claim(first, utc_now()) is None
    with pytest.raises(IdempotencyKeyInUse):
        await repository.claim(claim_of(), utc_now())


async def test_keys_are_independent(repository: DocumentRepository) -> None:
    assert await repository.claim(claim_of("a"), utc_now()) is None
    assert await repository.claim(claim_of("b"), utc_now()) is None


async def test_the_holder_renews_its_claim(repository: DocumentRepository) -> None:
    claim = claim_of()
    await repository.claim(claim, utc_now())
    later = utc_now() + LEASE - SECOND
    assert await repository.claim(renewed(claim, later), later) is None
    # Renewed: past the first lease, but within the second, the key is still held.
    with pytest.raises(IdempotencyKeyInUse):
        await repository.claim(claim_of(), utc_now() + LEASE + SECOND)


async def test_a_lapsed_claim_is_taken_over_and_cannot_complete(repository: DocumentRepository) -> None:
    crashed = claim_of()
    await repository.claim(crashed, utc_now())
    later = utc_now() + LEASE + SECOND
    retry = new_claim(OWNER, crashed.key, later)
    assert await repository.claim(retry, later) is None
    document = make_document()
    with pytest.raises(IdempotencyKeyInUse):
        await repository.add(document, completed(crashed, later))
    with pytest.raises(DocumentNotFound):
        await repository.get(OWNER, document.id)


async def test_add_completes_the_claim_in_the_same_commit(repository: DocumentRepository) -> None:
    claim = claim_of()
    await repository.claim(claim, utc_now())
    document = make_document()
    await repository.add(document, completed(claim, utc_now()))
    assert await repository.get(OWNER, document.id) == document
    expected = CompletedUpload(document.id, document.sha256)
    assert await repository.claim(claim_of(), utc_now()) == expected
    # Completed records stand whatever the lease said, for the whole retention period...
    assert await repository.claim(claim_of(), utc_now() + RETENTION - LEASE) == expected
    # ...and then the key is free again.
    assert await repository.claim(claim_of(), utc_now() + RETENTION + SECOND) is None


async def test_a_completed_key_cannot_complete_again(repository: DocumentRepository) -> None:
    claim = claim_of()
    await repository.claim(claim, utc_now())
    await repository.add(make_document(), completed(claim, utc_now()))
    second = make_document()
    with pytest.raises(IdempotencyKeyInUse):
        await repository.add(second, completed(claim, utc_now()))
    with pytest.raises(DocumentNotFound):
        await repository.get(OWNER, second.id)


async def test_add_with_a_claim_never_made_writes_nothing(repository: DocumentRepository) -> None:
    document = make_document()
    with pytest.raises(IdempotencyKeyInUse):
        await repository.add(document, claim_of())
    with pytest.raises(DocumentNotFound):
        await repository.get(OWNER, document.id)


async def test_a_duplicate_id_leaves_the_claim_open(repository: DocumentRepository) -> None:
    claim = claim_of()
    await repository.claim(claim, utc_now())
    document = make_document()
    await repository.add(document)
    with pytest.raises(DuplicateDocument):
        await repository.add(msgspec.structs.replace(document, filename="other.pdf"), claim)
    with pytest.raises(IdempotencyKeyInUse):
        await repository.claim(claim_of(), utc_now())
    assert await repository.claim(claim, utc_now()) is None


async def test_release_frees_only_its_own_open_claim(repository: DocumentRepository) -> None:
    claim = claim_of()
    await repository.claim(claim, utc_now())
    await repository.release(claim_of())  # another token: nothing happens
    with pytest.raises(IdempotencyKeyInUse):
        await repository.claim(claim_of(), utc_now())
    await repository.release(claim)
    successor = claim_of()
    assert await repository.claim(successor, utc_now()) is None
    document = make_document()
    await repository.add(document, completed(successor, utc_now()))
    await repository.release(successor)  # completed: nothing happens
    assert await repository.claim(claim_of(), utc_now()) == CompletedUpload(document.id, document.sha256)


async def test_a_record_outlives_its_document(repository: DocumentRepository) -> None:
    claim = claim_of()
    await repository.claim(claim, utc_now())
    document = make_document()
    await repository.add(document, completed(claim, utc_now()))
    await repository.delete(OWNER, document.id)
    assert await repository.claim(claim_of(), utc_now()) == CompletedUpload(document.id, document.sha256)


async def test_longest_key_of_printable_ascii(repository: DocumentRepository) -> None:
    key = "".join(chr(32 + n % 95) for n in range(255))
    assert await repository.claim(claim_of(key), utc_now()) is None
    with pytest.raises(IdempotencyKeyInUse):
        await repository.claim(claim_of(key), utc_now())
