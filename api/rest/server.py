"""uvicorn settings for `sensorium serve`: header and idle-read timeouts, keep-alive and a connection limit.

uvicorn closes idle keep-alive connections, but not a connection that sends half a request and then stalls: that
one would hold its socket (and, past the concurrency limit, everyone else's turn) forever. ``GuardedHttpProtocol``
drops a request whose headers take longer than ``api.header_timeout_s`` or that sends nothing for
``api.idle_timeout_s`` while it is still being read. Once the request is read the app may take as long as it likes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.settings import Settings, get_settings


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and an idle timeout while a request is read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = get_settings().api
        self._header_timeout_s = limits.header_timeout_s
        self._idle_timeout_s = limits.idle_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clocks: a new connection must send its request's headers in time."""
        super().connection_made(transport)
        self._arm_header_deadline()
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clocks."""
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Reset the idle clock while a request is being read."""
        if self._idle_timer is not None:
            self._arm_idle()
        super().data_received(data)

    def on_message_begin(self) -> None:
        """A further request on a kept-alive connection gets the same deadlines as the first."""
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_deadline()
        self._arm_idle()

    def on_headers_complete(self) -> None:
        """The headers arrived in time."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The whole request is read: from here on the app's own time is not limited."""
        self._cancel_timers()
        super().on_message_complete()

    def _arm_header_deadline(self) -> None:
        self._header_timer = self.loop.call_later(self._header_timeout_s, self._drop, "headers too slow")

    def _arm_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = self.loop.call_later(self._idle_timeout_s, self._drop, "request stalled")

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._idle_timer = None

    def _drop(self, why: str) -> None:
        self._cancel_timers()
        if not self.transport.is_closing():
            self.logger.info("closing connection from %s: %s", self.client, why)
            self.transport.close()


def uvicorn_limits(settings: Settings) -> dict[str, Any]:
    """Return the uvicorn.run() keyword arguments for the timeouts and the connection limit in ``settings``."""
    api = settings.api
    return {
        "http": GuardedHttpProtocol,
        "timeout_keep_alive": api.keep_alive_s,
        "limit_concurrency": api.max_connections,
    }
