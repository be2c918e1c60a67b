"""Publishes committed outbox rows to Kafka in batches; woken by NOTIFY so latency is milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import Mapping
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer

from dialguard.db.pool import connect
from dialguard.events.topics import TOPICS
from dialguard.messaging.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from dialguard.messaging.outbox import notify_channel
from dialguard.messaging.partitioning import partitions_for_keys

log = structlog.get_logger(__name__)


class TopicLayoutMismatch(RuntimeError):
    """The broker's partition count for a topic is not the contract's: publishing by key would misroute."""


class OutboxRelay:
    """One leader per schema (advisory lock) keeps per-key order; rows are deleted after the broker acks.

    Before a batch it re-reads the brokers' metadata (at most once per metadata_refresh_s) and refuses
    a topic whose partition count is not the contract's: rows then stay in the outbox and the relay
    retries. Partitioning by key over a wrong count breaks per-key order, and a broker may even ack
    a produce to a partition the topic does not have — Tansu's memory storage does, after a restart
    auto-created topics with its default count while this producer still held the old metadata:
    acked, deleted from the outbox, and never readable (docs/hardening.md).
    """

    def __init__(
        self,
        *,
        dsn: str,
        pool: asyncpg.Pool,
        schema: str,
        producer: AIOKafkaProducer,
        batch_size: int = 1000,
        idle_poll_s: float = 1.0,
        layout: Mapping[str, int] = TOPICS,
        metadata_refresh_s: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._schema = schema
        self._producer = producer
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.is_leader = False
        self._lock_key = zlib.crc32(f"outbox:{schema}".encode())
        self._layout = layout
        self._metadata_refresh_s = metadata_refresh_s
        self._metadata_at = float("-inf")

    def start(self) -> None:
        """Run in the background until stop()."""
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        """Cancel the loop; unpublished rows stay in the outbox for the next leader."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def wake(self) -> None:
        """Let in-process writers skip the NOTIFY round trip."""
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            listen: asyncpg.Connection | None = None
            try:
                listen = await connect(self._dsn)
                while not await listen.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                    self.is_leader = False
                    await asyncio.sleep(2)
                self.is_leader = True
                await listen.add_listener(notify_channel(self._schema), self._on_notify)
                backoff = 0.2
                await self._pump(listen)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or DB outage: keep rows, retry with backoff
                log.warning("outbox relay error", schema=self._schema, error=repr(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self.is_leader = False
                if listen is not None:
                    with contextlib.suppress(Exception):
                        await listen.close()

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def _pump(self, listen: asyncpg.Connection) -> None:
        while True:
            self._wake.clear()
            published = await self.publish_batch()
            if published >= self._batch_size:
                continue
            if listen.is_closed():
                raise ConnectionError("listen connection lost")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._idle_poll_s)
            if not self._wake.is_set():
                OUTBOX_BACKLOG.labels(self._schema).set(await self.backlog())

    async def publish_batch(self) -> int:
        """Publish up to batch_size rows in id order and delete them, all or nothing."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, topic, key, value, event_type, correlation_id FROM outbox
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self._batch_size,
            )
            if not rows:
                return 0
            await asyncio.gather(*await self._send(rows))
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        OUTBOX_PUBLISHED.labels(self._schema).inc(len(rows))
        return len(rows)

    async def _send(self, rows: list[asyncpg.Record]) -> list[asyncio.Future[Any]]:
        """Queue rows as per-partition batches (Kafka's key partitioning, vectorised), in row order.

        One BatchBuilder per topic-partition instead of producer.send per row: send() costs ~30 us a
        message (partitioner, accumulator bookkeeping), more than everything else the relay does.
        """
        by_topic: dict[str, list[asyncpg.Record]] = {}
        for row in rows:
            by_topic.setdefault(row["topic"], []).append(row)
        futures: list[asyncio.Future[Any]] = []
        await self._fresh_metadata()
        for topic, topic_rows in by_topic.items():
            count = len(await self._producer.partitions_for(topic))
            expected = self._layout.get(topic)
            if expected is not None and count != expected:
                raise TopicLayoutMismatch(
                    f"{topic} has {count} partitions on the broker, the contract says {expected}: "
                    "not publishing (rows stay in the outbox) until the topic is recreated"
                )
            partitions = partitions_for_keys([r["key"] for r in topic_rows], count)
            builders: dict[int, Any] = {}
            for row, partition in zip(topic_rows, partitions, strict=True):
                headers = [("event_type", row["event_type"].encode())]
                if row["correlation_id"] is not None:
                    headers.append(("correlation_id", row["correlation_id"].encode()))
                builder = builders.get(partition)
                if builder is None:
                    builder = builders[partition] = self._producer.create_batch()
                if (
                    builder.append(timestamp=None, key=row["key"], value=row["value"], headers=headers)
                    is None
                ):
                    futures.append(await self._producer.send_batch(builder, topic, partition=partition))
                    builder = builders[partition] = self._producer.create_batch()
                    if (
                        builder.append(timestamp=None, key=row["key"], value=row["value"], headers=headers)
                        is None
                    ):
                        raise ValueError(f"outbox row {row['id']} is larger than a producer batch")
            for partition, builder in builders.items():
                futures.append(await self._producer.send_batch(builder, topic, partition=partition))
        return futures

    async def _fresh_metadata(self) -> None:
        """Metadata no older than metadata_refresh_s: a restarted or replaced broker is noticed at once."""
        now = time.monotonic()
        if now - self._metadata_at >= self._metadata_refresh_s:
            if not await self._producer.client.force_metadata_update():
                raise ConnectionError(
                    "broker metadata could not be refreshed; not publishing on stale metadata"
                )
            self._metadata_at = now

    async def backlog(self) -> int:
        """Rows waiting to be published (an ops signal: it should hover near zero)."""
        async with self._pool.acquire() as conn:
            value = await conn.fetchval("SELECT count(*) FROM outbox")
        return int(value)
