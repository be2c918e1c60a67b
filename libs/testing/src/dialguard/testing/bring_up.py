"""Servers for a running system (`make run`): local processes unless the environment names existing ones."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialguard.db.provision import SERVICE_SCHEMAS, provision_service_db, role_name
from dialguard.events.topics import TOPICS
from dialguard.messaging.admin import ensure_topics
from dialguard.testing.local_stack import BROKER, POSTGRES, REDIS, LocalStack

REPO = Path(__file__).resolve().parents[5]
DEFAULT_BASE = REPO / ".local" / "stack"
ENV_NAMES: dict[str, str] = {
    BROKER: "KAFKA_BOOTSTRAP_SERVERS",
    POSTGRES: "DATABASE_URL",
    REDIS: "REDIS_URL",
}


@dataclass
class StackHandle:
    """What services need to connect (each its own role-limited DSN); stop() ends what bring_up started."""

    kafka_bootstrap: str
    postgres_admin_url: str
    redis_url: str
    service_dsns: dict[str, str]
    base_dir: Path
    stack: LocalStack | None = None
    started: tuple[str, ...] = field(default=())

    def service_env(self, service: str) -> dict[str, str]:
        """The connection settings of one service, as the environment variables it reads."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "DATABASE_URL": self.service_dsns[service],
            "REDIS_URL": self.redis_url,
        }

    def stop(self) -> None:
        """Stop the locally started servers (data stays for the next run); external ones are untouched."""
        (self.base_dir / "stack.json").unlink(missing_ok=True)
        if self.stack is not None:
            self.stack.stop()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)


async def bring_up(
    base_dir: str | os.PathLike[str] = DEFAULT_BASE,
    *,
    kafka_port: int = 9092,
    postgres_port: int = 5432,
    redis_port: int = 6379,
    env: Mapping[str, str] | None = None,
    topics: Mapping[str, int] | None = None,
) -> StackHandle:
    """Start what the environment does not name, provision every service's role and schema, create topics."""
    env = os.environ if env is None else env
    base = await asyncio.to_thread(_prepare_base, base_dir)
    external = {component: env.get(name) or None for component, name in ENV_NAMES.items()}
    to_start = tuple(c for c, url in external.items() if url is None)
    stack = None
    if to_start:
        stack = LocalStack(base, kafka_port=kafka_port, postgres_port=postgres_port, redis_port=redis_port)
    try:
        if stack is not None:
            await asyncio.to_thread(stack.start, to_start)
        kafka = external[BROKER] or _local(stack).kafka_bootstrap
        admin_url = external[POSTGRES] or _local(stack).postgres_admin_url
        redis_url = external[REDIS] or _local(stack).redis_url
        await ensure_topics(kafka, TOPICS if topics is None else topics)
        passwords = await asyncio.to_thread(service_passwords, base / "secrets.json")
        dsns = {
            service: await provision_service_db(
                admin_url, schema=schema, role=role_name(schema), password=passwords[service]
            )
            for service, schema in SERVICE_SCHEMAS.items()
        }
    except BaseException:
        if stack is not None:
            stack.stop()
        raise
    handle = StackHandle(
        kafka_bootstrap=kafka,
        postgres_admin_url=admin_url,
        redis_url=redis_url,
        service_dsns=dsns,
        base_dir=base,
        stack=stack,
        started=to_start,
    )
    await asyncio.to_thread(_write_private, base / "stack.json", _state(handle))
    return handle


def _prepare_base(base_dir: str | os.PathLike[str]) -> Path:
    base = Path(base_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    return base


def _local(stack: LocalStack | None) -> LocalStack:
    assert stack is not None, "a component without an external URL is started locally"
    return stack


def service_passwords(path: Path) -> dict[str, str]:
    """Each service role's password, generated on first use and kept (0600) so restarts reuse it."""
    try:
        stored: dict[str, str] = json.loads(path.read_text())
    except FileNotFoundError:
        stored = {}
    missing = [s for s in SERVICE_SCHEMAS if not stored.get(s)]
    if missing:
        stored.update({service: secrets.token_urlsafe(24) for service in missing})
        _write_private(path, stored)
    return stored


def _state(handle: StackHandle) -> dict[str, Any]:
    """What other tools (migrations, run) read to find the running stack."""
    return {
        "pid": os.getpid(),
        "kafka_bootstrap": handle.kafka_bootstrap,
        "postgres_admin_url": handle.postgres_admin_url,
        "redis_url": handle.redis_url,
        "service_dsns": handle.service_dsns,
        "started": list(handle.started),
    }


def _write_private(path: Path, data: Mapping[str, Any]) -> None:
    """Atomic write, readable by the owner only: the files hold passwords."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
