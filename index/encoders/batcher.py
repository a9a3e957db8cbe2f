"""Micro-batching: calls that arrive within a short window are run as one batch by one worker thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np


class TextBatcher:
    """Encodes texts from many threads in shared batches; each caller waits at most ``wait_s`` for company.

    The window opens when a text arrives at an idle batcher. Texts that arrive while a batch is being encoded
    have already waited, so they go in the next batch at once: under load the batches fill by themselves.
    """

    def __init__(self, encode: Callable[[list[str]], np.ndarray], wait_s: float, max_batch: int) -> None:
        self._encode = encode
        self._wait_s = wait_s
        self._max_batch = max_batch
        self._pending: list[tuple[float, str, Future[np.ndarray]]] = []
        self._ready = threading.Condition()
        self._worker: threading.Thread | None = None
        self.batches = 0  # encoder calls made, for tests and metrics

    def encode(self, text: str) -> np.ndarray:
        """Return the text's vector (one row), computed in a batch with the texts that came with it."""
        future: Future[np.ndarray] = Future()
        with self._ready:
            self._pending.append((time.monotonic(), text, future))
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="query-batcher", daemon=True)
                self._worker.start()
            self._ready.notify()
        return future.result()

    def _next_batch(self) -> list[tuple[float, str, Future[np.ndarray]]]:
        with self._ready:
            while not self._pending:
                self._ready.wait()
            deadline = self._pending[0][0] + self._wait_s
            while len(self._pending) < self._max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            unique = list(dict.fromkeys(text for _, text, _ in batch))
            try:
                vectors = self._encode(unique)
            except Exception as exc:  # every caller of the batch sees the error; the worker goes on
                for _, _, future in batch:
                    future.set_exception(exc)
                continue
            self.batches += 1
            rows = {text: vectors[i] for i, text in enumerate(unique)}
            for _, text, future in batch:
                future.set_result(rows[text].copy())
