"""What every request handler shares: settings, the URL signer, the rate limiter, job waits and readiness."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from api.rest.ratelimit import RateLimiter
from api.rest.signing import UrlSigner
from api.rest.waits import JobWaiter
from core.settings import Settings


@dataclass
class ApiState:
    """Per-process API state, kept on ``app.state.api``."""

    settings: Settings
    signer: UrlSigner
    limiter: RateLimiter
    waiter: JobWaiter
    warmed: threading.Event = field(default_factory=threading.Event)
    warm_error: str | None = None

    def asset_url(self, base_url: str, asset_id: str, what: str) -> str:
        """Return an absolute signed URL for an asset's ``content`` or ``thumbnail``."""
        return base_url.rstrip("/") + self.signer.sign(f"/v1/assets/{asset_id}/{what}")
