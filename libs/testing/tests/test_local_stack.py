"""The Docker-free stack: real Tansu, PostgreSQL and Redis processes, their restarts and their refusals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from dialguard.db.provision import SERVICE_SCHEMAS
from dialguard.events.topics import TOPICS
from dialguard.messaging.admin import TopicPartitionsError, ensure_topics
from dialguard.testing.bring_up import bring_up
from dialguard.testing.infra import Infra
from dialguard.testing.local_stack import (
    COMPONENTS,
    POSTGRES,
    REDIS,
    LocalStack,
    StackError,
    free_ports,
)
from dialguard.testing.pytest_plugin import FreshStack

pytestmark = pytest.mark.integration

TANSU_CONSUMER = {
    "session_timeout_ms": 3000,
    "heartbeat_interval_ms": 300,
    "fetch_max_wait_ms": 20,
    "auto_offset_reset": "earliest",
    "enable_auto_commit": False,
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One started stack shared by the tests that only read from it or restart a part in place."""
    s = LocalStack(tmp_path_factory.mktemp("shared"))
    began = time.monotonic()
    s.start()
    print(f"LocalStack.start() took {time.monotonic() - began:.2f}s")
    yield s
    s.destroy()


def _markers(base_dir: Path) -> list[str]:
    """What only this stack's processes carry on their command lines (recorded while they run)."""
    markers = [str(base_dir)]
    for pidfile in (base_dir / "run").glob("*.pid"):
        lines = pidfile.read_text().splitlines()
        if len(lines) > 1:
            markers.append(lines[1])
    return markers


def _pids_matching(markers: list[str]) -> set[int]:
    """Live processes whose command line contains one of the markers."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmd for m in markers):
            pids.add(int(entry.name))
    return pids


async def test_postgres_accepts_admin_connections(stack: LocalStack) -> None:
    conn = await asyncpg.connect(stack.postgres_admin_url)
    try:
        assert await conn.fetchval("SELECT current_user") == "postgres"
        assert await conn.fetchval("SHOW max_connections") == "300"
        assert await conn.fetchval("SHOW fsync") == "off"
    finally:
        await conn.close()


async def test_redis_answers_commands(stack: LocalStack) -> None:
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


async def test_broker_round_trips_keyed_messages_through_a_consumer_group(stack: LocalStack) -> None:
    topic = f"roundtrip.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, {topic: 3})
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex}", **TANSU_CONSUMER
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(20)}
        for key, value in sent.items():
            await producer.send(topic, value, key=key)
        await producer.flush()
        received: dict[bytes, bytes] = {}
        deadline = time.monotonic() + 20
        while len(received) < len(sent) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                received.update(
                    {r.key: r.value for r in records if r.key is not None and r.value is not None}
                )
        assert received == sent
    finally:
        await producer.stop()
        await consumer.stop()


async def test_ensure_topics_is_idempotent_and_keeps_partition_counts(stack: LocalStack) -> None:
    six, one = (f"t.{uuid.uuid4().hex[:8]}" for _ in range(2))
    wanted = {six: 6, one: 1}
    await ensure_topics(stack.kafka_bootstrap, wanted)
    await ensure_topics(stack.kafka_bootstrap, wanted)
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(list(wanted))}
    finally:
        await admin.close()
    assert described == wanted
    with pytest.raises(TopicPartitionsError, match="has 1, wants 4"):
        await ensure_topics(
            stack.kafka_bootstrap, {name: 4 for name, n in wanted.items() if n == 1}, timeout=5
        )


async def test_postgres_keeps_its_data_across_stop_and_start(stack: LocalStack) -> None:
    conn = await asyncpg.connect(stack.postgres_admin_url)
    try:
        await conn.execute("CREATE TABLE kept (id int)")
        await conn.execute("INSERT INTO kept VALUES (1), (2)")
    finally:
        await conn.close()
    await asyncio.to_thread(stack.stop_postgres)
    assert not stack.running("postgres")
    with pytest.raises(OSError):
        await asyncpg.connect(stack.postgres_admin_url, timeout=2)
    await asyncio.to_thread(stack.start_postgres)
    conn = await asyncpg.connect(stack.postgres_admin_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM kept") == 2
    finally:
        await conn.close()


async def test_redis_and_broker_come_back_on_the_same_port(stack: LocalStack) -> None:
    await asyncio.to_thread(stack.stop_redis)
    await asyncio.to_thread(stack.stop_broker)
    await asyncio.to_thread(stack.start_redis)
    await asyncio.to_thread(stack.start_broker)
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    await ensure_topics(stack.kafka_bootstrap, {"after.restart": 1}, timeout=10)


def test_a_second_stack_on_the_same_base_dir_is_refused(stack: LocalStack) -> None:
    intruder = LocalStack(stack.base_dir)
    with pytest.raises(StackError, match="already used by another running local stack"):
        intruder.start()
    assert all(stack.running(c) for c in COMPONENTS)


def test_a_taken_port_is_refused_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        s = LocalStack(tmp_path, redis_port=port)
        with pytest.raises(StackError, match=f"port {port}") as refused:
            s.start()
    assert "already in use" in str(refused.value)
    assert not any(s.running(c) for c in COMPONENTS), "nothing may be left half-started"
    successor = LocalStack(tmp_path, redis_port=port)
    successor.start([REDIS])  # the refused stack released its base dir, and the port is free again
    successor.destroy()


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    s = LocalStack(tmp_path)
    s.start()
    markers = _markers(tmp_path)
    assert len(_pids_matching(markers)) >= 3
    s.stop()
    assert _pids_matching(markers) == set()
    s.destroy()


def test_processes_of_a_killed_owner_are_reaped_by_the_next_start(tmp_path: Path) -> None:
    kafka, pg, redis = free_ports(3)
    script = textwrap.dedent(
        f"""
        import time
        from dialguard.testing.local_stack import LocalStack
        LocalStack({str(tmp_path)!r}, kafka_port={kafka}, postgres_port={pg}, redis_port={redis}).start()
        print("up", flush=True)
        time.sleep(120)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "up"
    finally:
        owner.send_signal(signal.SIGKILL)  # no atexit, no cleanup: its servers are orphans now
        owner.wait()
    markers = _markers(tmp_path)
    orphans = _pids_matching(markers)
    assert len(orphans) >= 3
    s = LocalStack(tmp_path, kafka_port=kafka, postgres_port=pg, redis_port=redis)
    s.start()  # would fail with "port in use" if the orphans still held the ports
    try:
        assert not orphans & _pids_matching(markers)
    finally:
        s.destroy()


