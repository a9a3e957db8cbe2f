"""The ingest pipeline: decode in worker threads while the main thread embeds and writes batches."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import select

from core.blobs import BlobStore, sha256_file
from core.db.engine import read_session, write_session
from core.db.models import Asset
from core.settings import Settings, get_settings
from index.encoders import Encoder, get_encoder
from index.ingest.discover import Candidate, Rejected
from index.ingest.embed import embed_assets
from index.ingest.prepare import PrepareContext, preparer_for
from index.ingest.prepared import Failure, Outcome, PreparedAsset
from index.ingest.writer import write_batch
from index.library import claim_model

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Outcome], None]


@dataclass
class IngestSummary:
    """Counts and per-file outcomes of one ingest run."""

    indexed: int = 0
    skipped: int = 0
    failed: int = 0
    media_seconds: float = 0.0
    elapsed_s: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
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


def _existing_asset(settings: Settings, collection: str, sha256: str) -> str | None:
    with read_session(settings) as session:
        return session.execute(
            select(Asset.id).where(Asset.collection == collection, Asset.sha256 == sha256, Asset.status != "failed")
        ).scalar_one_or_none()


def _prepare_one(candidate: Candidate, ctx: PrepareContext) -> PreparedAsset | Failure | _Skip:
    """Hash, skip known files before decoding, then decode; every error becomes a Failure with a reason."""
    sha256: str | None = None
    size = 0
    try:
        size = candidate.path.stat().st_size
        if size == 0:
            return Failure(candidate, "empty file (0 bytes)")
        if size > ctx.settings.ingest.max_file_bytes:
            return Failure(
                candidate, f"file is {size:,} bytes, over the limit of {ctx.settings.ingest.max_file_bytes:,}"
            )
        sha256 = sha256_file(candidate.path)
        existing = _existing_asset(ctx.settings, candidate.collection, sha256)
        if existing is not None:
            return _Skip(Outcome(str(candidate.path), "skipped", existing, "already indexed"))
        return preparer_for(candidate.kind)(candidate, sha256, size, ctx)
    except (ValueError, OSError) as exc:  # decoders raise ValueError subclasses with a readable reason
        return Failure(candidate, str(exc) or type(exc).__name__, sha256, size)
    except Exception as exc:  # one bad file must never stop the batch; the reason still reaches the user
        log.debug("unexpected error preparing %s", candidate.path, exc_info=True)
        return Failure(candidate, f"{type(exc).__name__}: {exc}", sha256, size)


class _Batcher:
    """Collects prepared assets until the encoder has a full batch, then embeds and writes them."""

    def __init__(
        self, settings: Settings, encoder: Encoder, summary: IngestSummary, on_progress: ProgressCallback | None
    ):
        self.settings = settings
        self.encoder = encoder
        self.summary = summary
        self.on_progress = on_progress
        self.assets: list[PreparedAsset] = []
        self.failures: list[Failure] = []
        self.pending_images = 0
        self.seen: set[tuple[str, str]] = set()

    def report(self, outcome: Outcome) -> None:
        self.summary.add(outcome)
        if self.on_progress:
            self.on_progress(outcome)

    def accept(self, item: PreparedAsset | Failure | _Skip) -> None:
        if isinstance(item, _Skip):
            self.report(item.outcome)
        elif isinstance(item, Failure):
            self.failures.append(item)
            self.report(Outcome(str(item.candidate.path), "failed", reason=item.reason))
        else:
            key = (item.candidate.collection, item.sha256)
            if key in self.seen:
                self.report(Outcome(str(item.candidate.path), "skipped", reason="duplicate of a file in this run"))
                return
            self.seen.add(key)
            self.assets.append(item)
            self.pending_images += sum(1 for s in item.segments if s.pixels is not None)
        if self.pending_images >= self.settings.encoder.batch_size or len(self.failures) >= 256:
            self.flush()

    def flush(self) -> None:
        if not self.assets and not self.failures:
            return
        embed_assets(self.encoder, self.assets)
        for outcome in write_batch(self.settings, self.assets, self.failures, self.encoder.model_id):
            self.report(outcome)
        self.assets, self.failures, self.pending_images = [], [], 0


def ingest(
    items: Iterable[Candidate | Rejected],
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    on_progress: ProgressCallback | None = None,
) -> IngestSummary:
    """Ingest candidates (refusals are reported as failures); return the summary. Re-running is a no-op."""
    settings = settings or get_settings()
    encoder = encoder or get_encoder(settings.encoder)
    with write_session(settings) as session:
        claim_model(session, encoder.model_id)  # refuse a model mismatch before decoding anything
    ctx = PrepareContext(settings, encoder, BlobStore(settings.resolved_data_dir()))
    summary = IngestSummary()
    batcher = _Batcher(settings, encoder, summary, on_progress)
    started = time.perf_counter()
    max_in_flight = max(2 * settings.encoder.batch_size, 4 * settings.ingest.workers)
    in_flight: deque[Future[PreparedAsset | Failure | _Skip]] = deque()
    with ThreadPoolExecutor(settings.ingest.workers, thread_name_prefix="ingest") as pool:
        for item in items:
            if isinstance(item, Rejected):
                batcher.report(Outcome(item.path, "failed", reason=item.reason))
                continue
            in_flight.append(pool.submit(_prepare_one, item, ctx))
            # Bounded look-ahead keeps memory flat whatever the library size.
            while len(in_flight) >= max_in_flight or (in_flight and in_flight[0].done()):
                batcher.accept(in_flight.popleft().result())
        while in_flight:
            batcher.accept(in_flight.popleft().result())
    batcher.flush()
    summary.elapsed_s = time.perf_counter() - started
    return summary
