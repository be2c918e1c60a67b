"""Composition root of the lead-action service: wires runtime, consumers, limiters, sweeper and routes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import structlog
from fastapi import FastAPI

from dialguard.events.topics import CALL_RESULTS, CONTACTS_IMPORTED, SUPPRESSION_CHANGES
from dialguard.identifiers import warm_phone_rules
from dialguard.lead_action import repository as repo
from dialguard.lead_action.api import router
from dialguard.lead_action.api_actions import router as actions_router
from dialguard.lead_action.api_leads import router as leads_router
from dialguard.lead_action.config import Settings
from dialguard.lead_action.handlers import LeadService
from dialguard.lead_action.ratelimit import RateLimiter, parse_rate
from dialguard.lead_action.subscribers import call_result_handler, contact_handler, suppression_handler
from dialguard.platform.app import create_service_app
from dialguard.platform.ping import enable_pings
from dialguard.platform.runtime import ServiceRuntime

SERVICE = "lead-action"
SCHEMA = "lead_action"
MIGRATIONS = Path(os.environ.get("MIGRATIONS_DIR", Path(__file__).resolve().parents[3] / "migrations"))
EXPORT_SWEEP_SECONDS = 600.0
log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Campaigns, lists, leads and the 13 bulk lead actions."""
    settings = settings or Settings()
    runtime = ServiceRuntime(service=SERVICE, schema=SCHEMA, settings=settings, migrations_dir=MIGRATIONS)
    svc = LeadService(runtime=runtime, settings=settings)
    region = settings.DEFAULT_PHONE_REGION
    runtime.consume(
        "suppression", [SUPPRESSION_CHANGES], suppression_handler(svc), event_types=["SuppressionChanged"]
    )
    runtime.consume(
        "contacts", [CONTACTS_IMPORTED], contact_handler(svc, region=region), event_types=["ContactImported"]
    )
    runtime.consume(
        "call-results", [CALL_RESULTS], call_result_handler(svc, region=region), event_types=["CallResult"]
    )

    async def export_sweeper() -> None:
        while True:
            await asyncio.sleep(EXPORT_SWEEP_SECONDS)
            try:
                async with runtime.pool.acquire() as conn:
                    await repo.purge_exports(conn)
            except Exception as exc:
                log.warning("export sweep failed", error=repr(exc))

    async def on_start(rt: ServiceRuntime) -> None:
        warm_phone_rules(region)
        rt.background(export_sweeper)

    app = create_service_app(
        runtime,
        title="dialguard lead-action",
        routers=[enable_pings(runtime), router, leads_router, actions_router],
        on_start=on_start,
    )
    app.state.leads = svc
    app.state.limiters = {
        "actions": RateLimiter(*parse_rate(settings.RATE_LIMIT_ACTIONS)),
        "searches": RateLimiter(*parse_rate(settings.RATE_LIMIT_SEARCHES)),
    }
    return app
