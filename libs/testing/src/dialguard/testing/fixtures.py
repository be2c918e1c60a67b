"""pytest fixtures that run the real service processes against the session's broker, Postgres and Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dialguard.testing.helpers import SECRET
from dialguard.testing.services import ServiceProcess, create_database, provision_all, service_env

REPO = Path(__file__).resolve().parents[5]
StartService = Callable[..., Awaitable[ServiceProcess]]


@pytest.fixture
def secret() -> str:
    return SECRET


@pytest.fixture
async def database(infra: Any) -> str:
    """A fresh database per test (admin URL): tests never see each other's rows."""
    return await create_database(infra.postgres_admin_url)


@pytest.fixture
async def dsns(database: str) -> dict[str, str]:
    """Every service's role-limited DSN in the test's database."""
    return await provision_all(database)


@pytest.fixture
async def start_service(infra: Any, dsns: dict[str, str]) -> AsyncIterator[StartService]:
    """Start service processes (stopped at teardown); each test gets its own consumer groups."""
    started: list[ServiceProcess] = []
    suffix = f".{uuid.uuid4().hex[:8]}"

    async def start(service: str, **extra: Any) -> ServiceProcess:
        env = service_env(
            kafka=infra.kafka_bootstrap,
            database_url=dsns[service],
            redis_url=infra.redis_url,
            secret=SECRET,
            group_suffix=suffix,
            **extra,
        )
        proc = ServiceProcess(service, env, REPO / ".local" / "test-logs")
        started.append(proc)
        await proc.start()
        return proc

    yield start
    for proc in started:
        await proc.stop()
