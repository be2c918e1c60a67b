"""Foundation guarantees on the real stack: outbox, inbox, DLQ, crash safety, readiness, auth."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dialguard.db.pool import create_pool
from dialguard.events import Envelope
from dialguard.events.topics import OPS_PINGS, dlq_topic
from dialguard.messaging.kafka import start_producer
from dialguard.messaging.outbox import OutgoingEvent, enqueue
from dialguard.messaging.relay import OutboxRelay
from dialguard.testing.fixtures import REPO, StartService
from dialguard.testing.helpers import SECRET, auth, wait_for
from dialguard.testing.services import ServiceProcess, provision_all, service_env


def ping_envelope(account: str = "acme") -> Envelope:
    return Envelope(
        event_type="Ping",
        account_id=account,
        producer="test",
        payload={"ping_id": str(uuid.uuid4()), "origin": "test"},
    )


async def test_ping_crosses_services_once_through_outbox_and_inbox(start_service: StartService) -> None:
    sup = await start_service("suppression")
    cl = await start_service("contact-list")
    async with httpx.AsyncClient() as client:
        created = await client.post(f"{sup.base_url}/v1/pings", json={"note": "hello"}, headers=auth())
        assert created.status_code == 201
        ping_id = created.json()["id"]

        async def received() -> Any:
            r = await client.get(f"{cl.base_url}/v1/pings/{ping_id}", headers=auth(roles=["VIEWER"]))
            return r.status_code == 200 and r.json()

        body = await wait_for(received)
        assert body["origin"] == "suppression"
        assert body["receipts"] == 1


async def test_auth_401_403_and_other_accounts_get_404(start_service: StartService) -> None:
    sup = await start_service("suppression")
    async with httpx.AsyncClient(base_url=sup.base_url) as client:
        ping_id = (await client.post("/v1/pings", json={}, headers=auth("acme"))).json()["id"]
        assert (await client.get(f"/v1/pings/{ping_id}")).status_code == 401
        bad = {"Authorization": "Bearer not-a-jwt"}
        assert (await client.get(f"/v1/pings/{ping_id}", headers=bad)).status_code == 401
        forbidden = await client.post("/v1/pings", json={}, headers=auth("acme", ["VIEWER"]))
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "forbidden"
        other = await client.get(f"/v1/pings/{ping_id}", headers=auth("globex", ["VIEWER"]))
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "not_found"
        assert (await client.get(f"/v1/pings/{ping_id}", headers=auth("acme", ["VIEWER"]))).status_code == 200
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200


async def test_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice(
    infra: Any, dsns: dict[str, str], start_service: StartService
) -> None:
    total = 5000
    account = f"kill-{uuid.uuid4().hex[:6]}"
    # Small batches make the consumer spend seconds on the stream, so the kill lands mid-way.
    cl = await start_service("contact-list", CONSUMER_MAX_RECORDS="25")
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for _ in range(total):
            env = ping_envelope(account)
            futures.append(
                await producer.send(OPS_PINGS, env.to_bytes(), key=env.payload["ping_id"].encode())
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

    conn = await asyncpg.connect(dsns["contact-list"])
    try:

        async def counts() -> tuple[int, int]:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM ping_receipts WHERE account_id = $1",
                account,
            )
            assert row is not None
            return int(row["n"]), int(row["d"])

        await wait_for(lambda: _between(counts, 1, total - 1), timeout=60, interval=0.01)
        cl.kill()
        killed_at = await counts()
        assert killed_at[0] < total, (
            "the consumer finished before it could be killed; the test proves nothing"
        )
        await cl.start()
        await wait_for(lambda: _at_least(counts, total), timeout=90, interval=0.2)
        await asyncio.sleep(1.0)  # anything doubled would show up now
        n, distinct = await counts()
        assert (n, distinct) == (total, total), (
            f"killed at {killed_at}, ended with {n} rows, {distinct} distinct"
        )
    finally:
        await conn.close()


async def _between(counts: Any, low: int, high: int) -> bool:
    n, _ = await counts()
    return bool(low <= n <= high)


async def _at_least(counts: Any, n: int) -> bool:
    got, _ = await counts()
    return bool(got >= n)


async def test_malformed_message_is_dead_lettered_and_partition_moves_on(
    infra: Any, start_service: StartService
) -> None:
    cl = await start_service("contact-list")
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    good = ping_envelope()
    try:
        bad_meta = await producer.send_and_wait(OPS_PINGS, b"{not json", key=b"poison", partition=0)
        await producer.send_and_wait(OPS_PINGS, good.to_bytes(), key=b"poison", partition=0)
    finally:
        await producer.stop()

    async with httpx.AsyncClient() as client:

        async def received() -> bool:
            r = await client.get(f"{cl.base_url}/v1/pings/{good.payload['ping_id']}", headers=auth())
            return r.status_code == 200 and r.json()["receipts"] == 1

        await wait_for(received)

    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(dlq_topic("contact-list"), 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        found = None
        deadline = asyncio.get_running_loop().time() + 20
        while found is None and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                payload = orjson.loads(record.value)["payload"]
                if (
                    payload["topic"] == OPS_PINGS
                    and payload["offset"] == bad_meta.offset
                    and payload["partition"] == 0
                ):
                    found = payload
        assert found is not None, "no DeadLetter for the malformed message"
        assert found["value"] == "{not json"
        assert found["key"] == "poison"
        assert found["error"].startswith("unparseable")
    finally:
        await consumer.stop()


async def test_event_leaves_the_outbox_only_if_its_transaction_committed(
    infra: Any, dsns: dict[str, str]
) -> None:
    dsn = dsns["suppression"]
    pool = await create_pool(dsn, schema="suppression")
    # The service is not running here: migrate its schema by hand so the outbox exists.
    from dialguard.db.migrations import apply_migrations
    from dialguard.messaging.outbox import SQL_DIR

    async with pool.acquire() as conn:
        await apply_migrations(conn, schema="suppression", directories=[SQL_DIR])
    rolled_back, committed = ping_envelope(), ping_envelope()
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                await enqueue(conn, [OutgoingEvent(OPS_PINGS, "k", rolled_back)], schema="suppression")
                raise RuntimeError("business rule failed after the event was queued")
        except RuntimeError:
            pass
        async with conn.transaction():
            await enqueue(conn, [OutgoingEvent(OPS_PINGS, "k", committed)], schema="suppression")

    producer = await start_producer(infra.kafka_bootstrap, client_id="test-relay")
    relay = OutboxRelay(dsn=dsn, pool=pool, schema="suppression", producer=producer)
    consumer = AIOKafkaConsumer(
        OPS_PINGS,
        bootstrap_servers=infra.kafka_bootstrap,
        group_id=f"t-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        session_timeout_ms=3000,
        heartbeat_interval_ms=300,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    relay.start()
    try:
        seen: set[str] = set()
        deadline = asyncio.get_running_loop().time() + 30
        while str(committed.event_id) not in seen and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                seen.update(_event_ids(records))
        assert str(committed.event_id) in seen
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            seen.update(_event_ids(records))
        assert str(rolled_back.event_id) not in seen
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await relay.stop()
        await consumer.stop()
        await producer.stop()
        await pool.close()


async def test_relay_refuses_a_topic_whose_partition_count_is_not_the_contracts(
    infra: Any, dsns: dict[str, str]
) -> None:
    """Keyed publishing over a wrong partition count misroutes (Tansu even acks a partition that does not
    exist): the rows must stay in the outbox until the topic matches, then go out once."""
    from dialguard.db.migrations import apply_migrations
    from dialguard.messaging.admin import ensure_topics
    from dialguard.messaging.outbox import SQL_DIR

    topic = f"t.layout-{uuid.uuid4().hex[:8]}.v1"
    await ensure_topics(infra.kafka_bootstrap, {topic: 2})
    dsn = dsns["suppression"]
    pool = await create_pool(dsn, schema="suppression")
    async with pool.acquire() as conn:
        await apply_migrations(conn, schema="suppression", directories=[SQL_DIR])
        async with conn.transaction():
            await enqueue(conn, [OutgoingEvent(topic, "k", ping_envelope())], schema="suppression")
    producer = await start_producer(infra.kafka_bootstrap, client_id="test-relay-layout")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.kafka_bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        wrong = OutboxRelay(dsn=dsn, pool=pool, schema="suppression", producer=producer, layout={topic: 3})
        wrong.start()
        await asyncio.sleep(2.0)  # several retries of the leader loop
        await wrong.stop()
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 1, "published over a wrong layout"
        assert not [r for rs in (await consumer.getmany(timeout_ms=500)).values() for r in rs]

        right = OutboxRelay(dsn=dsn, pool=pool, schema="suppression", producer=producer, layout={topic: 2})
        right.start()
        try:
            got: list[Any] = []
            deadline = asyncio.get_running_loop().time() + 30
            while not got and asyncio.get_running_loop().time() < deadline:
                got = [r for rs in (await consumer.getmany(timeout_ms=300)).values() for r in rs]
            assert len(got) == 1
            await wait_for(lambda: _outbox_empty(pool), timeout=10)
        finally:
            await right.stop()
    finally:
        await consumer.stop()
        await producer.stop()
        await pool.close()


async def _outbox_empty(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        return bool(await conn.fetchval("SELECT count(*) = 0 FROM outbox"))


def _event_ids(records: Any) -> set[str]:
    """Event ids on the topic (other tests leave malformed messages there on purpose)."""
    ids = set()
    for r in records:
        try:
            ids.add(orjson.loads(r.value)["event_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return ids


async def test_ready_is_503_while_postgres_is_down_and_recovers_by_itself(fresh_stack: Any) -> None:
    stack = await fresh_stack()
    dsns = await provision_all(stack.postgres_admin_url)
    env = service_env(
        kafka=stack.kafka_bootstrap,
        database_url=dsns["contact-list"],
        redis_url=stack.redis_url,
        secret=SECRET,
    )
    proc = ServiceProcess("contact-list", env, REPO / ".local" / "test-logs")
    await proc.start()
    try:
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=10) as client:
            assert (await client.get("/health/ready")).status_code == 200
            await asyncio.to_thread(stack.stop_postgres)

            async def down() -> Any:
                r = await client.get("/health/ready")
                return r.status_code == 503 and r.json()

            body = await wait_for(down, timeout=30, interval=0.3)
            assert body["checks"]["postgres"]["ok"] is False
            assert "postgres" in body["error"]["message"]
            assert (await client.get("/health/live")).status_code == 200
            await asyncio.to_thread(stack.start_postgres)

            async def up() -> bool:
                return (await client.get("/health/ready")).status_code == 200

            await wait_for(up, timeout=60, interval=0.3)
    finally:
        await proc.stop()
