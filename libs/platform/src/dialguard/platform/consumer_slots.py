"""Which of an instance's HTTP worker processes run its event consumers (the others serve HTTP only).

Every uvicorn worker runs the whole app. Were each to consume too, an instance with two workers
would be two members of each consumer group on the same cores: half-size batches, twice the
per-batch round trips, and both workers' transactions queuing on the same rows. Measured on the
LeadStopped → check path at 500 events/s: p99 135 ms with both workers consuming, 104 ms with one.

A slot is an exclusive flock on a file named after the service and its port (the workers of one
instance share the port; instances on one host do not). The kernel releases it when its holder
dies, however it dies, and a waiting worker takes it over within a poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


def slot_paths(service: str, port: int, slots: int) -> list[Path]:
    """The lock files of an instance's consumer slots."""
    base = Path(tempfile.gettempdir())
    return [base / f"dialguard-{service}-{port}-consumers-{i}.lock" for i in range(slots)]


class ConsumerSlot:
    """Holds one of `slots` consumer slots once `claim` or `wait_and_run` got it; `release` gives it back."""

    def __init__(self, service: str, port: int, slots: int) -> None:
        self._paths = slot_paths(service, port, slots)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def claim(self) -> bool:
        """Take a free slot without waiting; True if this process now holds one."""
        if self._fd is not None:
            return True
        for path in self._paths:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._fd = fd
            return True
        return False

    async def wait_and_run(self, start: Callable[[], Awaitable[None]], *, poll_s: float = 1.0) -> None:
        """Poll until a slot frees up (its holder died), then run `start` (the consumers)."""
        while not self.claim():  # noqa: ASYNC110 (a holder's death signals nothing to wait on)
            await asyncio.sleep(poll_s)
        log.info("consumer slot taken over, starting consumers", pid=os.getpid())
        await start()

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
