"""The four services, started once for the hostile-input suite (each test uses its own accounts)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialguard.testing.fixtures import REPO
from dialguard.testing.helpers import SECRET
from dialguard.testing.services import ServiceProcess, create_database, provision_all, service_env

SERVICES = ("suppression", "contact-list", "lead-action", "outbound-sync")
LONG = os.environ.get("CHAOS_LONG", "") not in ("", "0")


@pytest.fixture(scope="session")
async def services(infra: Any) -> AsyncIterator[dict[str, ServiceProcess]]:
    """Every service as its own process in one fresh database; rate limits high enough for fuzzing."""
    dsns = await provision_all(await create_database(infra.postgres_admin_url))
    suffix = f".hostile{uuid.uuid4().hex[:6]}"
    procs = {
        name: ServiceProcess(
            name,
            service_env(
                kafka=infra.kafka_bootstrap,
                database_url=dsns[name],
                redis_url=infra.redis_url,
                secret=SECRET,
                group_suffix=suffix,
                RATE_LIMIT_ACTIONS="100000/10",
                RATE_LIMIT_SEARCHES="100000/10",
            ),
            REPO / ".local" / "test-logs",
        )
        for name in SERVICES
    }
    try:
        await asyncio.gather(*(p.start() for p in procs.values()))
        yield procs
    finally:
        await asyncio.gather(*(p.stop() for p in procs.values()))


@pytest.fixture
def account() -> str:
    """A fresh account per test: nothing one test creates is visible to another."""
    return f"hostile-{uuid.uuid4().hex[:8]}"
