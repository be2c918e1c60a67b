"""One real contact-list process shared by the tests that need no special settings; their assertions are
about their own lists, or accounts of their own, so they never see each other's data."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dialguard.testing.helpers import SECRET
from dialguard.testing.services import ServiceProcess, create_database, provision_all, service_env

REPO = Path(__file__).resolve().parents[4]


# Module, not session: a shared process outliving its tests would keep consuming every topic from the
# start while later suites run (other tests' events, CPU), e.g. publishing LeadStopped for the
# CallResults of the e2e accounts.
@pytest.fixture(scope="module")
async def shared_service(infra: Any) -> AsyncIterator[ServiceProcess]:
    admin = await create_database(infra.postgres_admin_url)
    dsns = await provision_all(admin)
    env = service_env(
        kafka=infra.kafka_bootstrap,
        database_url=dsns["contact-list"],
        redis_url=infra.redis_url,
        secret=SECRET,
        group_suffix=f".{uuid.uuid4().hex[:8]}",
    )
    proc = ServiceProcess("contact-list", env, REPO / ".local" / "test-logs")
    await proc.start()
    yield proc
    await proc.stop()
