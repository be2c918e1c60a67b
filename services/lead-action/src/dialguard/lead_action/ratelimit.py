"""Per-token sliding-window limits for lead actions and searches (CONTRACT §3), in process."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, Request

from dialguard.platform.auth import Principal, require_roles
from dialguard.platform.errors import ApiError


def parse_rate(text: str) -> tuple[int, float]:
    """ "N/SECONDS" -> (N, SECONDS)."""
    count, _, seconds = text.partition("/")
    return int(count.strip()), float(seconds.strip())


class RateLimiter:
    """At most `limit` calls per `window` seconds per key; the oldest call says when the next is allowed."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._calls: dict[str, deque[float]] = {}
        self._max_keys = max_keys

    def retry_after(self, key: str, now: float | None = None) -> float | None:
        """Record a call; None when allowed, else seconds until one is (the call is not recorded)."""
        now = time.monotonic() if now is None else now
        calls = self._calls.get(key)
        if calls is None:
            if len(self._calls) >= self._max_keys:
                self._evict(now)
            calls = self._calls[key] = deque()
        while calls and calls[0] <= now - self.window:
            calls.popleft()
        if len(calls) >= self.limit:
            return max(calls[0] + self.window - now, 0.001)
        calls.append(now)
        return None

    def _evict(self, now: float) -> None:
        for key in [k for k, v in self._calls.items() if not v or v[-1] <= now - self.window]:
            del self._calls[key]


def rate_limited(bucket: str, *roles: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Dependency: authorize, then count the call against the token's `bucket` limiter (429 when over)."""
    authorize = require_roles(*roles)

    async def dependency(request: Request, principal: Principal = Depends(authorize)) -> Principal:
        limiter: RateLimiter = request.app.state.limiters[bucket]
        # Keyed by the token's identity, not its bytes: a client re-minting tokens keeps its budget.
        wait = limiter.retry_after(f"{principal.account_id}\x00{principal.sub}")
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429,
                "rate_limited",
                f"over {limiter.limit} {bucket} per {limiter.window:g} s for this token; retry in {seconds} s",
                [{"limit": limiter.limit, "window_seconds": limiter.window, "retry_after": seconds}],
                headers={"Retry-After": str(seconds)},
            )
        return principal

    return dependency
