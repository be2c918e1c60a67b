"""The composition root's moving parts: pool, migrations, outbox relay, producer, broker, readiness."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from dialguard.db.migrations import apply_migrations, pending
from dialguard.db.pool import create_pool
from dialguard.messaging.consumer import BatchHandler, DeadLetters, EventConsumer, subscribe
from dialguard.messaging.kafka import make_broker, start_producer
from dialguard.messaging.outbox import SQL_DIR as MESSAGING_SQL
from dialguard.messaging.outbox import EncodedEvent, OutgoingEvent, enqueue
from dialguard.messaging.relay import OutboxRelay
from dialguard.platform.consumer_slots import ConsumerSlot
from dialguard.platform.settings import ServiceSettings

log = structlog.get_logger(__name__)
PLATFORM_SQL = Path(__file__).parent / "sql"

ReadinessCheck = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class _Subscription:
    name: str
    topics: tuple[str, ...]
    handler: BatchHandler
    event_types: frozenset[str] | None
    transient: tuple[type[BaseException], ...]


@dataclass
class ServiceRuntime:
    """Everything a service needs at run time, started and stopped in order by the app's lifespan."""

    service: str
    schema: str
    settings: ServiceSettings
    migrations_dir: Path
    pool: asyncpg.Pool = field(init=False)
    producer: AIOKafkaProducer = field(init=False)
    relay: OutboxRelay = field(init=False)
    broker: KafkaBroker = field(init=False)
    dead_letters: DeadLetters = field(init=False)
    checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    _subscriptions: list[_Subscription] = field(default_factory=list)
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _broker_ok: tuple[float, bool] = (0.0, False)
    _slot: ConsumerSlot | None = None

    def consume(
        self,
        name: str,
        topics: Sequence[str],
        handler: BatchHandler,
        *,
        event_types: Sequence[str] | None = None,
        transient: tuple[type[BaseException], ...] = (),
    ) -> None:
        """Declare a batch consumer; it is attached to the broker at start()."""
        self._subscriptions.append(
            _Subscription(
                name, tuple(topics), handler, frozenset(event_types) if event_types else None, transient
            )
        )

    def background(self, factory: Callable[[], Awaitable[None]]) -> None:
        """Run a long-lived task (sweeper, scheduler) between start() and stop()."""
        self._background.append(asyncio.create_task(factory()))  # type: ignore[arg-type]

    async def start(self) -> None:
        """Connect, migrate, start relay and consumers; waits for Postgres and the broker (bounded)."""
        s = self.settings
        self.pool = await _retry(
            lambda: create_pool(s.DATABASE_URL, max_size=s.DB_POOL_MAX, schema=self.schema), "postgres"
        )
        async with self.pool.acquire() as conn:
            applied = await apply_migrations(
                conn, schema=self.schema, directories=[MESSAGING_SQL, PLATFORM_SQL, self.migrations_dir]
            )
        if applied:
            log.info("migrations applied", versions=applied)
        self.producer = await _retry(
            lambda: start_producer(s.KAFKA_BOOTSTRAP_SERVERS, client_id=self.service), "broker"
        )
        self.dead_letters = DeadLetters(self.producer, service=self.service)
        self.relay = OutboxRelay(
            dsn=s.DATABASE_URL, pool=self.pool, schema=self.schema, producer=self.producer
        )
        self.relay.start()
        self.broker = make_broker(s.KAFKA_BOOTSTRAP_SERVERS, client_id=self.service)
        for sub in self._subscriptions:
            consumer = EventConsumer(
                name=sub.name,
                pool=self.pool,
                handler=sub.handler,
                dead_letters=self.dead_letters,
                event_types=sub.event_types,
                transient=sub.transient,
            )
            group = f"{self.service}.{sub.name}{s.CONSUMER_GROUP_SUFFIX}"
            subscribe(self.broker, consumer, *sub.topics, group_id=group, tuning=s.consumer_tuning())
        if s.HTTP_WORKERS <= s.CONSUMER_WORKERS:
            await self.broker.start()
            return
        # More HTTP workers than consumers wanted: the first to take a slot consumes, the others wait
        # for a slot to free up (consumer_slots.py says why).
        slot = self._slot = ConsumerSlot(self.service, s.HTTP_PORT, s.CONSUMER_WORKERS)
        if slot.claim():
            await self.broker.start()
        else:
            self.background(lambda: slot.wait_and_run(self.broker.start))

    async def stop(self) -> None:
        """Stop consumers first (their offsets are committed only after effects), then the relay."""
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self.broker.stop()
        if self._slot is not None:
            self._slot.release()
        with contextlib.suppress(Exception):
            await self.relay.stop()
        with contextlib.suppress(Exception):
            await self.producer.stop()
        with contextlib.suppress(Exception):
            await self.pool.close()

    async def publish(self, conn: asyncpg.Connection, events: Sequence[OutgoingEvent | EncodedEvent]) -> None:
        """Queue events in the caller's transaction (outbox); they leave after commit."""
        await enqueue(conn, events, schema=self.schema)

    async def readiness(self) -> dict[str, dict[str, Any]]:
        """Each dependency's state; ready only when all are ok."""
        results: dict[str, dict[str, Any]] = {}
        results["postgres"] = await self._check_postgres()
        results["broker"] = await self._check_broker()
        for name, check in self.checks.items():
            try:
                results[name] = await asyncio.wait_for(check(), 2.0)
            except Exception as exc:
                results[name] = {"ok": False, "error": repr(exc)}
        return results

    async def _check_postgres(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(2.0):
                async with self.pool.acquire() as conn:
                    missing = await pending(
                        conn,
                        schema=self.schema,
                        directories=[MESSAGING_SQL, PLATFORM_SQL, self.migrations_dir],
                    )
            if missing:
                return {"ok": False, "error": f"migrations pending: {missing}"}
            return {"ok": True}
        except Exception as exc:
            return {"ok": False, "error": f"unreachable: {exc!r}"}

    async def _check_broker(self) -> dict[str, Any]:
        at, ok = self._broker_ok
        if time.monotonic() - at < 1.0 and ok:
            return {"ok": True}
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), 2.0)
            self._broker_ok = (time.monotonic(), True)
            return {"ok": True}
        except Exception as exc:
            self._broker_ok = (time.monotonic(), False)
            return {"ok": False, "error": f"unreachable: {exc!r}"}


async def _retry(factory: Callable[[], Awaitable[Any]], what: str, attempts: int = 60) -> Any:
    """Dependencies may come up after us (compose, k8s): wait for them, bounded."""
    for attempt in range(attempts):
        try:
            return await factory()
        except Exception as exc:
            if attempt == attempts - 1:
                raise
            log.warning("waiting for dependency", dependency=what, error=repr(exc))
            await asyncio.sleep(1.0)
    raise RuntimeError("unreachable")
