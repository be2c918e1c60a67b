"""Small helpers shared by integration and e2e tests: tokens for the test secret, polling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from dialguard.platform.auth import mint_token

SECRET = "integration-secret-0123456789abcdef"


def token(account: str = "acme", roles: list[str] | None = None) -> str:
    """A signed token for the test secret."""
    return mint_token(secret=SECRET, account_id=account, roles=roles or ["OUTBOUND_MANAGER"])


def auth(account: str = "acme", roles: list[str] | None = None) -> dict[str, str]:
    """Authorization header for the test secret."""
    return {"Authorization": f"Bearer {token(account, roles)}"}


async def wait_for(
    predicate: Callable[[], Awaitable[Any]], timeout: float = 30.0, interval: float = 0.05
) -> Any:
    """Poll an async predicate until it returns a truthy value; fail with the last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)
