"""Runs real service processes for integration and e2e tests (python -m dialguard.<pkg>), SIGKILL included."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from dialguard.db.provision import SERVICE_SCHEMAS, provision_service_db

PACKAGES = dict(SERVICE_SCHEMAS)


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def create_database(admin_url: str, name: str | None = None) -> str:
    """A fresh database for one test (isolation without restarting Postgres); returns its admin URL."""
    name = name or f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


async def provision_all(admin_url: str) -> dict[str, str]:
    """Provision every service's role and schema in this database; service name -> its DSN."""
    return {
        service: await provision_service_db(
            admin_url, schema=schema, role=f"dg_{schema}", password=f"pw-{schema}"
        )
        for service, schema in SERVICE_SCHEMAS.items()
    }


class ServiceProcess:
    """One service as a child process, reachable at base_url once ready."""

    def __init__(self, service: str, env: dict[str, str], log_dir: Path) -> None:
        self.service = service
        self.port = int(env.get("HTTP_PORT") or free_port())
        self.env = {**os.environ, **env, "HTTP_PORT": str(self.port)}
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{service}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn and wait until /health/ready answers 200."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        module = "dialguard." + PACKAGES[self.service]
        # Own process group: uvicorn workers die with their master, even on SIGKILL.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module], env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            await self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll readiness; fail with the log tail if the process dies or never gets ready."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while asyncio.get_running_loop().time() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.service} exited: {self.tail()}")
                try:
                    if (await client.get(f"{self.base_url}/health/ready")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.service} not ready in {timeout}s: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no offset commits, nothing flushed."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    async def stop(self) -> None:
        """Graceful stop (SIGTERM), SIGKILL after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, 15)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 40) -> str:
        """Last lines of the process log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def service_env(
    *,
    kafka: str,
    database_url: str,
    redis_url: str,
    secret: str,
    group_suffix: str = "",
    **extra: Any,
) -> dict[str, str]:
    """Environment of a service under test: short group-join timings (INFRA.md), unique consumer groups."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AUTH_JWT_SECRET": secret,
        "LOG_LEVEL": "WARNING",
        "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "CONSUMER_GROUP_SUFFIX": group_suffix,
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env
