"""What every DocumentRepository adapter must do to keep owners apart: two owners with documents of the
same filename, tag, prefix and content type, and the same Idempotency-Key, never see each other's.

Another owner's document is answered exactly as a missing one (``DocumentNotFound``), and a write
through the wrong owner changes nothing. Each test runs for a pair that includes ``DEFAULT_OWNER``
(whose records some adapters keep as stores from before owners did) and for a pair that does not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest

from docpipe.adapters.memory import MemoryBlobStore
from docpipe.domain.errors import DocumentNotFound, IdempotencyKeyInUse
from docpipe.domain.idempotency import CompletedUpload, completed, new_claim
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import Document, ListQuery, NewDocument, utc_now
from docpipe.domain.ports import DocumentRepository
from docpipe.domain.service import DocumentService
from tests.contract.test_repository_contract import follow, make_document, renamed

QUERIES = [
    ListQuery(limit=2),
    ListQuery(limit=2, prefix="invoice-"),
    ListQuery(limit=2, prefix="invoice-2024-03-07.pdf"),
    ListQuery(limit=2, tag="finance"),
    ListQuery(limit=2, content_type="application/pdf"),
    ListQuery(limit=2, filename="invoice-2024-03-07.pdf"),
    ListQuery(limit=2, prefix="inv", tag="finance", content_type="application/pdf"),
]


@pytest.fixture(
    params=[(DEFAULT_OWNER, "tenant-b"), ("tenant-a", "tenant-b")], ids=["default+other", "two others"]
)
def owners(request: pytest.FixtureRequest) -> tuple[str, str]:
    pair: tuple[str, str] = request.param
    return pair


def shared_document(owner: str) -> Document:
    """A document alike for every owner: the same filename, tag and content type."""
    return make_document(
        "invoice-2024-03-07.pdf", owner=owner, tags=("finance",), content_type="application/pdf"
    )


async def interleaved(repository: DocumentRepository, owners: tuple[str, str], count: int) -> list[Document]:
    """``count`` documents of each owner, alike but for their owner, added alternately."""
    documents = [shared_document(owners[n % 2]) for n in range(2 * count)]
    for document in documents:
        await repository.add(document)
    return documents


async def test_another_owners_document_is_not_found_and_not_changed(
    repository: DocumentRepository, owners: tuple[str, str]
) -> None:
    mine, theirs = owners
    document = shared_document(mine)
    await repository.add(document)
    with pytest.raises(DocumentNotFound):
        await repository.get(theirs, document.id)
    with pytest.raises(DocumentNotFound):
        await repository.update(theirs, document.id, renamed("stolen.pdf"))
    with pytest.raises(DocumentNotFound):
        await repository.delete(theirs, document.id)
    assert await repository.get(mine, document.id) == document
    await repository.delete(mine, document.id)
    with pytest.raises(DocumentNotFound):
        await repository.get(mine, document.id)


async def test_every_listing_holds_only_its_owners_documents(
    repository: DocumentRepository, owners: tuple[str, str]
) -> None:
    documents = await interleaved(repository, owners, 3)
    for owner in owners:
        expected = [document.id for document in reversed(documents) if document.owner == owner]
        for query in QUERIES:
            assert await follow(repository, query, owner) == expected, (owner, query)


async def test_updates_and_deletes_move_only_their_owners_entries(
    repository: DocumentRepository, owners: tuple[str, str]
) -> None:
    mine, theirs = owners
    my_document, their_document = await interleaved(repository, owners, 1)

    def change(current: Document) -> Document:
        return msgspec.structs.replace(
            current, filename="receipt.pdf", tags=("legal",), content_type="text/plain", version=2
        )

    await repository.update(mine, my_document.id, change)
    for query in QUERIES[1:]:
        assert await follow(repository, query, theirs) == [their_document.id], query
        assert await follow(repository, query, mine) == [], query
    assert await follow(repository, ListQuery(tag="legal"), mine) == [my_document.id]
    assert await follow(repository, ListQuery(tag="legal"), theirs) == []
    await repository.delete(theirs, their_document.id)
    assert await follow(repository, ListQuery(prefix="receipt"), mine) == [my_document.id]
    assert await follow(repository, ListQuery(), theirs) == []


async def test_owners_lists_every_owner_with_documents_once(
    repository: DocumentRepository, owners: tuple[str, str]
) -> None:
    assert [owner async for owner in repository.owners()] == []
    await interleaved(repository, owners, 3)
    listed = [owner async for owner in repository.owners()]
    assert sorted(listed) == sorted(owners)


async def test_an_idempotency_key_is_its_owners_alone(
    repository: DocumentRepository, owners: tuple[str, str]
) -> None:
    mine, theirs = owners
    now = utc_now()
    my_claim = new_claim(mine, "shared-key", now)
    assert await repository.claim(my_claim, now) is None
    their_claim = new_claim(theirs, "shared-key", now)
    assert await repository.claim(their_claim, now) is None  # not in use: it is another owner's key
    document = shared_document(mine)
    await repository.add(document, completed(my_claim, now))
    with pytest.raises(IdempotencyKeyInUse):  # their own claim still holds their key
        await repository.claim(new_claim(theirs, "shared-key", now), now)
    await repository.release(their_claim)
    assert await repository.claim(new_claim(theirs, "shared-key", now), now) is None
    later = now + timedelta(seconds=1)
    expected = CompletedUpload(document.id, document.sha256)
    assert await repository.claim(new_claim(mine, "shared-key", later), later) == expected


async def test_a_claim_cannot_complete_another_owners_key(
    repository: DocumentRepository, owners: tuple[str, str]
) -> None:
    """A completion names its owner's record: one naming the other owner, with the key and token
    of a held claim, finds no claim of that owner and writes nothing."""
    mine, theirs = owners
    now = utc_now()
    my_claim = new_claim(mine, "shared-key", now)
    assert await repository.claim(my_claim, now) is None
    forged = msgspec.structs.replace(completed(my_claim, now), owner=theirs)
    document = shared_document(theirs)
    with pytest.raises(IdempotencyKeyInUse):
        await repository.add(document, forged)
    with pytest.raises(DocumentNotFound):
        await repository.get(theirs, document.id)


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
def service(repository: DocumentRepository) -> DocumentService:
    return DocumentService(MemoryBlobStore(), repository, max_upload_bytes=1024)


async def test_names_and_filename_deletes_reach_only_the_owners_documents(
    service: DocumentService, owners: tuple[str, str]
) -> None:
    mine, theirs = owners
    name = NewDocument(filename="report.pdf")
    first = await service.upload(mine, chunks(b"mine, older"), name)
    newest = await service.upload(theirs, chunks(b"theirs, newest"), name)
    assert await service.newest_named(mine, "report.pdf") == first
    assert await service.newest_named(theirs, "report.pdf") == newest
    with pytest.raises(DocumentNotFound):
        await service.delete_by_id_or_filename(theirs, first.id)
    assert await service.delete_by_id_or_filename(theirs, "report.pdf") == 1
    with pytest.raises(DocumentNotFound):
        await service.newest_named(theirs, "report.pdf")
    with pytest.raises(DocumentNotFound):
        await service.delete_by_id_or_filename(theirs, "report.pdf")
    assert await service.newest_named(mine, "report.pdf") == first
    content = b"".join([chunk async for chunk in await service.open_content(first)])
    assert content == b"mine, older"
