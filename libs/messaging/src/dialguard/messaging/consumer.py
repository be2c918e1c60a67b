"""Batch consumers that apply each event once: inbox + effect in one transaction, commit after, DLQ poison.

FastStream's Kafka default acknowledges before processing; every subscriber here uses
NACK_ON_ERROR instead: the batch's offsets are committed only after `process` returns, i.e. after
the DB transaction committed. An infrastructure failure (DB or broker down) raises, which rewinds
the partition so the batch is fetched again later. A message that cannot be parsed, or whose
processing fails on its own after bounded retries, goes to `dlq.<service>.v1` and the partition
moves on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from dialguard.events import Envelope, dumps
from dialguard.events.topics import dlq_topic
from dialguard.messaging import inbox
from dialguard.messaging.kafka import ConsumerTuning
from dialguard.messaging.metrics import (
    BATCH_SECONDS,
    CONSUMER_LAG,
    EVENTS_DUPLICATE,
    EVENTS_FAILED,
    EVENTS_PROCESSED,
)

log = structlog.get_logger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    ConnectionError,
    OSError,
    TimeoutError,
)


@dataclass(slots=True)
class ConsumedEvent:
    """A parsed envelope with where it came from."""

    envelope: Envelope
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes


@dataclass
class Batch:
    """What a handler gets: the transaction's connection, the new events, and post-commit hooks."""

    conn: asyncpg.Connection
    events: list[ConsumedEvent]
    _after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def after_commit(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run hook once the effect is durable (e.g. wake a relay, refresh a cache)."""
        self._after_commit.append(hook)


BatchHandler = Callable[[Batch], Awaitable[None]]


class DeadLetters:
    """Publishes DeadLetter envelopes to the service's DLQ topic and waits for the broker's ack."""

    def __init__(self, producer: AIOKafkaProducer, *, service: str) -> None:
        self._producer = producer
        self._service = service
        self.topic = dlq_topic(service)

    async def send(self, *, record: Any, error: str, consumer: str, account_id: str | None) -> None:
        """Durably park one message; raises if the broker does not take it (so we do not commit)."""
        raw: bytes = record.value or b""
        key: bytes | None = record.key
        envelope = Envelope(
            event_type="DeadLetter",
            account_id=account_id or "unknown",
            producer=self._service,
            payload={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": key.decode("utf-8", "replace") if key is not None else None,
                "value": raw.decode("utf-8", "replace"),
                "error": error[:2000],
                "consumer": consumer,
            },
        )
        await self._producer.send_and_wait(
            self.topic,
            value=envelope.to_bytes(),
            key=key,
            headers=[("event_type", b"DeadLetter"), ("error", error[:200].encode())],
        )
        EVENTS_FAILED.labels(consumer, error.split(":", 1)[0][:40]).inc()
        log.warning("dead-lettered", consumer=consumer, topic=record.topic, offset=record.offset, error=error)


class EventConsumer:
    """Applies batches through a handler with exactly-once effects per consumer name."""

    def __init__(
        self,
        *,
        name: str,
        pool: asyncpg.Pool,
        handler: BatchHandler,
        dead_letters: DeadLetters,
        max_attempts: int = 3,
        retry_delay_s: float = 0.05,
        transient: tuple[type[BaseException], ...] = (),
        event_types: frozenset[str] | None = None,
    ) -> None:
        self.name = name
        self._pool = pool
        self._handler = handler
        self._dlq = dead_letters
        self._max_attempts = max_attempts
        self._retry_delay_s = retry_delay_s
        self._transient = TRANSIENT_ERRORS + transient
        self._event_types = event_types

    async def process(self, records: Sequence[Any]) -> None:
        """Parse, apply with retries, dead-letter what cannot be applied; return only when durable."""
        started = time.perf_counter()
        parsed: list[ConsumedEvent] = []
        for record in records:
            try:
                envelope = Envelope.from_bytes(record.value or b"")
            except Exception as exc:
                await self._dlq.send(
                    record=record, error=f"unparseable: {exc}", consumer=self.name, account_id=None
                )
                continue
            if self._event_types is not None and envelope.event_type not in self._event_types:
                await self._dlq.send(
                    record=record,
                    error=f"unknown_event_type: {envelope.event_type}",
                    consumer=self.name,
                    account_id=envelope.account_id,
                )
                continue
            parsed.append(
                ConsumedEvent(
                    envelope, record.topic, record.partition, record.offset, record.key, record.value
                )
            )
        if parsed:
            await self._apply_with_retries(parsed, records)
        BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def _apply_with_retries(self, events: list[ConsumedEvent], records: Sequence[Any]) -> None:
        error: BaseException | None = None
        for attempt in range(self._max_attempts):
            try:
                await self._apply(events)
                return
            except self._transient:
                await asyncio.sleep(1.0)  # outage: rewind the partition and try again later
                raise
            except Exception as exc:
                error = exc
                log.info("batch failed, retrying", consumer=self.name, attempt=attempt + 1, error=repr(exc))
                await asyncio.sleep(self._retry_delay_s * (2**attempt))
        if len(events) > 1:
            for event in events:  # isolate the poison message(s); the others still apply once
                await self._apply_with_retries([event], records)
            return
        event = events[0]
        record = next(r for r in records if r.offset == event.offset and r.partition == event.partition)
        await self._dlq.send(
            record=record,
            error=f"processing_failed: {error!r}",
            consumer=self.name,
            account_id=event.envelope.account_id,
        )

    async def _apply(self, events: list[ConsumedEvent]) -> None:
        async with self._pool.acquire() as conn:
            batch = Batch(conn=conn, events=[])
            async with conn.transaction():
                fresh = await inbox.claim(conn, self.name, [e.envelope.event_id for e in events])
                seen: set[uuid.UUID] = set()
                for event in events:
                    event_id = event.envelope.event_id
                    if event_id in fresh and event_id not in seen:
                        seen.add(event_id)
                        batch.events.append(event)
                if batch.events:
                    await self._handler(batch)
        skipped = len(events) - len(batch.events)
        if skipped:
            EVENTS_DUPLICATE.labels(self.name).inc(skipped)
        for event in batch.events:
            EVENTS_PROCESSED.labels(self.name, event.topic).inc()
        for hook in batch._after_commit:
            await hook()


async def _raw_decoder(msg: Any) -> Any:
    """Keep bytes: parsing happens per message inside process(), so one bad message cannot stall a batch."""
    return msg.body


def subscribe(
    target: KafkaBroker | KafkaRouter,
    consumer: EventConsumer,
    *topics: str,
    group_id: str,
    tuning: ConsumerTuning,
) -> None:
    """Attach a batch subscriber with an explicit ack policy: commit offsets after the effect is durable."""

    @target.subscriber(  # type: ignore[misc]
        *topics,
        batch=True,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        session_timeout_ms=tuning.session_timeout_ms,
        heartbeat_interval_ms=tuning.heartbeat_interval_ms,
        fetch_max_wait_ms=tuning.fetch_max_wait_ms,
        max_records=tuning.max_records,
        batch_timeout_ms=tuning.batch_timeout_ms,
        decoder=_raw_decoder,
        title=f"{consumer.name}:{','.join(topics)}",
    )
    async def _handle(msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        await consumer.process(records)
        _report_lag(consumer.name, msg, records)


def _report_lag(name: str, msg: Any, records: Sequence[Any]) -> None:
    kafka_consumer = getattr(msg, "consumer", None)
    if kafka_consumer is None or not hasattr(kafka_consumer, "highwater"):
        return
    last: dict[tuple[str, int], int] = {}
    for r in records:
        last[(r.topic, r.partition)] = max(last.get((r.topic, r.partition), -1), r.offset)
    for (topic, partition), offset in last.items():
        high = kafka_consumer.highwater(TopicPartition(topic, partition))
        if high is not None:
            CONSUMER_LAG.labels(name, topic, str(partition)).set(max(0, high - offset - 1))


__all__ = ["Batch", "ConsumedEvent", "DeadLetters", "EventConsumer", "dumps", "subscribe"]
