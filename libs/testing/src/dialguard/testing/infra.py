"""Where the tests' broker, Postgres and Redis come from: given URLs, else Docker, else local processes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from dialguard.events.topics import TOPICS
from dialguard.messaging.admin import ensure_topics
from dialguard.testing.local_stack import LocalStack

log = logging.getLogger(__name__)

ENV_KAFKA: Literal["TEST_KAFKA_BOOTSTRAP_SERVERS"] = "TEST_KAFKA_BOOTSTRAP_SERVERS"
ENV_DATABASE: Literal["TEST_DATABASE_URL"] = "TEST_DATABASE_URL"
ENV_REDIS: Literal["TEST_REDIS_URL"] = "TEST_REDIS_URL"
Source = Literal["env", "docker", "local"]
T = TypeVar("T")


@dataclass
class Infra:
    """Addresses of the session's real servers; `stack` is set when they are this process's children."""

    kafka_bootstrap: str
    postgres_admin_url: str
    redis_url: str
    stack: LocalStack | None = None
    source: Source = "env"
    _cleanups: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self, *, keep_files: bool = False) -> None:
        """Stop whatever this object started (containers, local processes); URLs from env are left alone."""
        while self._cleanups:
            with contextlib.suppress(Exception):
                self._cleanups.pop()()
        if self.stack is not None:
            if keep_files:
                self.stack.stop()
            else:
                self.stack.destroy()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, in a thread, so no caller's event loop is touched."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def infra_from_env(env: Mapping[str, str]) -> Infra | None:
    """Servers someone else runs (CI services, a shared dev stack): used only when all three are named."""
    kafka, database, redis = env.get(ENV_KAFKA), env.get(ENV_DATABASE), env.get(ENV_REDIS)
    if kafka and database and redis:
        return Infra(kafka_bootstrap=kafka, postgres_admin_url=database, redis_url=redis, source="env")
    return None


def docker_available(timeout: float = 2.0) -> bool:
    """True only when a Docker engine answers a ping quickly (a CLI without a daemon does not count)."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=int(max(1, timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def start_containers() -> Infra:
    """Kafka (KRaft), PostgreSQL 16 and Redis in throwaway containers."""
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer

    started: list[Any] = []
    try:
        kafka = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
        kafka.start()
        started.append(kafka)
        postgres = PostgresContainer("postgres:16-alpine", driver=None).with_command(
            "postgres -c max_connections=300 -c fsync=off -c synchronous_commit=off"
        )
        postgres.start()
        started.append(postgres)
        redis = RedisContainer("redis:7-alpine")
        redis.start()
        started.append(redis)
    except BaseException:
        for container in reversed(started):
            with contextlib.suppress(Exception):
                container.stop()
        raise
    redis_host = redis.get_container_host_ip()
    infra = Infra(
        kafka_bootstrap=kafka.get_bootstrap_server(),
        postgres_admin_url=postgres.get_connection_url(),
        redis_url=f"redis://{redis_host}:{redis.get_exposed_port(6379)}/0",
        source="docker",
    )
    infra._cleanups.extend(container.stop for container in started)
    return infra


def start_local(base_dir: Path) -> Infra:
    """Tansu, PostgreSQL and Redis as child processes on free ports, state under base_dir."""
    stack = LocalStack(base_dir)
    stack.start()
    return Infra(
        kafka_bootstrap=stack.kafka_bootstrap,
        postgres_admin_url=stack.postgres_admin_url,
        redis_url=stack.redis_url,
        stack=stack,
        source="local",
    )


def acquire_infra(base_dir: Path, env: Mapping[str, str] | None = None) -> Infra:
    """The first that works of: env URLs, Docker containers, local processes; with every topic created."""
    env = os.environ if env is None else env
    infra = infra_from_env(env)
    if infra is None and docker_available():
        try:
            infra = start_containers()
        except Exception as exc:
            log.warning("Docker answers but containers failed (%s); using local processes", exc)
    if infra is None:
        infra = start_local(base_dir)
    try:
        run_sync(ensure_topics(infra.kafka_bootstrap, TOPICS))
    except BaseException:
        infra.close(keep_files=True)
        raise
    return infra


@contextlib.contextmanager
def provide_infra(base_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[Infra]:
    """acquire_infra for a with-block; local files are removed afterwards."""
    infra = acquire_infra(base_dir, env)
    try:
        yield infra
    finally:
        infra.close()
