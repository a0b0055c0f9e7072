"""What every DocumentRepository adapter must do, whatever the technology behind it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from datetime import timedelta

import msgspec
import pytest

from docpipe.domain import listing
from docpipe.domain.errors import DocumentNotFound, DuplicateDocument, PreconditionFailed
from docpipe.domain.model import Document, ListQuery, new_blob_key, new_document_id, utc_now
from docpipe.domain.ports import DocumentRepository

OWNER = "tenant-a"
"""The owner of the documents these tests store; ``test_owners_are_isolated`` brings in others."""


def make_document(
    filename: str = "report.pdf",
    *,
    owner: str = OWNER,
    tags: tuple[str, ...] = (),
    content_type: str = "application/pdf",
    metadata: dict[str, str] | None = None,
) -> Document:
    now = utc_now()
    return Document(
        id=new_document_id(),
        owner=owner,
        blob_key=new_blob_key(owner),
        filename=filename,
        content_type=content_type,
        size=42,
        sha256="ab" * 32,
        tags=tags,
        metadata=metadata or {},
        created_at=now,
        updated_at=now,
    )


async def add_all(repository: DocumentRepository, documents: list[Document]) -> list[Document]:
    for document in documents:
        await repository.add(document)
    return documents


async def list_ids(repository: DocumentRepository, query: ListQuery) -> list[str]:
    return [document.id for document in (await repository.list(OWNER, query)).documents]


async def follow(repository: DocumentRepository, query: ListQuery, owner: str = OWNER) -> list[str]:
    """Every id ``owner``'s listing yields, following where each page says the next resumes until it
    says none does; checks on the way that each page holds at most ``limit`` documents, newest first."""
    seen: list[str] = []
    for _ in range(1000):
        page = await repository.list(owner, query)
        ids = [document.id for document in page.documents]
        assert len(ids) <= query.limit
        assert ids == sorted(ids, reverse=True)
        assert not seen or not ids or ids[0] < seen[-1]
        seen += ids
        if page.resume_after is None:
            return seen
        assert query.after_id is None or page.resume_after < query.after_id
        query = msgspec.structs.replace(query, after_id=page.resume_after)
    raise AssertionError("the listing did not end")


@pytest.fixture(params=["default budget", "tiny budget"])
def budget(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the budget of entries a page examines as deployed, and as small as it gets
    (``limit + 1``), so that combined filters stop short on almost every page."""
    if request.param == "tiny budget":
        monkeypatch.setattr(listing, "EXAMINED_PER_PAGE", 1)
    return str(request.param)


async def test_add_then_get_returns_an_equal_document(repository: DocumentRepository) -> None:
    document = make_document(
        "Q3 réport ☃.pdf", tags=("finance", "q3"), metadata={"project": "apollo", "ünï": "cödé"}
    )
    await repository.add(document)
    assert await repository.get(OWNER, document.id) == document


async def test_a_document_keeps_its_blob_key_through_an_update(repository: DocumentRepository) -> None:
    document = make_document()
    await repository.add(document)
    await repository.update(
        OWNER, document.id, lambda current: msgspec.structs.replace(current, filename="b.pdf", version=2)
    )
    stored = await repository.get(OWNER, document.id)
    assert (stored.blob_key, stored.filename) == (document.blob_key, "b.pdf")
    assert [listed.blob_key for listed in (await repository.list(OWNER, ListQuery())).documents] == [
        document.blob_key
    ]


async def test_timestamps_keep_microseconds_and_utc(repository: DocumentRepository) -> None:
    document = make_document()
    await repository.add(document)
    stored = await repository.get(OWNER, document.id)
    assert stored.created_at == document.created_at
    assert stored.created_at.utcoffset() == timedelta(0)


async def test_get_of_an_unknown_id_raises_not_found(repository: DocumentRepository) -> None:
    with pytest.raises(DocumentNotFound):
        await repository.get(OWNER, new_document_id())


async def test_adding_the_same_id_twice_is_refused(repository: DocumentRepository) -> None:
    document = make_document()
    await repository.add(document)
    with pytest.raises(DuplicateDocument):
        await repository.add(msgspec.structs.replace(document, filename="other.pdf"))
    assert (await repository.get(OWNER, document.id)).filename == "report.pdf"


async def test_list_is_newest_first(repository: DocumentRepository) -> None:
    documents = await add_all(repository, [make_document(f"{n}.txt") for n in range(5)])
    assert await list_ids(repository, ListQuery()) == [d.id for d in reversed(documents)]


async def test_pages_cover_every_document_once(repository: DocumentRepository, budget: str) -> None:
    documents = await add_all(repository, [make_document(f"{n}.txt") for n in range(7)])
    assert await follow(repository, ListQuery(limit=3)) == [d.id for d in reversed(documents)]


