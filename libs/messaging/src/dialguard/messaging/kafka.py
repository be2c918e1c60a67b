"""Kafka client factories with the settings every service shares (Tansu-safe: no idempotence)."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker


@dataclass(frozen=True)
class ConsumerTuning:
    """Group-join and fetch timings; tests and local runs use short ones (see INFRA.md)."""

    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    fetch_max_wait_ms: int = 500
    max_records: int = 1_000
    batch_timeout_ms: int = 10


def make_broker(bootstrap: str, *, client_id: str) -> KafkaBroker:
    """The FastStream broker subscribers attach to."""
    return KafkaBroker(bootstrap, client_id=client_id, enable_idempotence=False)


async def start_producer(bootstrap: str, *, client_id: str) -> AIOKafkaProducer:
    """A raw aiokafka producer for the outbox relay and DLQ: batched sends, acks from all replicas."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        linger_ms=2,
        max_batch_size=512 * 1024,
        request_timeout_ms=15_000,
        enable_idempotence=False,
    )
    await producer.start()
    return producer
