"""Composition root of the contact-list service: wires runtime, consumers and routes."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from dialguard.contact_list.config import Settings
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
    routers = [enable_pings(runtime)]
    return create_service_app(runtime, title="dialguard contact-list", routers=routers)