async def test_unfiltered_pages_are_full(repository: DocumentRepository, budget: str) -> None:
    documents = await add_all(repository, [make_document(f"{n}.txt") for n in range(7)])
    page = await repository.list(OWNER, ListQuery(limit=3))
    assert [document.id for document in page.documents] == [d.id for d in reversed(documents)][:3]
    assert page.resume_after == documents[-3].id


async def test_an_exactly_full_last_page_says_no_match_remains(repository: DocumentRepository) -> None:
    await add_all(repository, [make_document() for _ in range(3)])
    page = await repository.list(OWNER, ListQuery(limit=3))
    assert len(page.documents) == 3
    assert page.resume_after is None


async def test_list_filters_by_filename_prefix(repository: DocumentRepository) -> None:
    invoice_1, _, invoice_2 = await add_all(
        repository,
        [make_document("invoice-1.pdf"), make_document("receipt.pdf"), make_document("invoice-2.pdf")],
    )
    assert await list_ids(repository, ListQuery(prefix="invoice-")) == [invoice_2.id, invoice_1.id]


async def test_list_filters_by_tag(repository: DocumentRepository) -> None:
    tagged, _, both = await add_all(
        repository,
        [
            make_document(tags=("finance",)),
            make_document(tags=("legal",)),
            make_document(tags=("legal", "finance")),
        ],
    )
    assert await list_ids(repository, ListQuery(tag="finance")) == [both.id, tagged.id]


async def test_list_filters_by_content_type(repository: DocumentRepository) -> None:
    pdf, _ = await add_all(repository, [make_document(), make_document(content_type="text/plain")])
    assert await list_ids(repository, ListQuery(content_type="application/pdf")) == [pdf.id]


async def test_list_filters_by_exact_filename(repository: DocumentRepository) -> None:
    old, _, new = await add_all(
        repository, [make_document("a.txt"), make_document("a.txt.bak"), make_document("a.txt")]
    )
    assert await list_ids(repository, ListQuery(filename="a.txt")) == [new.id, old.id]


async def test_filters_combine(repository: DocumentRepository) -> None:
    _, wanted, _ = await add_all(
        repository,
        [
            make_document("inv-1.pdf", tags=("x",)),
            make_document("inv-2.pdf", tags=("y",)),
            make_document("other.pdf", tags=("y",)),
        ],
    )
    assert await list_ids(repository, ListQuery(prefix="inv-", tag="y")) == [wanted.id]


async def test_filtered_pages_cover_every_match_once(repository: DocumentRepository, budget: str) -> None:
    documents = await add_all(repository, [make_document(tags=("t",) if n % 2 else ()) for n in range(9)])
    expected = [d.id for d in reversed(documents) if d.tags]
    assert await follow(repository, ListQuery(limit=2, tag="t")) == expected


_FILTER_VALUES: dict[str, str] = {
    "prefix": "invoice-",
    "tag": "finance",
    "content_type": "application/pdf",
}
_COMBINATIONS = [
    dict(combination)
    for size in range(1, len(_FILTER_VALUES) + 1)
    for combination in itertools.combinations(_FILTER_VALUES.items(), size)
]


async def test_following_pages_yields_exactly_the_matches_of_every_filter_and_combination(
    repository: DocumentRepository, budget: str
) -> None:
    names = ["invoice-2024-03-01.pdf", "invoice-7.pdf", "inv.pdf", "receipt.pdf", "invoice-2024-04.txt"]
    tag_sets: list[tuple[str, ...]] = [("finance",), (), ("finance", "q3"), ("legal",)]
    types = ["application/pdf", "text/plain", "application/pdf"]
    documents = await add_all(
        repository,
        [make_document(names[n % 5], tags=tag_sets[n % 4], content_type=types[n % 3]) for n in range(16)],
    )
    queries = [
        *(ListQuery(limit=2, **combination) for combination in _COMBINATIONS),
        ListQuery(limit=2, prefix="invoice-2024-0", tag="finance"),
        ListQuery(limit=2, prefix="invoice-2024-03"),
        ListQuery(limit=1, filename="inv.pdf"),
        ListQuery(limit=2, prefix="nothing", tag="finance"),
    ]
    for query in queries:
        expected = [
            d.id
            for d in reversed(documents)
            if (query.prefix is None or d.filename.startswith(query.prefix))
            and (query.tag is None or query.tag in d.tags)
            and (query.content_type is None or d.content_type == query.content_type)
            and (query.filename is None or d.filename == query.filename)
        ]
        assert await follow(repository, query) == expected, query


