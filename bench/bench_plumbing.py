"""Outbox -> broker -> inbox between two real service processes: throughput and publish-to-effect latency."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg

from dialguard.events import Envelope
from dialguard.events.topics import OPS_PINGS
from dialguard.messaging.outbox import OutgoingEvent, enqueue


def _ping(account: str) -> OutgoingEvent:
    ping_id = str(uuid.uuid4())
    env = Envelope(
        event_type="Ping",
        account_id=account,
        producer="bench",
        payload={"ping_id": ping_id, "origin": "bench"},
    )
    return OutgoingEvent(OPS_PINGS, f"{account}:{ping_id}", env)


async def _wait_count(conn: asyncpg.Connection, account: str, n: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        got = await conn.fetchval("SELECT count(*) FROM ping_receipts WHERE account_id = $1", account)
        if got >= n:
            return time.perf_counter()
        await asyncio.sleep(0.02)
    raise TimeoutError(f"only {got}/{n} events arrived in {timeout}s")


async def throughput(
    producer_dsn: str, consumer_dsn: str, *, n: int = 50_000, tx_size: int = 5_000
) -> dict[str, Any]:
    """n events committed to the producer's outbox at once (built in SQL, so the bench client is not the
    bottleneck); events/s from the first commit until the consumer applied the last one."""
    account = f"bench-{uuid.uuid4().hex[:6]}"
    prod = await asyncpg.connect(producer_dsn)
    cons = await asyncpg.connect(consumer_dsn)
    try:
        started = time.perf_counter()
        for _ in range(n // tx_size):
            async with prod.transaction():
                await prod.execute(
                    """INSERT INTO outbox (topic, key, value, event_id, event_type)
                       SELECT $1, convert_to($2 || ':' || u::text, 'UTF8'),
                              convert_to(json_build_object(
                                  'event_id', u, 'event_type', 'Ping', 'schema_version', 1,
                                  'occurred_at', to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                                         'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                                  'account_id', $2, 'correlation_id', NULL, 'producer', 'bench',
                                  'payload', json_build_object('ping_id', gen_random_uuid(), 'origin', 'bench')
                              )::text, 'UTF8'),
                              u, 'Ping'
                       FROM (SELECT gen_random_uuid() AS u FROM generate_series(1, $3)) s""",
                    OPS_PINGS,
                    account,
                    tx_size,
                )
                await prod.execute("SELECT pg_notify('outbox_suppression', '')")
        committed = time.perf_counter()
        done = await _wait_count(cons, account, n, timeout=300)
        dup = await cons.fetchval(
            "SELECT count(*) - count(DISTINCT event_id) FROM ping_receipts WHERE account_id = $1", account
        )
    finally:
        await prod.close()
        await cons.close()
    return {
        "events": n,
        "commit_s": round(committed - started, 3),
        "end_to_end_s": round(done - started, 3),
        "events_per_s": round(n / (done - started)),
        "duplicates": int(dup),
    }


async def latency(
    producer_dsn: str, consumer_dsn: str, *, rate: int = 1000, seconds: float = 10.0
) -> dict[str, Any]:
    """Commit events at a fixed rate (10 per transaction every 10 ms); publish-to-effect p50/p99 from DB clocks."""
    account = f"lat-{uuid.uuid4().hex[:6]}"
    per_tick, tick = 10, 10 / rate
    prod = await asyncpg.connect(producer_dsn)
    cons = await asyncpg.connect(consumer_dsn)
    total = 0
    try:
        start = time.perf_counter()
        next_at = start
        while time.perf_counter() - start < seconds:
            async with prod.transaction():
                await enqueue(prod, [_ping(account) for _ in range(per_tick)], schema="suppression")
            total += per_tick
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        achieved = total / (time.perf_counter() - start)
        await _wait_count(cons, account, total, timeout=60)
        row = await cons.fetchrow(
            """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99, max(ms) AS max
               FROM (SELECT extract(epoch FROM received_at - sent_at) * 1000 AS ms
                     FROM ping_receipts WHERE account_id = $1) t""",
            account,
        )
    finally:
        await prod.close()
        await cons.close()
    assert row is not None
    return {
        "target_rate": rate,
        "achieved_rate": round(achieved),
        "events": total,
        "p50_ms": round(float(row["p50"]), 2),
        "p99_ms": round(float(row["p99"]), 2),
        "max_ms": round(float(row["max"]), 2),
    }
