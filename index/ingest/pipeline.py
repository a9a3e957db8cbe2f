"""The ingest pipeline: a bounded producer/consumer chain whose memory stays flat whatever the library size.

Worker threads hash, deduplicate and decode files (thumbnails and pixels); the calling thread embeds them in
encoder-sized batches; a writer thread commits each batch in one transaction. Each stage waits for the next
when it runs ahead, so a million-file library holds no more in memory than a few batches.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

from core.blobs import BlobStore, sha256_and_stat
from core.db.engine import write_session
from core.metrics import count_ingested
from core.settings import Settings, get_settings
from index.duplicates.policy import NearCopyPolicy
from index.encoders import Encoder, get_encoder
from index.ingest.claims import Sighting, claim
from index.ingest.discover import Candidate, Rejected
from index.ingest.embed import embed_assets
from index.ingest.prepare import PrepareContext, preparer_for
from index.ingest.prepared import Failure, Outcome, PreparedAsset
from index.ingest.writer import write_batch
from index.library import claim_model

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Outcome], None]

# Skips and refusals are handed on in groups this large, so a re-run over a finished library still shows progress.
_NOTES_PER_BATCH = 256
# Batches embedded but not yet committed; more would only hold memory while the database catches up.
_WRITER_DEPTH = 2


@dataclass
class IngestSummary:
    """Counts and per-file outcomes of one ingest run (only the failures when ``keep_outcomes`` is off)."""

    indexed: int = 0
    skipped: int = 0
    failed: int = 0
    media_seconds: float = 0.0
    elapsed_s: float = 0.0
    # The OCR pass that follows embedding: pictures read, text lines found, seconds spent reading.
    ocr_pictures: int = 0
    ocr_lines: int = 0
    ocr_seconds: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    keep_outcomes: bool = True

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
        if self.keep_outcomes or outcome.status == "failed":
            self.outcomes.append(outcome)
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        self.media_seconds += outcome.media_seconds

    @property
    def failures(self) -> list[Outcome]:
        """Return the failed outcomes."""
        return [o for o in self.outcomes if o.status == "failed"]


class _Skip:
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


def _file_type(mode: int) -> str:
    for test, name in [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")]:
        if test(mode):
            return name
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def _unreadable(exc: OSError) -> str:
    return f"cannot read file: {exc.strerror or exc}"


def _prepare_one(candidate: Candidate, ctx: PrepareContext) -> PreparedAsset | Failure | _Skip:
    """Check, hash, claim the content (known ones are skipped before decoding), then decode.

    A bad file becomes a Failure with a reason.
    """
    try:
        info = os.stat(candidate.path)
    except OSError as exc:
        return Failure(candidate, _unreadable(exc))
    if not stat.S_ISREG(info.st_mode):  # opening a named pipe would block this worker for ever
        return Failure(candidate, f"{_file_type(info.st_mode)}, not a regular file")
    size = info.st_size
    if size == 0:
        return Failure(candidate, "empty file (0 bytes)")
    if size > ctx.settings.ingest.max_file_bytes:
        return Failure(candidate, f"file is {size:,} bytes, over the limit of {ctx.settings.ingest.max_file_bytes:,}")
    try:
        sha256, hashed = sha256_and_stat(candidate.path)
    except OSError as exc:
        return Failure(candidate, _unreadable(exc), size=size)
    sighting = Sighting(
        sha256,
        hashed.st_size,
        candidate.kind,
        candidate.name,
        candidate.source,
        candidate.collection,
        candidate.tags,
        path=None if candidate.blob_key else str(candidate.path),
        blob_key=candidate.blob_key,
        stat=hashed,
    )
    claimed = claim(ctx.settings, sighting)  # database errors abort the run
    if claimed.status != "claimed":
        return _Skip(Outcome(str(candidate.path), "skipped", claimed.asset_id, claimed.reason))
    try:
        prepared = preparer_for(candidate.kind)(candidate, sha256, size, ctx)
    except (ValueError, OSError) as exc:  # decoders raise ValueError subclasses with a readable reason
        return Failure(candidate, str(exc) or type(exc).__name__, sha256, size, claimed.asset_id)
    except MemoryError:
        return Failure(candidate, "too large to decode in memory", sha256, size, claimed.asset_id)
    except Exception as exc:  # one bad file must never stop the batch; the reason still reaches the user
        log.debug("unexpected error preparing %s", candidate.path, exc_info=True)
        return Failure(candidate, f"{type(exc).__name__}: {exc}", sha256, size, claimed.asset_id)
    prepared.asset_id = claimed.asset_id
    return prepared


@dataclass
class _Batch:
    """What one transaction writes, plus outcomes (skips, refusals) that only need reporting."""

    assets: list[PreparedAsset] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: list[Outcome] = field(default_factory=list)


class _Writer:
    """Commits embedded batches in its own thread and reports every outcome, in order, from that thread."""

    def __init__(
        self, settings: Settings, model_id: str, summary: IngestSummary, on_progress: ProgressCallback | None
    ) -> None:
        self.settings = settings
        self.model_id = model_id
        self.summary = summary
        self.on_progress = on_progress
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=_WRITER_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Batches already embedded are committed even when the run is interrupted: the work is done.
        self._queue.put(None)
        self._thread.join()
        if exc is None:
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, batch: _Batch) -> None:
        """Queue a batch for commit, waiting while the writer is behind."""
        self._raise_if_failed()
        self._queue.put(batch)

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: the main thread re-raises the first error
            try:
                self._commit(batch)
            except BaseException as exc:  # the database or a progress callback (e.g. a job cancel) stopped us
                self._error = exc

    def _commit(self, batch: _Batch) -> None:
        outcomes = (
            write_batch(self.settings, batch.assets, batch.failures, self.model_id)
            if batch.assets or batch.failures
            else []
        )
        count_ingested(outcome.status for outcome in [*batch.notes, *outcomes])
        for outcome in [*batch.notes, *outcomes]:
            self.summary.add(outcome)
            if self.on_progress:
                self.on_progress(outcome)


class _Batcher:
    """Collects prepared assets until the encoder has a full batch, then embeds them and hands them on."""

    def __init__(
        self, settings: Settings, encoder: Encoder, writer: _Writer, near_copies: NearCopyPolicy | None = None
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.writer = writer
        self.near_copies = near_copies
        self.batch = _Batch()
        self.pending_images = 0

    def note(self, outcome: Outcome) -> None:
        """Report an outcome that needs no writing (in order with the rest)."""
        self.batch.notes.append(outcome)
        self._flush_if_full()

    def accept(self, item: PreparedAsset | Failure | _Skip) -> None:
        """Take one worker result."""
        if isinstance(item, _Skip):
            self.batch.notes.append(item.outcome)
        elif isinstance(item, Failure):
            self.batch.failures.append(item)
            self.batch.notes.append(Outcome(str(item.candidate.path), "failed", reason=item.reason))
        else:
            if self.near_copies is not None and (skipped := self.near_copies.decide(item)) is not None:
                self.batch.notes.append(skipped)
                self._flush_if_full()
                return
            self.batch.assets.append(item)
            self.pending_images += sum(1 for s in item.segments if s.pixels is not None)
        self._flush_if_full()

    def _flush_if_full(self) -> None:
        batch = self.batch
        if self.pending_images >= self.settings.encoder.batch_size or len(batch.notes) >= _NOTES_PER_BATCH:
            self.flush()

    def flush(self) -> None:
        """Embed what is collected and hand it to the writer."""
        if not (self.batch.assets or self.batch.failures or self.batch.notes):
            return
        embed_assets(self.encoder, self.batch.assets)
        self.writer.put(self.batch)
        self.batch, self.pending_images = _Batch(), 0


def ingest(
    items: Iterable[Candidate | Rejected],
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    on_progress: ProgressCallback | None = None,
    keep_outcomes: bool = True,
    near_duplicates: str | None = None,
) -> IngestSummary:
    """Ingest candidates (refusals are reported as failures); return the summary. Re-running is a no-op.

    ``on_progress`` is called once per input, in order, from the pipeline's writer thread. An interrupted run
    (Ctrl-C, a kill) loses at most the batches not yet committed; running it again finishes the rest.
    ``near_duplicates`` (default: the setting) is index, skip or link (index/duplicates/policy.py).
    """
    settings = settings or get_settings()
    encoder = encoder or get_encoder(settings.encoder)
    with write_session(settings) as session:
        claim_model(session, encoder.model_id)  # refuse a model mismatch before decoding anything
    ctx = PrepareContext(settings, encoder, BlobStore(settings.resolved_data_dir()))
    policy = near_duplicates or settings.duplicates.ingest_policy
    near_copies = NearCopyPolicy(policy, settings, ctx.blobs) if policy != "index" else None
    summary = IngestSummary(keep_outcomes=keep_outcomes)
    started = time.perf_counter()
    # Decoded files waiting for the encoder: the next batch is decoded while this one is embedded. (Measured on
    # 2 cores: this overlap beats decoding only between encoder calls, even though torch's threads use both.)
    window = max(2 * settings.encoder.batch_size, 4 * settings.ingest.workers)
    in_flight: deque[Future[PreparedAsset | Failure | _Skip]] = deque()
    with (
        _Writer(settings, encoder.model_id, summary, on_progress) as writer,
        ThreadPoolExecutor(settings.ingest.workers, thread_name_prefix="ingest-decode") as pool,
    ):
        batcher = _Batcher(settings, encoder, writer, near_copies)
        try:
            for item in items:
                if isinstance(item, Rejected):
                    batcher.note(Outcome(item.path, "failed", reason=item.reason))
                    continue
                in_flight.append(pool.submit(_prepare_one, item, ctx))
                while len(in_flight) >= window or (in_flight and in_flight[0].done()):
                    batcher.accept(in_flight.popleft().result())
            while in_flight:
                batcher.accept(in_flight.popleft().result())
            batcher.flush()
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise
    if settings.ocr.enabled:
        _ocr_pass(settings, encoder, summary)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _ocr_pass(settings: Settings, encoder: Encoder, summary: IngestSummary) -> None:
    """Read text in the new pictures, and in any a previous run left unread (the pass resumes)."""
    from index.ocr_pass import run_ocr_pass

    ocr = run_ocr_pass(settings, encoder)
    summary.ocr_pictures, summary.ocr_lines, summary.ocr_seconds = ocr.pictures, ocr.lines, ocr.seconds
