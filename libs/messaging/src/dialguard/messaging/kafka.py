"""Kafka client factories with the settings every service shares (Tansu-safe: no idempotence)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber


@dataclass(frozen=True)
class ConsumerTuning:
    """Group-join and fetch timings; tests and local runs use short ones (see INFRA.md)."""

    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    fetch_max_wait_ms: int = 25
    max_records: int = 1_000
    batch_timeout_ms: int = 250


async def _get_batch(self: Any, consumer: AIOKafkaConsumer) -> tuple[Any, ...]:
    """A batch as soon as records arrive, else () after batch_timeout_ms."""
    messages = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
    return tuple(chain(*messages.values()))


def _poll_without_idle_sleep() -> None:
    """FastStream's batch loop sleeps another batch_timeout_ms after an empty poll, although getmany
    already waited that long and returns the moment records arrive: a record landing in that sleep
    waits for nothing. Without the sleep a long poll costs no latency, so idle subscribers wake a
    few times a second instead of fifty (the loop's own code only awaits get_msg and skips ())."""
    if not hasattr(BatchSubscriber, "get_msg"):
        raise RuntimeError("FastStream's BatchSubscriber changed: review _poll_without_idle_sleep")
    setattr(BatchSubscriber, "get_msg", _get_batch)  # noqa: B010 (a method swap mypy would refuse)


_poll_without_idle_sleep()


def make_broker(bootstrap: str, *, client_id: str) -> KafkaBroker:
    """The FastStream broker subscribers attach to.

    Its per-message 'Received'/'Processed' lines go to DEBUG: at thousands of events a second they
    cost consumer time and bury the service's own logs; failures are still logged as errors.
    """
    return KafkaBroker(bootstrap, client_id=client_id, enable_idempotence=False, log_level=logging.DEBUG)


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
