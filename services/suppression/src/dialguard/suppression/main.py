"""Composition root of the suppression service: wires runtime, cache, consumers, sweeper and routes."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from dialguard.events.topics import LEADS_STOPPED
from dialguard.identifiers import warm_phone_rules
from dialguard.platform.app import create_service_app
from dialguard.platform.errors import error_body
from dialguard.platform.ping import enable_pings
from dialguard.platform.runtime import ServiceRuntime
from dialguard.suppression.api import router
from dialguard.suppression.api_files import router as files_router
from dialguard.suppression.audit import router as audit_router
from dialguard.suppression.cache import NoCache, SuppressionCache
from dialguard.suppression.cache_redis import REDIS_ERRORS, RedisSuppressionCache
from dialguard.suppression.check_http import CheckFastPath
from dialguard.suppression.config import Settings
from dialguard.suppression.handlers import Suppression, sweep_expired
from dialguard.suppression.subscribers import lead_stop_handler

SERVICE = "suppression"
SCHEMA = "suppression"
MIGRATIONS = Path(os.environ.get("MIGRATIONS_DIR", Path(__file__).resolve().parents[3] / "migrations"))
log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None, cache: SuppressionCache | None = None) -> FastAPI:
    """Stoplists, imports, exports and the check API dialers call."""
    settings = settings or Settings()
    runtime = ServiceRuntime(service=SERVICE, schema=SCHEMA, settings=settings, migrations_dir=MIGRATIONS)
    if cache is None:
        cache = RedisSuppressionCache(settings.REDIS_URL) if settings.CACHE_ENABLED else NoCache()
    svc = Suppression(runtime=runtime, cache=cache)
    runtime.consume(
        "lead-stops",
        [LEADS_STOPPED],
        lead_stop_handler(svc, default_region=settings.DEFAULT_PHONE_REGION),  # type: ignore[arg-type]
        event_types=["LeadStopped", "LeadUnstopped"],
        transient=REDIS_ERRORS,
    )
    runtime.checks["cache"] = svc.cache.status

    async def expiry_sweeper() -> None:
        while True:
            try:
                removed = await sweep_expired(svc)
                if removed:
                    log.info("expired entries removed", count=removed)
            except Exception as exc:
                log.warning("expiry sweep failed", error=repr(exc))
            await asyncio.sleep(settings.EXPIRY_SWEEP_SECONDS)

    async def on_start(rt: ServiceRuntime) -> None:
        warm_phone_rules(settings.DEFAULT_PHONE_REGION)
        if isinstance(cache, RedisSuppressionCache):
            cache.bind(rt.pool)
            rt.background(cache.warm_up)
        rt.background(expiry_sweeper)
        async with rt.pool.acquire() as conn:  # an import's job died with the previous process
            await conn.execute(
                """UPDATE imports SET status = 'failed', error = 'interrupted by a service restart; upload again',
                   finished_at = now() WHERE status IN ('analyzing', 'running') AND worker = $1""",
                socket.gethostname(),
            )

    async def on_stop(rt: ServiceRuntime) -> None:
        if isinstance(cache, RedisSuppressionCache):
            await cache.close()

    app = create_service_app(
        runtime,
        title="dialguard suppression",
        routers=[enable_pings(runtime), router, files_router, audit_router],
        on_start=on_start,
        on_stop=on_stop,
    )
    app.state.suppression = svc
    app.add_middleware(
        CheckFastPath,
        service=SERVICE,
        svc=lambda: svc,
        secret=settings.AUTH_JWT_SECRET,
        region=settings.DEFAULT_PHONE_REGION,
    )

    @app.exception_handler(RedisError)
    async def _cache_down(_: Request, exc: RedisError) -> JSONResponse:
        # An add cannot commit without its cache bits (it would be a false negative): refuse, retry later.
        body = error_body("cache_unavailable", "suppression cache unavailable, retry shortly", [repr(exc)])
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    return app
