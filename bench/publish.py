"""Publishing a bench's pre-encoded events fast enough that the publisher is not what gets measured."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from dialguard.messaging.partitioning import partitions_for_keys


async def publish_batches(
    producer: AIOKafkaProducer, topic: str, events: Sequence[tuple[bytes, bytes]], event_type: str
) -> list[asyncio.Future[Any]]:
    """Per-partition producer batches of (key, value), partitioned by key as the outbox relay does (so
    the publisher, sharing the machine's two cores with the service, is not what the bench measures)."""
    count = len(await producer.partitions_for(topic))
    partitions = partitions_for_keys([key for key, _ in events], count)
    headers = [("event_type", event_type.encode())]
    futures: list[asyncio.Future[Any]] = []
    builders: dict[int, Any] = {}
    for (key, value), partition in zip(events, partitions, strict=True):
        builder = builders.get(partition)
        if builder is None or builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            if builder is not None:
                futures.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = producer.create_batch()
            builder.append(timestamp=None, key=key, value=value, headers=headers)
    for partition, builder in builders.items():
        futures.append(await producer.send_batch(builder, topic, partition=partition))
    return futures
