"""Composition root of the contact-list service: wires runtime, consumers, the auto-add scheduler and routes."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from dialguard.contact_list.api import router
from dialguard.contact_list.api_files import router as files_router
from dialguard.contact_list.config import Settings
from dialguard.contact_list.filters import auto_add_loop
from dialguard.contact_list.importing import fail_orphaned_imports
from dialguard.contact_list.subscribers import lifecycle_handler, suppression_handler
from dialguard.events.topics import CALL_RESULTS, LEADS_ACTIONS, LEADS_MOVED, SUPPRESSION_CHANGES
from dialguard.identifiers import warm_phone_rules
from dialguard.platform.app import create_service_app
from dialguard.platform.ping import enable_pings
from dialguard.platform.runtime import ServiceRuntime

SERVICE = "contact-list"
SCHEMA = "contact_list"
MIGRATIONS = Path(os.environ.get("MIGRATIONS_DIR", Path(__file__).resolve().parents[3] / "migrations"))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Contact lists with communication units, validated imports and status counts."""
    settings = settings or Settings()
    runtime = ServiceRuntime(service=SERVICE, schema=SCHEMA, settings=settings, migrations_dir=MIGRATIONS)
    region = settings.DEFAULT_PHONE_REGION
    runtime.consume(
        "suppression-changes",
        [SUPPRESSION_CHANGES],
        suppression_handler(region=region),
        event_types=["SuppressionChanged"],
    )
    runtime.consume(
        "lead-lifecycle",
        [LEADS_MOVED, LEADS_ACTIONS, CALL_RESULTS],
        lifecycle_handler(region=region),
        event_types=["LeadsMoved", "LeadActionApplied", "CallResult"],
    )

    async def on_start(rt: ServiceRuntime) -> None:
        warm_phone_rules(region)
        rt.background(auto_add_loop(rt, settings.AUTO_ADD_POLL_SECONDS))
        await fail_orphaned_imports(rt)

    return create_service_app(
        runtime,
        title="dialguard contact-list",
        routers=[enable_pings(runtime), router, files_router],
        on_start=on_start,
    )
