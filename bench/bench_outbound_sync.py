"""outbound-sync on the real stack against tools/fake_outbound.py: deliveries/s with connection reuse, and a
healthy target's publish-to-delivered latency alone and while another target of the same stoplist hangs,
and end to end at 200 events/s: an upstream LeadStopped until the TM target received the entry
(suppression and outbound-sync as separate processes).

    .venv/bin/python bench/bench_outbound_sync.py --n 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from dialguard.events import Envelope
from dialguard.events.topics import LEADS_STOPPED, SUPPRESSION_CHANGES
from dialguard.testing.helpers import SECRET, auth
from dialguard.testing.infra import acquire_infra
from dialguard.testing.services import ServiceProcess, create_database, free_port, provision_all, service_env

REPO = Path(__file__).resolve().parents[1]


def _change(account: str, stoplist_id: str, phone: str) -> Envelope:
    entry = {
        "entry_id": str(uuid.uuid4()),
        "stoplist_id": stoplist_id,
        "identifier": {"type": "phone", "value": phone},
        "channel": None,
        "sender": None,
        "source": "api",
        "reason": "bench",
        "added_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "expires_at": None,
    }
    return Envelope(
        event_type="SuppressionChanged",
        account_id=account,
        producer="bench",
        payload={"op": "added", "entry": entry, "suppressed": True},
    )


async def _send(producer: AIOKafkaProducer, env: Envelope) -> Any:
    ident = env.payload["entry"]["identifier"]
    return await producer.send(
        SUPPRESSION_CHANGES, env.to_bytes(), key=f"{env.account_id}:phone:{ident['value']}".encode()
    )


async def _target(
    c: httpx.AsyncClient, account: str, stoplist: str, system: str, project: str, *, active: bool = True
) -> str:
    r = await c.post(
        f"/v1/stoplists/{stoplist}/targets",
        json={"type": "TM", "system": system, "project": project, "active": active},
        headers=auth(account),
    )
    r.raise_for_status()
    target_id: str = r.json()["id"]
    return target_id


async def _wait_queued(db: asyncpg.Connection, target_id: str, n: int, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    got = 0
    while time.perf_counter() < deadline:
        got = await db.fetchval("SELECT count(*) FROM deliveries WHERE target_id = $1", uuid.UUID(target_id))
        if got >= n:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"only {got}/{n} queued in {timeout}s")


async def _wait_delivered(db: asyncpg.Connection, target_id: str, n: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    got = 0
    while time.perf_counter() < deadline:
        got = await db.fetchval(
            "SELECT count(*) FROM deliveries WHERE target_id = $1 AND status = 'delivered'",
            uuid.UUID(target_id),
        )
        if got >= n:
            return time.perf_counter()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"only {got}/{n} delivered in {timeout}s")


def _cpu_s(pid: int | None) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc), 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def throughput(
    svc: ServiceProcess,
    fake: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    db: asyncpg.Connection,
    n: int,
    fake_pid: int | None = None,
) -> dict[str, Any]:
    """Deliveries/s to one TM target, two ways. Drain: n entries queued while the target is paused, then
    resumed; n / (resume -> the last one delivered) is the sender's rate. Burst: n entries published at once
    to an active target; n / (first publish -> the last one delivered) includes publishing and the consumer."""
    account = f"bench-{uuid.uuid4().hex[:6]}"
    drain_stoplist, burst_stoplist = str(uuid.uuid4()), str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=svc.base_url) as c:
        paused = await _target(c, account, drain_stoplist, "01", "drain", active=False)
        for i in range(n):
            await _send(producer, _change(account, drain_stoplist, f"4510{i:08d}"))
        await producer.flush()
        await _wait_queued(db, paused, n, timeout=max(60.0, n / 50))
        svc_pid = svc.proc.pid if svc.proc else None
        cpu_before = _cpu_s(svc_pid), _cpu_s(fake_pid)
        resumed = time.perf_counter()
        r = await c.patch(f"/v1/targets/{paused}", json={"active": True}, headers=auth(account))
        r.raise_for_status()
        drained = await _wait_delivered(db, paused, n, timeout=max(60.0, n / 20))
        cpu_used = _cpu_s(svc_pid) - cpu_before[0], _cpu_s(fake_pid) - cpu_before[1]
        load = os.getloadavg()[0]
        drain_stats = (
            await fake.get("/_stats", params={"path_prefix": "/outbound01/projects/drain/"})
        ).json()

        burst = await _target(c, account, burst_stoplist, "01", "burst")
        started = time.perf_counter()
        futures = [await _send(producer, _change(account, burst_stoplist, f"4520{i:08d}")) for i in range(n)]
        await producer.flush()
        await asyncio.gather(*futures)
        published = time.perf_counter()
        done = await _wait_delivered(db, burst, n, timeout=max(60.0, n / 20))
    return {
        "deliveries": n,
        "deliveries_per_s": round(n / (drained - resumed), 1),
        "drain_seconds": round(drained - resumed, 3),
        "service_cpu_us_per_delivery": round(cpu_used[0] / n * 1e6, 1),
        "fake_cpu_us_per_request": round(cpu_used[1] / n * 1e6, 1),
        "load_average_1m": round(load, 2),
        "requests_at_target": drain_stats["count"],
        "tcp_connections_used": drain_stats["connections"],
        "burst_deliveries_per_s": round(n / (done - started), 1),
        "burst_seconds": round(done - started, 3),
        "burst_publish_seconds": round(published - started, 3),
    }


async def isolation(
    svc: ServiceProcess,
    fake: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    db: asyncpg.Connection,
    n: int,
    rate: float,
    hanging: bool = True,
) -> dict[str, Any]:
    """Two targets on one stoplist, one hanging (or, as the baseline, one target alone): the healthy
    one's publish-to-delivered latency (p50/p99)."""
    account, stoplist = f"bench-{uuid.uuid4().hex[:6]}", str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=svc.base_url) as c:
        if hanging:
            await fake.post("/_behaviour", json={"match": "/outbound02/", "hang": True})
            await _target(c, account, stoplist, "02", "hanging")
        healthy = await _target(c, account, stoplist, "01", "healthy")
    published: dict[str, float] = {}
    for i in range(n):
        env = _change(account, stoplist, f"4530{i:08d}")
        published[env.payload["entry"]["entry_id"]] = time.time()
        await (await _send(producer, env))
        await asyncio.sleep(1 / rate)
    await _wait_delivered(db, healthy, n, timeout=max(60.0, n / 10))
    rows = await db.fetch(
        """SELECT entry_id, extract(epoch FROM delivered_at) AS at, extract(epoch FROM created_at) AS queued,
                  (response->>'elapsed_ms')::float8 AS http_ms
           FROM deliveries WHERE target_id = $1""",
        uuid.UUID(healthy),
    )
    latencies = sorted((float(r["at"]) - published[r["entry_id"]]) * 1000 for r in rows)
    queued = sorted((float(r["queued"]) - published[r["entry_id"]]) * 1000 for r in rows)
    hanging_pending = await db.fetchval(
        """SELECT count(*) FROM deliveries d JOIN targets t ON t.id = d.target_id
           WHERE t.project = 'hanging' AND t.account_id = $1 AND d.status = 'pending'""",
        account,
    )
    await fake.delete("/_behaviour")
    return {
        "deliveries": n,
        "publish_rate_per_s": rate,
        "healthy_p50_ms": round(statistics.median(latencies), 1),
        "healthy_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        "healthy_max_ms": round(latencies[-1], 1),
        "healthy_p50_publish_to_queued_ms": round(statistics.median(queued), 1),
        "healthy_p50_request_ms": round(statistics.median(float(r["http_ms"]) for r in rows), 1),
        "hanging_target_pending": int(hanging_pending),
    }


