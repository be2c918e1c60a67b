"""The suppression handlers in-process against the session's Postgres and Redis (no service process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from dialguard.db.migrations import apply_migrations
from dialguard.db.pool import create_pool
from dialguard.messaging.outbox import SQL_DIR as MESSAGING_SQL
from dialguard.platform.runtime import PLATFORM_SQL, ServiceRuntime
from dialguard.platform.settings import ServiceSettings
from dialguard.suppression.cache_redis import RedisSuppressionCache
from dialguard.suppression.handlers import Suppression

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


@pytest.fixture
async def harness(infra: Any, dsns: dict[str, str]) -> Any:
    dsn = dsns["suppression"]
    pool = await create_pool(dsn, schema="suppression")
    async with pool.acquire() as conn:
        await apply_migrations(
            conn, schema="suppression", directories=[MESSAGING_SQL, PLATFORM_SQL, MIGRATIONS]
        )
    runtime = ServiceRuntime(
        service="suppression",
        schema="suppression",
        settings=ServiceSettings(DATABASE_URL=dsn),
        migrations_dir=MIGRATIONS,
    )
    runtime.pool = pool
    cache = RedisSuppressionCache(infra.redis_url)
    cache.bind(pool)
    redis = Redis.from_url(infra.redis_url)
    yield Suppression(runtime=runtime, cache=cache), redis
    await cache.close()
    await redis.aclose()
    await pool.close()
