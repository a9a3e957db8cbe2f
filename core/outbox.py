"""The webhook outbox: every job callback is a row in ``webhook_deliveries`` until it arrives or its attempts run
out, so a delivery being retried when its process dies is sent by another process (or the restarted one).

enqueue() stores the delivery and starts sending it on a thread of this process. Each attempt first claims the
row for a while (a conditional update: one sender at a time, and a dead sender's claim runs out); a failed attempt
sets when the next is due (1, 2, 4, 8 s). pump(), called by every reaper pass (embedded executor and workers),
starts a sender for each due delivery nobody holds.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult

from core.callbacks import TIMEOUT_S, post_once
from core.db.engine import read_session, write_session
from core.db.models import WebhookDelivery, utcnow
from core.settings import Settings

logger = logging.getLogger(__name__)

ATTEMPTS = 5
BACKOFF_S = 1.0  # waits 1, 2, 4, 8 s between the five attempts
_CLAIM_S = TIMEOUT_S + 5.0  # longer than one POST can take

_senders: dict[str, threading.Thread] = {}
_senders_lock = threading.Lock()


def enqueue(job_id: str, url: str, payload: dict[str, Any], settings: Settings) -> str:
    """Store a delivery of ``payload`` to ``url`` and start sending it now; return its id."""
    delivery = WebhookDelivery(job_id=job_id, url=url, payload=payload, status="pending", attempts=0)
    with write_session(settings) as session:
        session.add(delivery)
    start_sender(delivery.id, settings)
    return delivery.id


def _claimable(now: datetime) -> Any:
    return (
        WebhookDelivery.status == "pending",
        WebhookDelivery.next_attempt_at <= now,
        or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
    )


def attempt(delivery_id: str, settings: Settings) -> datetime | None:
    """Make one attempt if the delivery is due and nobody holds it; return when to look again (None: it ended)."""
    now = utcnow()
    with write_session(settings) as session:
        claimed = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, *_claimable(now))
            .values(claimed_until=now + timedelta(seconds=_CLAIM_S), attempts=WebhookDelivery.attempts + 1)
        )
        won = isinstance(claimed, CursorResult) and claimed.rowcount == 1
        row = session.get(WebhookDelivery, delivery_id)
    if row is None or row.status != "pending":
        return None
    if not won:
        return max(row.next_attempt_at, row.claimed_until or row.next_attempt_at)  # not due yet, or held elsewhere
    sent = post_once(row.url, row.payload, settings)
    values: dict[str, Any] = {"claimed_until": None, "last_error": sent.problem or None}
    due: datetime | None = None
    if sent.delivered:
        values.update(status="delivered", delivered_at=utcnow())
    elif not sent.retry or row.attempts >= ATTEMPTS:
        values["status"] = "failed"
        logger.warning("callback for job %s failed after %d attempts: %s", row.job_id, row.attempts, sent.problem)
    else:
        due = utcnow() + timedelta(seconds=BACKOFF_S * 2 ** (row.attempts - 1))
        values["next_attempt_at"] = due
        logger.warning("callback for job %s, attempt %d/%d: %s", row.job_id, row.attempts, ATTEMPTS, sent.problem)
    with write_session(settings) as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values))
    return due


def _send_until_done(delivery_id: str, settings: Settings) -> None:
    try:
        while (due := attempt(delivery_id, settings)) is not None:
            time.sleep(max(0.0, min(_CLAIM_S, (due - utcnow()).total_seconds())))
    except Exception:
        # A database hiccup: the row stays pending, and the next reaper pass starts a sender again.
        logger.exception("callback delivery %s: sender stopped", delivery_id)
    finally:
        with _senders_lock:
            _senders.pop(delivery_id, None)


def start_sender(delivery_id: str, settings: Settings) -> None:
    """Start a daemon thread that sends this delivery until it ends (none if this process already has one)."""
    with _senders_lock:  # started under the lock, so wait_for_deliveries() never joins an unstarted thread
        if delivery_id in _senders:
            return
        thread = threading.Thread(
            target=_send_until_done, args=(delivery_id, settings), name=f"callback-{delivery_id[:8]}", daemon=True
        )
        _senders[delivery_id] = thread
        thread.start()


def pump(settings: Settings, limit: int = 100) -> int:
    """Start senders for due deliveries that no process is sending (a restart's leftovers); return how many."""
    with read_session(settings) as session:
        due = list(session.scalars(select(WebhookDelivery.id).where(*_claimable(utcnow())).limit(limit)))
    for delivery_id in due:
        start_sender(delivery_id, settings)
    return len(due)


def wait_for_deliveries(timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for this process's deliveries to end (a CLI does this before exiting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with _senders_lock:
            pending = list(_senders.values())
        if not pending:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        pending[0].join(remaining)
