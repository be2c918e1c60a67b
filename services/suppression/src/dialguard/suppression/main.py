"""Composition root of the suppression service: wires runtime, cache, consumers, sweeper and routes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import structlog
from fastapi import FastAPI

from dialguard.events.topics import LEADS_STOPPED
from dialguard.platform.app import create_service_app
from dialguard.platform.ping import enable_pings
from dialguard.platform.runtime import ServiceRuntime
from dialguard.suppression.api import router
from dialguard.suppression.cache import NoCache, SuppressionCache
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
    svc = Suppression(runtime=runtime, cache=cache or NoCache())
    runtime.consume(
        "lead-stops",
        [LEADS_STOPPED],
        lead_stop_handler(svc, default_region=settings.DEFAULT_PHONE_REGION),  # type: ignore[arg-type]
        event_types=["LeadStopped", "LeadUnstopped"],
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
        rt.background(expiry_sweeper)

    app = create_service_app(
        runtime, title="dialguard suppression", routers=[enable_pings(runtime), router], on_start=on_start
    )
    app.state.suppression = svc
    return app
