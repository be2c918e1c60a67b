"""Small helpers shared by integration and e2e tests: tokens for the test secret, polling, reading a
topic's events of one account."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

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


async def account_events(
    bootstrap: str, topic: str, account: str, want: int, timeout: float = 30
) -> list[dict[str, Any]]:
    """Envelopes of one account on a topic from its beginning, until `want` arrived or the time is up;
    each record's key must start with the account (CONTRACT §5's keys)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"t-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        session_timeout_ms=3000,
        heartbeat_interval_ms=300,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < want and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    env = json.loads(r.value)
                    if env["account_id"] == account:
                        assert r.key is not None
                        assert r.key.decode().startswith(f"{account}:")
                        found.append(env)
    finally:
        await consumer.stop()
    return found