async def test_a_page_that_examined_its_budget_is_short_but_not_the_last(
    repository: DocumentRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rare combination stops after the budget with what it found, here nothing, and a resume point."""
    monkeypatch.setattr(listing, "EXAMINED_PER_PAGE", 3)
    wanted, *_ = await add_all(
        repository,
        [make_document("rare.pdf", tags=("t",))] + [make_document(f"{n}.pdf", tags=("t",)) for n in range(4)],
    )
    query = ListQuery(limit=1, tag="t", prefix="rare")
    page = await repository.list(OWNER, query)
    assert page.documents == []
    assert page.resume_after is not None
    assert await follow(repository, query) == [wanted.id]


async def test_documents_deleted_mid_listing_end_neither_the_listing_nor_its_pages(
    repository: DocumentRepository, budget: str
) -> None:
    """Deleting the document a page resumes after, and some the next pages would have held, leaves
    every other match listed once."""
    documents = await add_all(
        repository, [make_document(f"invoice-{n}.pdf", tags=("t",) if n % 3 else ()) for n in range(12)]
    )
    query = ListQuery(limit=2, prefix="invoice-", tag="t")
    first = await repository.list(OWNER, query)
    assert first.resume_after is not None
    listed = [document.id for document in first.documents]
    deleted = {first.resume_after, documents[-4].id, documents[-5].id, documents[1].id}
    for document_id in deleted:
        with contextlib.suppress(DocumentNotFound):
            await repository.delete(OWNER, document_id)
    listed += await follow(repository, msgspec.structs.replace(query, after_id=first.resume_after))
    expected = [d.id for d in reversed(documents) if d.tags and (d.id in listed[:2] or d.id not in deleted)]
    assert listed == expected


def renamed(filename: str, tags: tuple[str, ...] = ()) -> Callable[[Document], Document]:
    def change(current: Document) -> Document:
        return msgspec.structs.replace(current, filename=filename, tags=tags, version=current.version + 1)

    return change


async def test_update_stores_the_changed_document_and_its_entries(repository: DocumentRepository) -> None:
    (document,) = await add_all(repository, [make_document(tags=("old",))])

    def change(current: Document) -> Document:
        assert current == document
        return msgspec.structs.replace(
            current, filename="renamed.pdf", tags=("new",), metadata={"k": "v"}, version=2
        )

    changed = await repository.update(OWNER, document.id, change)
    assert changed.version == 2
    assert await repository.get(OWNER, changed.id) == changed
    assert await list_ids(repository, ListQuery(tag="old")) == []
    assert await list_ids(repository, ListQuery(tag="new")) == [changed.id]
    assert await list_ids(repository, ListQuery(filename="renamed.pdf")) == [changed.id]


async def test_updates_apply_on_top_of_each_other(repository: DocumentRepository) -> None:
    (document,) = await add_all(repository, [make_document()])
    await repository.update(OWNER, document.id, renamed("a"))
    updated = await repository.update(OWNER, document.id, renamed("b"))
    assert (updated.filename, updated.version) == ("b", 3)
    assert await repository.get(OWNER, document.id) == updated


async def test_concurrent_updates_all_apply(repository: DocumentRepository) -> None:
    (document,) = await add_all(repository, [make_document()])
    results = await asyncio.gather(
        *(repository.update(OWNER, document.id, renamed(f"{n}.pdf")) for n in range(8))
    )
    assert sorted(result.version for result in results) == list(range(2, 10))
    assert (await repository.get(OWNER, document.id)).version == 9


async def test_an_update_whose_change_raises_writes_nothing(repository: DocumentRepository) -> None:
    (document,) = await add_all(repository, [make_document()])

    def refuse(current: Document) -> Document:
        raise PreconditionFailed

    with pytest.raises(PreconditionFailed):
        await repository.update(OWNER, document.id, refuse)
    assert await repository.get(OWNER, document.id) == document


async def test_update_of_a_missing_document_raises_not_found(repository: DocumentRepository) -> None:
    with pytest.raises(DocumentNotFound):
        await repository.update(OWNER, new_document_id(), renamed("a"))


async def test_delete_removes_from_get_and_every_listing(repository: DocumentRepository) -> None:
    (document,) = await add_all(repository, [make_document("gone.pdf", tags=("t",))])
    await repository.delete(OWNER, document.id)
    with pytest.raises(DocumentNotFound):
        await repository.get(OWNER, document.id)
    for query in (ListQuery(), ListQuery(tag="t"), ListQuery(prefix="gone"), ListQuery(filename="gone.pdf")):
        assert await list_ids(repository, query) == []


async def test_delete_of_an_unknown_id_raises_not_found(repository: DocumentRepository) -> None:
    with pytest.raises(DocumentNotFound):
        await repository.delete(OWNER, new_document_id())


async def test_check_passes_on_a_healthy_repository(repository: DocumentRepository) -> None:
    await repository.check()
