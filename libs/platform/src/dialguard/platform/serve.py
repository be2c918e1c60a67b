"""Runs a service app under uvicorn with the settings' host, port and worker count (python -m dialguard.<pkg>)."""

from __future__ import annotations

import uvicorn

from dialguard.platform.settings import ServiceSettings


def serve(factory: str, settings: ServiceSettings) -> None:
    """uvloop + httptools, no access log (metrics carry latency); HTTP_WORKERS processes share the port."""
    uvicorn.run(
        factory,
        factory=True,
        host=settings.HTTP_HOST,
        port=settings.HTTP_PORT,
        workers=settings.HTTP_WORKERS,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=settings.LOG_LEVEL.lower(),
        timeout_graceful_shutdown=10,
    )
