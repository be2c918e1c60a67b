"""Composition root of the outbound-sync service: wires runtime, consumer, delivery worker and routes."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from dialguard.events.topics import SUPPRESSION_CHANGES
from dialguard.outbound_sync.api import router
from dialguard.outbound_sync.config import Settings
from dialguard.outbound_sync.delivery import DeliveryWorker
from dialguard.outbound_sync.handlers import OutboundSync
from dialguard.outbound_sync.subscribers import suppression_changes_handler
from dialguard.platform.app import create_service_app
from dialguard.platform.ping import enable_pings
from dialguard.platform.runtime import ServiceRuntime

SERVICE = "outbound-sync"
SCHEMA = "outbound_sync"
MIGRATIONS = Path(os.environ.get("MIGRATIONS_DIR", Path(__file__).resolve().parents[3] / "migrations"))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Pushes stoplist entries to external Do Not Call lists."""
    settings = settings or Settings()
    runtime = ServiceRuntime(service=SERVICE, schema=SCHEMA, settings=settings, migrations_dir=MIGRATIONS)
    svc = OutboundSync(runtime=runtime, settings=settings)
    runtime.consume(
        "suppression-changes",
        [SUPPRESSION_CHANGES],
        suppression_changes_handler(svc),
        event_types=["SuppressionChanged"],
    )

    async def on_start(rt: ServiceRuntime) -> None:
        worker = DeliveryWorker(pool=rt.pool, settings=settings)
        svc.worker = worker
        rt.background(worker.run)

    app = create_service_app(
        runtime,
        title="dialguard outbound-sync",
        routers=[enable_pings(runtime), router],
        on_start=on_start,
    )
    app.state.outbound = svc
    return app
