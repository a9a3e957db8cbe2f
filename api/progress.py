"""Ingest progress: a rich bar on a terminal, periodic plain lines otherwise (logs, CI); failures as they happen."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from index.ingest.prepared import Outcome

_PLAIN_EVERY_S = 5.0


class IngestProgress:
    """Counts outcomes and shows files/s, ETA, failures and media seconds; prints each failure with its reason."""

    def __init__(self, enabled: bool = True, total: int | None = None) -> None:
        self.enabled = enabled
        self.total = total
        self.done = self.failed = 0
        self.media_seconds = 0.0
        self._started = time.perf_counter()
        self._last_plain = self._started
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> IngestProgress:
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]ingest"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.1f} files/s"),
                TimeRemainingColumn(),
                TextColumn("[red]{task.fields[failed]} failed"),
                TextColumn("{task.fields[media]}"),
                console=Console(stderr=True),
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

    def count_in_background(self, items: Iterable[object]) -> None:
        """Count ``items`` (a second, cheap walk of the inputs) in a thread and set the total for the ETA."""

        def count() -> None:
            try:
                total = sum(1 for _ in items)
            except (OSError, ValueError):  # the inputs changed under us: go on without an ETA
                return
            self.set_total(total)

        threading.Thread(target=count, name="ingest-count", daemon=True).start()

    def set_total(self, total: int) -> None:
        """Set how many inputs there are, once known."""
        with self._lock:
            self.total = total
            if self._bar is not None:
                self._bar.update(self._task, total=total)

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
            flush=True,
        )

    def _print_failure(self, outcome: Outcome) -> None:
        line = f"failed: {outcome.path}: {outcome.reason}"
        if self._bar is not None:
            self._bar.console.print(line, style="yellow", markup=False, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def update(self, outcome: Outcome) -> None:
        """Count one finished file (and print it if it failed)."""
        with self._lock:
            self.done += 1
            self.failed += outcome.status == "failed"
            self.media_seconds += outcome.media_seconds
            if not self.enabled:
                return
            if outcome.status == "failed":
                self._print_failure(outcome)
            if self._bar is not None:
                media = f"{self.media_seconds:.0f} media s" if self.media_seconds else ""
                self._bar.update(self._task, advance=1, rate=self._rate(), failed=self.failed, media=media)
            elif time.perf_counter() - self._last_plain >= _PLAIN_EVERY_S:
                self._last_plain = time.perf_counter()
                self._plain_line()
