"""A process that finishes one job whose callback receiver keeps failing, then lingers while retrying it.

Run as ``python -m tests.outbox_process CALLBACK_URL`` with the settings in the environment; prints the job id.
The test kills it with SIGKILL mid-retry and checks that another process delivers the callback.
"""

from __future__ import annotations

import sys
import time

from core.jobs import HANDLERS, submit, wait
from tests import fanout_handlers


def main(callback_url: str) -> None:
    """Submit a media-free job with a callback, wait for it, print its id, then keep retrying until killed."""
    HANDLERS.update(fanout_handlers.HANDLERS)
    job = submit(fanout_handlers.CHILD_KIND, {"items": [{"path": "a"}]}, callback_url=callback_url)
    done = wait(job.id, 60)
    print(done.id, done.status, flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1])
