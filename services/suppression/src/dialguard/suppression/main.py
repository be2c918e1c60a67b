"""Composition root of the suppression service: wires runtime, consumers and routes."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from dialguard.platform.app import create_service_app
from dialguard.platform.ping import enable_pings
from dialguard.platform.runtime import ServiceRuntime
from dialguard.suppression.config import Settings

SERVICE = "suppression"
SCHEMA = "suppression"
MIGRATIONS = Path(os.environ.get("MIGRATIONS_DIR", Path(__file__).resolve().parents[3] / "migrations"))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Stoplists, imports, exports and the check API dialers call."""
    settings = settings or Settings()
    runtime = ServiceRuntime(service=SERVICE, schema=SCHEMA, settings=settings, migrations_dir=MIGRATIONS)
    routers = [enable_pings(runtime)]
    return create_service_app(runtime, title="dialguard suppression", routers=routers)
