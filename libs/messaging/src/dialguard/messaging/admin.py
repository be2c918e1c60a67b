"""Creates topics with their intended partition counts before services start (auto-creation picks others)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

_RETRY_INTERVAL = 0.25


class TopicSetupError(RuntimeError):
    """The broker did not answer, or refused to create a topic, within the allowed time."""


class TopicPartitionsError(TopicSetupError):
    """A topic exists with fewer partitions than wanted (auto-created early): waiting will not fix it."""


async def ensure_topics(bootstrap: str, topics: Mapping[str, int], *, timeout: float = 30.0) -> None:
    """Create the missing topics (replication 1) and wait until all are visible; safe to run repeatedly."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            await _ensure_once(bootstrap, topics, deadline)
            return
        except TopicPartitionsError:
            raise
        except (KafkaError, OSError, TopicSetupError) as exc:
            last_error = exc
        if loop.time() >= deadline:
            raise TopicSetupError(
                f"could not create topics on {bootstrap} within {timeout:.0f}s: {last_error!r}"
            ) from last_error
        await asyncio.sleep(_RETRY_INTERVAL)


async def _ensure_once(bootstrap: str, topics: Mapping[str, int], deadline: float) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name=name, num_partitions=partitions, replication_factor=1)
            for name, partitions in topics.items()
            if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, *_ in response.topic_errors:
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(code)(f"creating topic {name}")
        await _wait_visible(admin, topics, deadline)
    finally:
        await admin.close()


async def _wait_visible(admin: AIOKafkaAdminClient, topics: Mapping[str, int], deadline: float) -> None:
    """Creation is asynchronous on a real Kafka cluster: a producer must not race it into auto-creation."""
    loop = asyncio.get_running_loop()
    while True:
        described = await admin.describe_topics(list(topics))
        found = {
            t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0 and t["partitions"]
        }
        short = {name: count for name, count in found.items() if count < topics[name]}
        if short:
            raise TopicPartitionsError(
                "topics exist with fewer partitions than wanted (created before ensure_topics ran?): "
                + ", ".join(
                    f"{name} has {count}, wants {topics[name]}" for name, count in sorted(short.items())
                )
            )
        ready = set(found)
        pending = sorted(set(topics) - ready)
        if not pending:
            return
        if loop.time() >= deadline:
            raise TopicSetupError(f"topics not visible yet: {pending}")
        await asyncio.sleep(_RETRY_INTERVAL)
