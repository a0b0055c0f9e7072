"""What follows a document's change once it is committed: its text is extracted, the search index follows.

Both are event consumers (``relay.EventConsumer``) fed by the outbox, so they act at least once on every
change, after restarts too, and in each document's commit order. Both tolerate the same event twice:
processing skips a document whose result is recorded, and indexing a version twice changes nothing.

A document's extracted text is a derived blob (``Processing.text_key``) in the same blob store as its
bytes, under a fresh key of its owner's: written before the result that names it is recorded (a crash
in between leaves an orphan for fsck), deleted with the document (``DocumentService.delete``).
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import AsyncIterable, AsyncIterator
from enum import StrEnum

import msgspec

from docpipe.domain.errors import BlobNotFound, DocumentNotFound
from docpipe.domain.events import Event, EventType
from docpipe.domain.model import Document, ListQuery, Processing, ProcessingState, new_blob_key
from docpipe.domain.ports import BlobStore, DocumentRepository, SearchIndex
from docpipe.domain.processing import ContentExtractor, ExtractionFailed, UnsupportedType, processor_for

logger = logging.getLogger(__name__)

MISSING_CONTENT = "the document's content is missing from the blob store"
REPROCESS_PAGE = 100


def asks_for_processing(event: Event) -> bool:
    """Whether ``event`` needs the document processed: only new documents do, since bytes never change
    under an id (new bytes make a new document) and the other changes leave the text as it was."""
    return event.type is EventType.CREATED


class DocumentProcessing:
    """Extracts the text of each new document and records what was found on it.

    With a search ``index``, the text is indexed before the result is recorded: a document whose state
    says ``done`` is findable by its text (API.md), and a failure to index leaves the document pending,
    so that the event comes back and processing is done again."""

    def __init__(
        self,
        blobs: BlobStore,
        repository: DocumentRepository,
        extractor: ContentExtractor,
        index: SearchIndex | None = None,
    ) -> None:
        self._blobs = blobs
        self._repository = repository
        self._extractor = extractor
        self._index = index

    async def handle(self, event: Event) -> None:
        if asks_for_processing(event):
            await self.process(event.owner, event.document_id)

    async def process(self, owner: str, document_id: str, *, again: bool = False) -> Document | None:
        """Process the document unless its result is recorded already (or ``again``), and return it as
        it then is; ``None`` when it no longer exists. ``ExtractorUnavailable`` and the stores'
        failures propagate: nothing is known about the document, so it stays as it was."""
        try:
            document = await self._repository.get(owner, document_id)
        except DocumentNotFound:
            return None
        if document.processing.state is not ProcessingState.PENDING and not again:
            return document
        processing = await self._result(document)
        try:
            recorded = await self._repository.record_processing(
                owner, document_id, document.sha256, processing
            )
        except DocumentNotFound:
            await self._discard(processing.text_key)
            return None
        # Any other failure may have been recorded after all (a store that timed out): the text stays,
        # referenced then, or an orphan for fsck to reclaim.
        if recorded.processing != processing:  # the bytes were replaced meanwhile: a stale result
            await self._discard(processing.text_key)
        elif document.processing.text_key != processing.text_key:
            await self._discard(document.processing.text_key)
        return recorded

    async def _result(self, document: Document) -> Processing:
        try:
            processor = processor_for(document.content_type)
        except UnsupportedType:
            return Processing(state=ProcessingState.SKIPPED)
        try:
            content = await self._blobs.open(document.blob_key)
        except BlobNotFound:
            return Processing(state=ProcessingState.FAILED, error=MISSING_CONTENT, processor=processor.label)
        text_key = new_blob_key(document.owner)
        try:
            async with self._extractor.extract(content, document.content_type) as extracted:
                await self._blobs.put(text_key, extracted.chunks())
                extraction = extracted.extraction
                processing = Processing(
                    state=ProcessingState.DONE,
                    pages=extraction.pages,
                    characters=extraction.characters,
                    title=extraction.title,
                    processor=processor.label,
                    text_key=text_key,
                )
                if self._index is not None:
                    # Its text with its names as read, at the version read: a change committed
                    # meanwhile has a higher one, and the index keeps that change's names.
                    await self._index.put(document, decoded(extracted.chunks()))
        except UnsupportedType:
            return Processing(state=ProcessingState.SKIPPED)
        except ExtractionFailed as failure:
            logger.info(
                "document %s of owner %s failed %s: %s (%s)",
                document.id,
                document.owner,
                processor.label,
                failure.reason,
                failure.cause or "no parser error",
            )
            return Processing(state=ProcessingState.FAILED, error=failure.reason, processor=processor.label)
        except BaseException:
            await self._discard(text_key)
            raise
        return processing

    async def _discard(self, text_key: str | None) -> None:
        if text_key is None:
            return
        try:
            await asyncio.shield(self._blobs.delete(text_key))
        except Exception:
            logger.warning("extracted text %s was left for fsck to reclaim", text_key, exc_info=True)


class SearchIndexing:
    """Keeps the search index in step with the documents' names and fields as they change, and removes
    them once deleted. Their text is indexed by ``DocumentProcessing``, before its result is recorded."""

    def __init__(self, index: SearchIndex) -> None:
        self._index = index

    async def handle(self, event: Event) -> None:
        if event.type is EventType.DELETED:
            await self._index.remove(event.owner, event.document_id)
        else:
            await self._index.put(event.document, None)


async def decoded(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """UTF-8 chunks as text, characters split between chunks joined again."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for chunk in chunks:
        if text := decoder.decode(chunk):
            yield text
    if tail := decoder.decode(b"", final=True):
        yield tail


class Selection(StrEnum):
    """Which documents ``docpipe reprocess`` processes again."""

    OUTDATED = "outdated"
    """Still pending, or processed by an older version of the processor (or none) that reads them now."""
    FAILED = "failed"
    ALL = "all"


def selected(document: Document, selection: Selection) -> bool:
    state = document.processing.state
    if selection is Selection.ALL:
        return True
    if selection is Selection.FAILED:
        return state is ProcessingState.FAILED
    try:
        current = processor_for(document.content_type).label
    except UnsupportedType:
        current = None
    return state is ProcessingState.PENDING or document.processing.processor != current


class Reprocessed(msgspec.Struct):
    """What a reprocessing run did, by the state each document ended in."""

    examined: int = 0
    states: dict[ProcessingState, int] = msgspec.field(default_factory=dict)


async def reprocess(
    repository: DocumentRepository,
    processing: DocumentProcessing,
    selection: Selection,
    *,
    concurrency: int,
) -> Reprocessed:
    """Process again every owner's documents that ``selection`` picks, ``concurrency`` at a time. The
    documents are read a page at a time: at most a page and ``concurrency`` documents are held."""
    report = Reprocessed()
    slots = asyncio.Semaphore(concurrency)

    async def again(document: Document) -> None:
        async with slots:
            result = await processing.process(document.owner, document.id, again=True)
        if result is not None:
            state = result.processing.state
            report.states[state] = report.states.get(state, 0) + 1

    async for owner in repository.owners():
        query = ListQuery(limit=REPROCESS_PAGE)
        while True:
            page = await repository.list(owner, query)
            report.examined += len(page.documents)
            picked = [document for document in page.documents if selected(document, selection)]
            await asyncio.gather(*(again(document) for document in picked))
            if page.resume_after is None:
                break
            query = ListQuery(limit=REPROCESS_PAGE, after_id=page.resume_after)
    return report
