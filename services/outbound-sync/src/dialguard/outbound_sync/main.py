"""Composition root of the outbound-sync service: wires runtime, consumers and routes."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from dialguard.outbound_sync.config import Settings
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
    routers = [enable_pings(runtime)]
    return create_service_app(runtime, title="dialguard outbound-sync", routers=routers)
