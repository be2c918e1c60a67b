"""Runs a service app under uvicorn with the settings' host and port (python -m dialguard.<service>)."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from dialguard.platform.settings import ServiceSettings


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """uvloop + httptools, no access log (metrics carry the latency), graceful shutdown."""
    uvicorn.run(
        app,
        host=settings.HTTP_HOST,
        port=settings.HTTP_PORT,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=settings.LOG_LEVEL.lower(),
        timeout_graceful_shutdown=10,
    )
