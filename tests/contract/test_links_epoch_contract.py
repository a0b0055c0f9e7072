"""Every DocumentRepository keeps a document's links epoch, which revokes its signed links."""

from __future__ import annotations

import msgspec

from docpipe.domain.model import Document, ListQuery
from docpipe.domain.ports import DocumentRepository
from tests.contract.test_repository_contract import OWNER, make_document


def _revoked(current: Document) -> Document:
    return msgspec.structs.replace(current, links_epoch=current.links_epoch + 1, version=current.version + 1)


async def test_a_new_document_has_links_epoch_zero(repository: DocumentRepository) -> None:
    document = make_document()
    await repository.add(document)
    assert (await repository.get(OWNER, document.id)).links_epoch == 0


async def test_the_links_epoch_is_kept_through_updates(repository: DocumentRepository) -> None:
    document = make_document()
    await repository.add(document)
    for _ in range(2):
        await repository.update(OWNER, document.id, _revoked)
    assert (await repository.get(OWNER, document.id)).links_epoch == 2
    await repository.update(
        OWNER,
        document.id,
        lambda current: msgspec.structs.replace(current, filename="renamed.pdf", version=4),
    )
    stored = await repository.get(OWNER, document.id)
    assert (stored.links_epoch, stored.filename) == (2, "renamed.pdf")
    assert [listed.links_epoch for listed in (await repository.list(OWNER, ListQuery())).documents] == [2]
