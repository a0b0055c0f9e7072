"""Documents kept between reads (``sqlite_recent``): never one older than a change SQLite reported, the
change counter asked once a turn of the event loop, and no more kept than the bound, none described at
length."""

from __future__ import annotations

import asyncio

import msgspec

from docpipe.adapters.sqlite_recent import RECENT_DOCUMENTS, RecentDocuments
from docpipe.domain.fields import MAX_METADATA_VALUE_LENGTH
from docpipe.domain.model import Document
from tests.contract.test_repository_contract import OWNER, make_document


class _File:
    """A database file's change counter as one connection sees it, and how often it was asked."""

    def __init__(self) -> None:
        self.version: int | None = 1
        self.asked = 0

    def data_version(self) -> int | None:
        self.asked += 1
        return self.version


def _kept(file: _File, *documents: Document) -> RecentDocuments:
    recent = RecentDocuments(file.data_version)
    for document in documents:
        recent.find(document.owner, document.id)  # a miss, then the read
        recent.keep(document, recent.reading())
    return recent


async def test_a_document_read_is_found_again_while_the_file_is_unchanged() -> None:
    file = _File()
    document = make_document()
    recent = _kept(file, document)
    await asyncio.sleep(0)
    assert recent.find(OWNER, document.id) is document
    assert recent.find("someone-else", document.id) is None


async def test_the_change_counter_is_asked_by_the_first_read_of_each_turn() -> None:
    file = _File()
    recent = _kept(file, make_document())
    asked = file.asked
    for _ in range(3):
        recent.find(OWNER, make_document().id)
    assert file.asked == asked
    await asyncio.sleep(0)
    recent.find(OWNER, make_document().id)
    recent.find(OWNER, make_document().id)
    assert file.asked == asked + 1


async def test_a_change_forgets_every_document_kept() -> None:
    file = _File()
    one, two = make_document(), make_document()
    recent = _kept(file, one, two)
    file.version = 2
    await asyncio.sleep(0)
    assert (recent.find(OWNER, one.id), recent.find(OWNER, two.id)) == (None, None)


async def test_nothing_is_kept_while_the_counter_cannot_be_read() -> None:
    file = _File()
    file.version = None
    document = make_document()
    recent = _kept(file, document)
    assert recent.find(OWNER, document.id) is None
    file.version = 1
    await asyncio.sleep(0)
    assert recent.find(OWNER, document.id) is None


async def test_a_read_that_began_before_a_change_does_not_keep_its_row() -> None:
    file = _File()
    document = make_document()
    recent = RecentDocuments(file.data_version)
    assert recent.find(OWNER, document.id) is None
    reading = recent.reading()
    await asyncio.sleep(0)  # the read waits for a thread; meanwhile the file changes and a read sees it
    file.version = 2
    recent.find(OWNER, make_document().id)
    recent.keep(document, reading)
    assert recent.find(OWNER, document.id) is None


def test_outside_an_event_loop_every_read_asks() -> None:
    file = _File()
    document = make_document()
    recent = _kept(file, document)
    file.version = 2
    assert recent.find(OWNER, document.id) is None


async def test_no_more_than_the_bound_are_kept_and_the_one_kept_longest_goes_first() -> None:
    file = _File()
    documents = [make_document() for _ in range(RECENT_DOCUMENTS + 1)]
    recent = _kept(file, *documents)
    assert recent.find(OWNER, documents[0].id) is None
    assert all(recent.find(OWNER, document.id) is document for document in documents[1:])


async def test_a_document_changed_after_it_was_kept_is_read_anew_in_a_later_turn() -> None:
    file = _File()
    document = make_document()
    recent = _kept(file, document)
    changed = msgspec.structs.replace(document, version=2)
    file.version = 2
    await asyncio.sleep(0)
    assert recent.find(OWNER, document.id) is None
    recent.keep(changed, recent.reading())
    assert recent.find(OWNER, document.id) is changed


def test_a_loop_that_stopped_before_its_turn_ended_leaves_the_next_loop_to_ask() -> None:
    file = _File()
    document = make_document()
    recent = RecentDocuments(file.data_version)
    stopped = asyncio.new_event_loop()

    async def read_and_stop() -> None:
        recent.find(OWNER, document.id)
        recent.keep(document, recent.reading())
        stopped.stop()

    stopped.run_until_complete(read_and_stop())
    stopped.close()
    file.version = 2

    async def read() -> Document | None:
        return recent.find(OWNER, document.id)

    assert asyncio.run(read()) is None


async def test_a_document_described_at_length_is_not_kept() -> None:
    file = _File()
    long = make_document(metadata={f"k{n}": "v" * MAX_METADATA_VALUE_LENGTH for n in range(8)})
    recent = _kept(file, long, make_document())
    assert recent.find(OWNER, long.id) is None
