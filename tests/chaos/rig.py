"""The fault rig: a private stack, all four services, two fake outbound targets, a topic watch.

The promise under test is "never dial someone who opted out, never lose an opt-out". An opt-out is
*accepted* when the HTTP add answered 2xx, or when the broker acked its LeadStopped event (or a
CallResult with do_not_call). While a fault is injected and healed (tests/chaos/cycle.py), a checker asks
POST /v1/check about every phone whose opt-out is known to be in force and counts every answer that says
"not suppressed" (a false negative). After the fault, every accepted opt-out must be in Postgres, in the
check API, on suppression.changes.v1, on every lead with that phone and delivered to both targets,
exactly once; every consumer of every service caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import phonenumbers
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from dialguard.events.topics import CALL_RESULTS, LEADS_STOPPED, SUPPRESSION_CHANGES, TOPICS
from dialguard.messaging.admin import ensure_topics
from dialguard.testing.fixtures import REPO
from dialguard.testing.helpers import SECRET
from dialguard.testing.local_stack import LocalStack
from dialguard.testing.services import (
    ServiceProcess,
    create_database,
    free_port,
    provision_all,
    service_env,
)

LONG = os.environ.get("CHAOS_LONG", "") not in ("", "0")
SERVICES = ("suppression", "contact-list", "lead-action", "outbound-sync")
# Topics whose log end the rig remembers across a broker restart (Tansu memory storage, see hardening.md).
TRACKED_TOPICS = (LEADS_STOPPED, CALL_RESULTS, SUPPRESSION_CHANGES)


@dataclass(frozen=True)
class Plan:
    """How much load and how long a fault lasts; the short form runs inside `make test`."""

    cycles: int
    event_rate: float  # LeadStopped/LeadUnstopped per second
    call_rate: float  # CallResults per second (every other one a do-not-call on a lead's phone)
    warmup: float  # load before the fault
    hold: float  # how long the component stays down (or the target slow)
    cooldown: float  # load after the heal
    recovery_timeout: float
    lead_phones: int  # phones with two leads each (campaigns A and B) that the load opts out
    call_leads: int  # leads that only receive (non-DNC) call results: their pass_count is checked


SHORT = Plan(
    cycles=1,
    event_rate=40.0,
    call_rate=10.0,
    warmup=1.0,
    hold=2.0,
    cooldown=0.5,
    recovery_timeout=120.0,
    lead_phones=40,
    call_leads=8,
)
LONG_PLAN = Plan(
    cycles=3,
    event_rate=150.0,
    call_rate=30.0,
    warmup=4.0,
    hold=8.0,
    cooldown=4.0,
    recovery_timeout=240.0,
    lead_phones=150,
    call_leads=20,
)
PLAN = LONG_PLAN if LONG else SHORT
# The slow target answers after SLOW_MS; outbound-sync gives up on a request after 2 s (both timeouts) and
# retries it with the same Idempotency-Key, so the slow target sees redeliveries (at-least-once).
SLOW_MS = 3000
DELIVERY_TIMEOUT_S = 1.5
DELIVERY_CONNECT_TIMEOUT_S = 0.5  # loopback; outbound-sync's deadline per request is the sum of both


def _phones() -> Any:
    """Distinct valid, unambiguous US numbers (E.164 digits), never repeated within a run."""
    for n in itertools.count(2_000_000):
        digits = f"1267{n:07d}"
        if phonenumbers.is_valid_number(phonenumbers.parse("+" + digits)):
            yield digits


PHONES = _phones()


@dataclass
class Row:
    """One line of the chaos table."""

    fault: str
    accepted: int = 0
    in_flight: int = 0
    lost: int = 0
    lost_to_broker_memory: int = 0
    duplicated: int = 0
    redelivered: int = 0  # same Idempotency-Key sent again to a target (at-least-once, allowed)
    false_negatives: int = 0
    checks: int = 0
    check_errors: int = 0
    unstops_missing: int = 0
    actions: int = 0  # lead actions answered 200
    recovery_s: float = 0.0
    lag: dict[str, float | None] = field(default_factory=dict)  # service -> dialguard_consumer_lag sum
    lost_where: Counter[str] = field(default_factory=Counter)  # "not in Postgres", "not delivered to A", ..
    duplicated_where: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)  # "METHOD path -> status" of 5xx but 503
    notes: list[str] = field(default_factory=list)


class ChangeWatch:
    """Reads suppression.changes.v1 from the start (group-less, so a broker restart only resets it)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.added: dict[tuple[str, str], list[str]] = defaultdict(list)  # (account, phone) -> event ids
        self.removed: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.added_at: dict[tuple[str, str], tuple[int, int]] = {}  # -> (partition, offset), latest seen
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
        )
        await consumer.start()
        parts = [TopicPartition(SUPPRESSION_CHANGES, p) for p in range(TOPICS[SUPPRESSION_CHANGES])]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        checked = time.monotonic()
        while True:
            try:
                if time.monotonic() - checked > 1.0:
                    checked = time.monotonic()
                    await self._rewind_past_end()
                batches = await self._consumer.getmany(timeout_ms=200)
            except KafkaError:  # broker away or log reset under us: the consumer reconnects by itself
                await asyncio.sleep(0.2)
                continue
            for records in batches.values():
                for r in records:
                    self._record(r.value, r.partition, r.offset)

    def _record(self, raw: bytes | None, partition: int, offset: int) -> None:
        try:
            env = orjson.loads(raw or b"")
            payload = env["payload"]
            key = (env["account_id"], payload["entry"]["identifier"]["value"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if payload.get("op") == "added":
            self.added[key].append(env["event_id"])
            self.added_at[key] = (partition, offset)
        else:
            self.removed[key].append(env["event_id"])

    async def _rewind_past_end(self) -> None:
        """A position beyond the log's end means the log restarted (Tansu memory): read it from 0 again."""
        assert self._consumer is not None
        parts = [TopicPartition(SUPPRESSION_CHANGES, p) for p in range(TOPICS[SUPPRESSION_CHANGES])]
        ends = await self._consumer.end_offsets(parts)
        behind = [tp for tp in parts if await self._consumer.position(tp) > ends[tp]]
        if behind:
            await self._consumer.seek_to_beginning(*behind)

    async def rewind(self) -> None:
        """Read again from the start: a restarted Tansu begins every log at offset 0 (memory storage), and
        answers a fetch beyond the new end with nothing rather than OFFSET_OUT_OF_RANGE."""
        assert self._consumer is not None
        parts = [TopicPartition(SUPPRESSION_CHANGES, p) for p in range(TOPICS[SUPPRESSION_CHANGES])]
        await self._consumer.seek_to_beginning(*parts)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


class FakeTarget:
    """tools/fake_outbound.py as a child process: an Outbound DNC endpoint that records every request."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"fake-outbound-{name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "tools" / "fake_outbound.py"), "--port", str(self.port)],
            start_new_session=True,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=2.0) as c:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get(f"{self.base_url}/_stats")).status_code == 200:
                        return
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"fake outbound target {self.name} did not start")
                await asyncio.sleep(0.1)

    async def requests(self, path_prefix: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=30.0) as c:
            r = await c.get(f"{self.base_url}/_requests", params={"path_prefix": path_prefix})
            r.raise_for_status()
            return list(r.json()["items"])

    async def slow(self, delay_ms: int) -> None:
        async with httpx.AsyncClient(timeout=10.0) as c:
            r = await c.post(f"{self.base_url}/_behaviour", json={"delay_ms": delay_ms})
            r.raise_for_status()

    async def normal(self) -> None:
        async with httpx.AsyncClient(timeout=10.0) as c:
            (await c.delete(f"{self.base_url}/_behaviour")).raise_for_status()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Rig:
    """A private LocalStack with all four services on it; faults are injected here, nowhere else."""

    def __init__(self, base_dir: Path, log_dir: Path) -> None:
        self.stack = LocalStack(base_dir)
        self.log_dir = log_dir
        self.services: dict[str, ServiceProcess] = {}
        self.target_a = FakeTarget("a", log_dir)  # TM targets (outbound-sync's URL template points here)
        self.target_b = FakeTarget("b", log_dir)  # MANUAL targets (own URL)
        self.producer: AIOKafkaProducer | None = None
        self.watch: ChangeWatch | None = None
        self.rows: list[Row] = []
        # (topic, partition) -> next offset, for the topics the rig writes (LeadStopped, CallResult)
        self.log_end: dict[tuple[str, int], int] = {}
        # (topic, partition) -> the log's end when the broker last lost its logs (Tansu memory)
        self.rewound_end: dict[tuple[str, int], int] = {}
        self.broker_gone_at: float | None = None  # when the stopped broker's process had exited
        self.publishing = asyncio.Event()  # cleared while a restarted broker gets its topics back
        self.publishing.set()

    async def start(self) -> None:
        started = time.monotonic()
        await asyncio.to_thread(self.stack.start)
        await ensure_topics(self.stack.kafka_bootstrap, TOPICS)
        await self.target_a.start()
        await self.target_b.start()
        database = await create_database(self.stack.postgres_admin_url)
        dsns = await provision_all(database)
        suffix = f".{uuid.uuid4().hex[:8]}"
        extra: dict[str, dict[str, Any]] = {
            "lead-action": {"RATE_LIMIT_ACTIONS": "100000/10", "RATE_LIMIT_SEARCHES": "100000/10"},
            "outbound-sync": {
                "OUTBOUND_TM_URL_TEMPLATE": f"{self.target_a.base_url}/outbound{{system}}",
                "DELIVERY_TIMEOUT_S": DELIVERY_TIMEOUT_S,
                "DELIVERY_CONNECT_TIMEOUT_S": DELIVERY_CONNECT_TIMEOUT_S,
                "DELIVERY_BACKOFF_BASE_S": 0.2,
                "DELIVERY_BACKOFF_MAX_S": 2.0,
                "BREAKER_COOLDOWN_S": 2.0,
                "DELIVERY_POLL_S": 0.2,
            },
        }
        for name in SERVICES:
            env = service_env(
                kafka=self.stack.kafka_bootstrap,
                database_url=dsns[name],
                redis_url=self.stack.redis_url,
                secret=SECRET,
                group_suffix=suffix,
                **extra.get(name, {}),
            )
            self.services[name] = ServiceProcess(name, env, self.log_dir)
        t0 = time.monotonic()
        await asyncio.gather(*(proc.start(timeout=180.0) for proc in self.services.values()))
        print(f"chaos rig: stack and fakes {t0 - started:.1f} s, four services {time.monotonic() - t0:.1f} s")
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.stack.kafka_bootstrap, linger_ms=5, request_timeout_ms=3000
        )
        await self.producer.start()
        self.watch = ChangeWatch(self.stack.kafka_bootstrap)
        await self.watch.start()

    async def close(self) -> None:
        if self.watch is not None:
            await self.watch.stop()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.producer.stop(), 10)
        for proc in self.services.values():
            await proc.stop()
        self.target_a.stop()
        self.target_b.stop()
        await asyncio.to_thread(self.stack.destroy)

    def url(self, service: str) -> str:
        return self.services[service].base_url

    # -- faults: each returns once the component is back (the heal) ---------------------------------

    async def kill_service(self, name: str) -> None:
        proc = self.services[name]
        proc.kill()
        await asyncio.sleep(PLAN.hold)
        t0 = time.monotonic()
        await proc.start(timeout=180.0)
        print(f"chaos: {name} restarted in {time.monotonic() - t0:.1f} s")

    async def bounce_postgres(self) -> None:
        await asyncio.to_thread(self.stack.stop_postgres)
        await asyncio.sleep(PLAN.hold)
        await asyncio.to_thread(self.stack.start_postgres)

    async def flush_redis(self) -> None:
        conn = await asyncio.open_connection("127.0.0.1", self.stack.redis_port)
        reader, writer = conn
        writer.write(b"FLUSHALL\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"+OK")
        writer.close()

    async def bounce_redis(self) -> None:
        await asyncio.to_thread(self.stack.stop_redis)
        await asyncio.sleep(PLAN.hold)
        await asyncio.to_thread(self.stack.start_redis)

    async def slow_target(self) -> None:
        """Target A answers every request after SLOW_MS (beyond outbound-sync's delivery timeout)."""
        await self.target_a.slow(SLOW_MS)
        await asyncio.sleep(PLAN.hold)
        await self.target_a.normal()

    async def bounce_broker(self) -> None:
        ends = await self._log_ends()
        await asyncio.to_thread(self.stack.stop_broker)
        # Tansu answers until its process exits (SIGTERM takes ~1.5 s), that, not the request, is the loss.
        self.broker_gone_at = time.monotonic()
        for tp, end in self.log_end.items():
            ends[tp] = max(ends.get(tp, 0), end)
        self.rewound_end, self.log_end = ends, {}
        await asyncio.sleep(PLAN.hold)
        # Tansu keeps topics in memory: they are gone. Recreate them as an operator would, before the
        # services' clients auto-create them with the broker's default partition count (they did, with
        # four services). Kafka keeps its topics, so the services and our publishers are held (SIGSTOP,
        # a gate) for the moment between the broker's start and the topics' return.
        self.publishing.clear()
        self._signal_services(signal.SIGSTOP)
        try:
            await asyncio.to_thread(self.stack.start_broker)
            await ensure_topics(self.stack.kafka_bootstrap, TOPICS)
        finally:
            self._signal_services(signal.SIGCONT)
            self.publishing.set()
        assert self.watch is not None
        await self.watch.rewind()

    def _signal_services(self, sig: signal.Signals) -> None:
        """Signal the process group of every running service of this rig (our children, by PID)."""
        for proc in self.services.values():
            if proc.proc is not None and proc.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.proc.pid, sig)

    async def _log_ends(self) -> dict[tuple[str, int], int]:
        """The end of every partition of the tracked topics (what consumers' positions may be up to)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.stack.kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(t, p) for t in TRACKED_TOPICS for p in range(TOPICS[t])]
            ends = await consumer.end_offsets(parts)
        finally:
            await consumer.stop()
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}

    async def log_ends_now(self) -> dict[tuple[str, int], int]:
        return await self._log_ends()


async def consumer_lag(base_url: str) -> float | None:
    """Sum of the service's dialguard_consumer_lag gauges (None if /metrics does not answer)."""
    try:
        async with httpx.AsyncClient(timeout=5.0) as c:
            text = (await c.get(f"{base_url}/metrics")).text
    except httpx.HTTPError:
        return None
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("dialguard_consumer_lag{")
    )


HEADER = (
    "| fault | accepted opt-outs | in flight at fault | lost | lost with Tansu memory | duplicated "
    "| redelivered (same key) | false negatives | checks (errors) | unstops not applied | lead actions "
    "| other 5xx | consumer lag | recovery s |"
)


def table(rows: list[Row]) -> str:
    """The chaos table as Markdown."""
    lines = [HEADER, "|" + "---|" * 14]
    for r in rows:
        lag: object = sum(v for v in r.lag.values() if v is not None) if r.lag else "-"
        if any(v is None for v in r.lag.values()):
            lag = f"{lag} (no /metrics)"
        lines.append(
            f"| {r.fault} | {r.accepted} | {r.in_flight} | {r.lost} | {r.lost_to_broker_memory} "
            f"| {r.duplicated} | {r.redelivered} | {r.false_negatives} | {r.checks} ({r.check_errors}) "
            f"| {r.unstops_missing} | {r.actions} | {sum(r.server_errors.values())} | {lag} | {r.recovery_s} |"
        )
    return "\n".join(lines)
