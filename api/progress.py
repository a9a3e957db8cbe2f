"""Ingest progress: a rich bar on a terminal, periodic plain lines otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

from index.ingest.prepared import Outcome

_PLAIN_EVERY_S = 5.0


class IngestProgress:
    """Counts outcomes and shows files/s, ETA, failures and media seconds."""

    def __init__(self, enabled: bool = True, total: int | None = None) -> None:
        self.enabled = enabled
        self.total = total
        self.done = self.failed = 0
        self.media_seconds = 0.0
        self._started = time.perf_counter()
        self._last_plain = self._started
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> IngestProgress:
        if self.enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]ingest"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.1f} files/s"),
                TimeRemainingColumn(),
                TextColumn("[red]{task.fields[failed]} failed"),
                TextColumn("{task.fields[media]}"),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("ingest", total=self.total, rate=0.0, failed=0, media="")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
        elif self.enabled and self.done:
            self._plain_line()

    def _rate(self) -> float:
        return self.done / max(time.perf_counter() - self._started, 1e-9)

    def _plain_line(self) -> None:
        total = f"/{self.total}" if self.total else ""
        eta = ""
        if self.total and self._rate() > 0:
            eta = f", ETA {max(self.total - self.done, 0) / self._rate():.0f} s"
        media = f", {self.media_seconds:.0f} media s" if self.media_seconds else ""
        print(
            f"ingest: {self.done}{total} files, {self._rate():.1f} files/s{eta}, {self.failed} failed{media}",
            file=sys.stderr,
        )

    def update(self, outcome: Outcome) -> None:
        """Count one finished file."""
        self.done += 1
        self.failed += outcome.status == "failed"
        self.media_seconds += outcome.media_seconds
        if not self.enabled:
            return
        if self._bar is not None:
            media = f"{self.media_seconds:.0f} media s" if self.media_seconds else ""
            self._bar.update(self._task, advance=1, rate=self._rate(), failed=self.failed, media=media)
        elif time.perf_counter() - self._last_plain >= _PLAIN_EVERY_S:
            self._last_plain = time.perf_counter()
            self._plain_line()