async def end_to_end(
    suppression: ServiceProcess,
    svc: ServiceProcess,
    fake: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    db: asyncpg.Connection,
    *,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """LeadStopped published upstream -> suppression entry -> SuppressionChanged -> outbound-sync -> the TM
    target received it: p50/p99 from the publish to the fake server's receipt, at a fixed rate."""
    account = f"e2e-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=suppression.base_url) as c:
        r = await c.post("/v1/stoplists", json={"name": "bench"}, headers=auth(account))
        r.raise_for_status()
        stoplist = r.json()["id"]
    async with httpx.AsyncClient(base_url=svc.base_url) as c:
        target = await _target(c, account, stoplist, "03", f"e2e-{account}")
    prefix = f"/outbound03/projects/e2e-{account}/"

    async def received() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = (await fake.get("/_requests", params={"path_prefix": prefix})).json()[
            "items"
        ]
        return got

    async def run(first_phone: int, count: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Publish count LeadStopped at `rate`/s (send times by phone), then wait until the target has them all."""
        sent: dict[str, float] = {}
        start = time.perf_counter()
        for i in range(count):
            phone = f"1267{first_phone + i:07d}"
            env = Envelope(
                event_type="LeadStopped",
                account_id=account,
                producer="bench",
                payload={
                    "identifier": {"type": "phone", "value": phone},
                    "channel": None,
                    "stoplist_id": stoplist,
                    "source": "api",
                    "sender": None,
                    "reason": "bench",
                    "expires_in_days": None,
                },
            )
            sent[phone] = time.time()
            await producer.send(LEADS_STOPPED, env.to_bytes(), key=f"{account}:phone:{phone}".encode())
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
        deadline = time.perf_counter() + 120
        got = await received()
        while not set(sent) <= {req["json"]["phone"] for req in got} and time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
            got = await received()
        return sent, got

    # An uncounted warm-up second first, as in bench_lead_stop.py: the account's first opt-outs pay
    # one-off costs (its default stoplist and first filter, prepared statements) a running system has paid.
    await run(4_000_000, int(rate))
    sent, got = await run(3_000_000, int(rate * seconds))
    first: dict[str, float] = {}
    for req in got:
        first.setdefault(req["json"]["phone"], req["received_at"])
    latencies = sorted((first[p] - sent[p]) * 1000 for p in sent if p in first)
    rows = await db.fetch(
        """SELECT entry->'identifier'->>'value' AS phone, extract(epoch FROM created_at) AS queued,
                  extract(epoch FROM (entry->>'added_at')::timestamptz) AS added
           FROM deliveries WHERE target_id = $1""",
        uuid.UUID(target),
    )
    queued = {r["phone"]: float(r["queued"]) for r in rows}
    added = {r["phone"]: float(r["added"]) for r in rows}
    upstream = sorted((queued[p] - sent[p]) * 1000 for p in sent if p in queued)
    in_suppression = sorted((added[p] - sent[p]) * 1000 for p in sent if p in added)
    topic = sorted((queued[p] - added[p]) * 1000 for p in sent if p in queued)
    sending = sorted((first[p] - queued[p]) * 1000 for p in sent if p in queued and p in first)
    return {
        "events": len(sent),
        "rate_per_s": rate,
        "received": len(latencies),
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": _pct(latencies, 0.99),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "upstream_p50_ms": _pct(upstream, 0.5),
        "upstream_p99_ms": _pct(upstream, 0.99),
        "publish_to_entry_added_p50_ms": _pct(in_suppression, 0.5),
        "publish_to_entry_added_p99_ms": _pct(in_suppression, 0.99),
        "entry_added_to_queued_p50_ms": _pct(topic, 0.5),
        "entry_added_to_queued_p99_ms": _pct(topic, 0.99),
        "queued_to_received_p50_ms": _pct(sending, 0.5),
        "queued_to_received_p99_ms": _pct(sending, 0.99),
    }


def _pct(values: list[float], q: float) -> float | None:
    """values sorted; the q-quantile (nearest rank below), or None when empty."""
    if not values:
        return None
    return round(values[min(len(values) - 1, int(len(values) * q))], 1)


async def run(n: int, rate: float, e2e_seconds: float = 10.0) -> dict[str, Any]:
    """Bring up servers, the fake Outbound and outbound-sync; run both measurements; tear down."""
    infra = await asyncio.to_thread(acquire_infra, REPO / ".local" / f"bench-outbound-{os.getpid()}")
    fake_port = free_port()
    fake_proc = subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "fake_outbound.py"), "--port", str(fake_port)],
        start_new_session=True,
    )
    svc: ServiceProcess | None = None
    suppression: ServiceProcess | None = None
    try:
        admin = await create_database(infra.postgres_admin_url)
        dsn = (await provision_all(admin))["outbound-sync"]
        env = service_env(
            kafka=infra.kafka_bootstrap,
            database_url=dsn,
            redis_url=infra.redis_url,
            secret=SECRET,
            OUTBOUND_TM_URL_TEMPLATE=f"http://127.0.0.1:{fake_port}/outbound{{system}}",
            DELIVERY_TIMEOUT_S="60",
            **(
                {"DELIVERY_CONCURRENCY_PER_TARGET": os.environ["BENCH_DELIVERY_CONCURRENCY"]}
                if os.environ.get("BENCH_DELIVERY_CONCURRENCY")
                else {}
            ),
        )
        svc = ServiceProcess("outbound-sync", env, REPO / ".local" / "bench-logs")
        await svc.start(timeout=120)
        sup_env = service_env(
            kafka=infra.kafka_bootstrap,
            database_url=(await provision_all(admin))["suppression"],
            redis_url=infra.redis_url,
            secret=SECRET,
        )
        suppression = ServiceProcess("suppression", sup_env, REPO / ".local" / "bench-logs")
        await suppression.start(timeout=120)
        producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, linger_ms=5)
        await producer.start()
        db = await asyncpg.connect(dsn)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fake_port}", timeout=30) as fake:
                results = {
                    "throughput": await throughput(svc, fake, producer, db, n, fake_proc.pid),
                    "baseline_one_target": await isolation(
                        svc, fake, producer, db, max(10, n // 10), rate, hanging=False
                    ),
                    "isolation": await isolation(svc, fake, producer, db, max(10, n // 10), rate),
                    "end_to_end_lead_stopped_to_tm": await end_to_end(
                        suppression, svc, fake, producer, db, rate=200.0, seconds=e2e_seconds
                    ),
                }
                results["machine"] = {"cpus": os.cpu_count(), "load_average_1m_at_end": os.getloadavg()[0]}
                base = results["baseline_one_target"]["healthy_p99_ms"]
                results["isolation"]["p99_vs_baseline"] = round(
                    results["isolation"]["healthy_p99_ms"] / base, 2
                )
        finally:
            await db.close()
            await producer.stop()
    finally:
        if suppression is not None:
            await suppression.stop()
        if svc is not None:
            await svc.stop()
        fake_proc.terminate()
        fake_proc.wait(10)
        infra.close()
    return results


def main() -> None:
    """Print the results as JSON (and write them to --out when given)."""
    parser = argparse.ArgumentParser(description="outbound-sync delivery benchmark")
    parser.add_argument("--n", type=int, default=5000, help="deliveries in the throughput run")
    parser.add_argument("--rate", type=float, default=50.0, help="publish rate of the isolation run, per s")
    parser.add_argument("--e2e-seconds", type=float, default=10.0, help="length of the 200/s end-to-end run")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    results = asyncio.run(run(args.n, args.rate, args.e2e_seconds))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