async def test_bring_up_provisions_every_service_and_keeps_passwords(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    first = await bring_up(tmp_path, kafka_port=0, postgres_port=0, redis_port=0, env=env)
    try:
        assert set(first.service_dsns) == set(SERVICE_SCHEMAS)
        conn = await asyncpg.connect(first.service_dsns["suppression"])
        try:
            assert await conn.fetchval("SELECT current_user") == "dg_suppression"
            assert await conn.fetchval("SHOW search_path") == "suppression"
        finally:
            await conn.close()
        assert (tmp_path / "secrets.json").stat().st_mode & 0o077 == 0
    finally:
        await first.aclose()
    # Same base dir again (the ports may differ): the roles keep their passwords.
    second = await bring_up(tmp_path, kafka_port=0, postgres_port=0, redis_port=0, env=env)
    try:

        def password(dsn: str) -> str:
            return dsn.split("@")[0].rsplit(":", 1)[1]

        assert {s: password(d) for s, d in second.service_dsns.items()} == {
            s: password(d) for s, d in first.service_dsns.items()
        }
    finally:
        await second.aclose()
        assert second.stack is not None
        second.stack.destroy()


async def test_bring_up_uses_servers_named_by_the_environment(stack: LocalStack, tmp_path: Path) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "DATABASE_URL": stack.postgres_admin_url,
        "REDIS_URL": stack.redis_url,
    }
    handle = await bring_up(tmp_path, env=env, topics={"from.env": 1})
    try:
        assert handle.stack is None
        assert handle.started == ()
        assert handle.kafka_bootstrap == stack.kafka_bootstrap
        conn = await asyncpg.connect(handle.service_dsns["contact-list"])
        try:
            assert await conn.fetchval("SELECT current_user") == "dg_contact_list"
        finally:
            await conn.close()
    finally:
        await handle.aclose()
    assert stack.running("postgres"), "servers from the environment are not stopped"


async def _partitions(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(topics)}
    finally:
        await admin.close()


async def test_session_infra_has_every_contract_topic_with_its_partitions(infra: Infra) -> None:
    assert await _partitions(infra.kafka_bootstrap, list(TOPICS)) == TOPICS
    conn = await asyncpg.connect(infra.postgres_admin_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_fresh_stack_is_private_controllable_and_has_the_topics(
    fresh_stack: FreshStack, infra: Infra
) -> None:
    private = await fresh_stack()
    assert private.postgres_admin_url != infra.postgres_admin_url
    assert await _partitions(private.kafka_bootstrap, list(TOPICS)) == TOPICS
    await asyncio.to_thread(private.stop_postgres)
    with pytest.raises(OSError):
        await asyncpg.connect(private.postgres_admin_url, timeout=2)
    await asyncio.to_thread(private.start_postgres)
    conn = await asyncpg.connect(private.postgres_admin_url)
    await conn.close()


def test_reclaim_deletes_an_abandoned_stack_but_not_a_running_one(stack: LocalStack, tmp_path: Path) -> None:
    assert LocalStack.reclaim(stack.base_dir) is False
    assert stack.base_dir.is_dir()
    abandoned = LocalStack(tmp_path / "abandoned")
    abandoned.start([POSTGRES])
    abandoned.stop()
    assert abandoned.postgres_data_dir.is_dir()
    assert LocalStack.reclaim(abandoned.base_dir) is True
    assert not abandoned.base_dir.exists()
    assert not abandoned.postgres_data_dir.exists()
