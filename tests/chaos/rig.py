"""The fault rig: a private stack, the suppression service, a bounded load, a continuous checker, a topic watch.

The promise under test is "never dial someone who opted out, never lose an opt-out". An opt-out is
*accepted* when the HTTP add answered 2xx, or when the broker acked its LeadStopped event. While a
fault is injected and healed, a checker asks POST /v1/check about every phone whose opt-out is known
to be in force (HTTP-acked, or an acked event whose effect was already seen) and counts every answer
that says "not suppressed" (a false negative). After the fault, every accepted opt-out must be
suppressed by the check API and present on suppression.changes.v1, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import phonenumbers
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from dialguard.events import Envelope
from dialguard.events.topics import LEADS_STOPPED, SUPPRESSION_CHANGES, TOPICS
from dialguard.messaging.admin import ensure_topics
from dialguard.testing.helpers import SECRET, auth
from dialguard.testing.local_stack import LocalStack
from dialguard.testing.services import ServiceProcess, create_database, provision_all, service_env

LONG = os.environ.get("CHAOS_LONG", "") not in ("", "0")


@dataclass(frozen=True)
class Plan:
    """How much load and how long a fault lasts; the short form runs inside `make test`."""

    cycles: int
    event_rate: float  # LeadStopped/LeadUnstopped per second
    warmup: float  # load before the fault
    hold: float  # how long the component stays down
    cooldown: float  # load after the heal
    recovery_timeout: float


SHORT = Plan(cycles=1, event_rate=40.0, warmup=1.0, hold=2.0, cooldown=0.5, recovery_timeout=90.0)
LONG_PLAN = Plan(cycles=3, event_rate=150.0, warmup=4.0, hold=8.0, cooldown=4.0, recovery_timeout=180.0)
PLAN = LONG_PLAN if LONG else SHORT


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
    false_negatives: int = 0
    checks: int = 0
    check_errors: int = 0
    unstops_missing: int = 0
    recovery_s: float = 0.0
    server_errors: Counter[str] = field(default_factory=Counter)  # "METHOD path -> status" of 5xx but 503
    notes: list[str] = field(default_factory=list)


class ChangeWatch:
    """Reads suppression.changes.v1 from the start (group-less, so a broker restart only resets it)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.added: dict[tuple[str, str], list[str]] = defaultdict(list)  # (account, phone) -> event ids
        self.removed: dict[tuple[str, str], list[str]] = defaultdict(list)
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
                    self._record(r.value)

    def _record(self, raw: bytes | None) -> None:
        try:
            env = orjson.loads(raw or b"")
            payload = env["payload"]
            key = (env["account_id"], payload["entry"]["identifier"]["value"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        target = self.added if payload.get("op") == "added" else self.removed
        target[key].append(env["event_id"])

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


class Rig:
    """A private LocalStack with the suppression service on it; faults are injected here, nowhere else."""

    def __init__(self, base_dir: Path, log_dir: Path) -> None:
        self.stack = LocalStack(base_dir)
        self.log_dir = log_dir
        self.service: ServiceProcess | None = None
        self.dsn = ""
        self.producer: AIOKafkaProducer | None = None
        self.watch: ChangeWatch | None = None
        self.rows: list[Row] = []
        self.log_end: dict[
            int, int
        ] = {}  # leads.stopped.v1 partition -> next offset (we are its only writer)
        self.rewound_end: dict[int, int] = {}  # log_end when the broker last lost its logs
        self.broker_gone_at: float | None = None  # when the stopped broker's process had exited

    async def start(self) -> None:
        await asyncio.to_thread(self.stack.start)
        await ensure_topics(self.stack.kafka_bootstrap, TOPICS)
        database = await create_database(self.stack.postgres_admin_url)
        self.dsn = (await provision_all(database))["suppression"]
        env = service_env(
            kafka=self.stack.kafka_bootstrap,
            database_url=self.dsn,
            redis_url=self.stack.redis_url,
            secret=SECRET,
            group_suffix=f".{uuid.uuid4().hex[:8]}",
        )
        self.service = ServiceProcess("suppression", env, self.log_dir)
        await self.service.start()
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
        if self.service is not None:
            await self.service.stop()
        await asyncio.to_thread(self.stack.destroy)

    @property
    def base_url(self) -> str:
        assert self.service is not None
        return self.service.base_url

    # -- faults: each returns once the component is back (the heal) ---------------------------------

    async def kill_service(self) -> None:
        assert self.service is not None
        self.service.kill()
        await asyncio.sleep(PLAN.hold)
        await self.service.start()

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

    async def bounce_broker(self) -> None:
        await asyncio.to_thread(self.stack.stop_broker)
        # Tansu answers until its process exits (SIGTERM takes ~1.5 s): that, not the request, is the loss.
        self.broker_gone_at = time.monotonic()
        self.rewound_end, self.log_end = dict(self.log_end), {}
        await asyncio.sleep(PLAN.hold)
        await asyncio.to_thread(self.stack.start_broker)
        # Tansu keeps topics in memory: they are gone. Recreate them as an operator would, before the
        # services' producers auto-create them with the wrong partition count.
        await ensure_topics(self.stack.kafka_bootstrap, TOPICS)
        assert self.watch is not None
        await self.watch.rewind()

    # -- one fault cycle -----------------------------------------------------------------------------

    async def cycle(self, fault: str, inject: Callable[[], Awaitable[None]]) -> Row:
        """Load, fault, heal, recover; measure everything the promise is about."""
        cycle = _Cycle(self, fault)
        row = await cycle.run(inject)
        self.rows.append(row)
        return row


class _Cycle:
    """The state of one fault cycle: what was accepted when, and what the checker saw."""

    def __init__(self, rig: Rig, fault: str) -> None:
        self.rig = rig
        self.row = Row(fault=fault)
        self.account = f"chaos-{re.sub(r'[^a-z]+', '-', fault.lower())}-{uuid.uuid4().hex[:6]}"
        self.stoplist_id = ""
        self.event_acked: dict[str, float] = {}  # phone -> when the broker acked its LeadStopped
        self.event_offsets: dict[str, tuple[int, int]] = {}  # phone -> (partition, offset) of that ack
        self.http_acked: dict[str, float] = {}  # phone -> when the HTTP add answered 2xx
        self.unstopped: dict[str, float] = {}  # phones stopped then unstopped (both acked) -> stop acked
        self.in_force: set[str] = set()  # phones a check must call suppressed from now on
        self.false_negative_phones: set[str] = set()
        self.stop_load = asyncio.Event()
        self.fault_started = 0.0
        self.fault_healed = 0.0
        self.broker_stopped_at: float | None = None

    def h(self, roles: list[str] | None = None) -> dict[str, str]:
        return auth(self.account, roles or ["OUTBOUND_MANAGER"])

    async def run(self, inject: Callable[[], Awaitable[None]]) -> Row:
        async with httpx.AsyncClient(base_url=self.rig.base_url, timeout=5.0) as client:
            r = await client.post("/v1/stoplists", json={"name": f"chaos {self.row.fault}"}, headers=self.h())
            assert r.status_code == 201, r.text
            self.stoplist_id = r.json()["id"]
            tasks = [
                asyncio.create_task(self._publish_load()),
                asyncio.create_task(self._http_load(client)),
                asyncio.create_task(self._checker(client)),
            ]
            try:
                await asyncio.sleep(PLAN.warmup)
                self.row.in_flight = self._pending()
                self.fault_started = time.monotonic()
                self.rig.broker_gone_at = None
                await inject()
                self.fault_healed = time.monotonic()
                self.broker_stopped_at = self.rig.broker_gone_at
                await asyncio.sleep(PLAN.cooldown)
                self.stop_load.set()
                await asyncio.gather(*tasks[:2])
                await self._recover(client)
            finally:
                self.stop_load.set()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await self._count_duplicates(client)
        self.row.accepted = len(self.event_acked) + len(self.http_acked)
        self.row.false_negatives = len(self.false_negative_phones)
        return self.row

    def _pending(self) -> int:
        """Accepted opt-outs whose effect nobody has seen yet (events and adds in flight)."""
        assert self.rig.watch is not None
        seen = self.rig.watch.added
        accepted = set(self.event_acked) | set(self.http_acked)
        return sum(1 for p in accepted if (self.account, p) not in seen)

    # -- the load ------------------------------------------------------------------------------------

    async def _publish(self, event_type: str, phone: str) -> tuple[int, int] | None:
        """One upstream event; its (partition, offset) only when the broker acked it."""
        assert self.rig.producer is not None
        payload: dict[str, Any] = {"identifier": {"type": "phone", "value": "+" + phone}}
        if event_type == "LeadStopped":
            payload |= {"source": "end_user_message", "reason": "STOP"}
        env = Envelope(event_type=event_type, account_id=self.account, producer="chaos", payload=payload)
        try:
            meta = await asyncio.wait_for(
                self.rig.producer.send_and_wait(
                    LEADS_STOPPED,
                    env.to_bytes(),
                    key=f"{self.account}:phone:{phone}".encode(),
                    headers=[("event_type", event_type.encode())],
                ),
                timeout=3.0,
            )
        except (KafkaError, TimeoutError, OSError):
            return None
        ends = self.rig.log_end
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
        return meta.partition, meta.offset

    async def _publish_load(self) -> None:
        """Bounded LeadStopped load; every tenth phone is then unstopped (same key, so in order)."""
        interval = 1.0 / PLAN.event_rate
        for i in itertools.count():
            if self.stop_load.is_set():
                return
            phone = next(PHONES)
            where = await self._publish("LeadStopped", phone)
            if where is not None:
                if i % 10 == 9:
                    stopped_at = time.monotonic()
                    unstop_where = await self._publish("LeadUnstopped", phone)
                    if unstop_where is not None:
                        self.unstopped[phone] = stopped_at
                        self.event_offsets[phone] = unstop_where
                    continue  # a stop without its acked unstop is neither here nor there: not counted
                self.event_acked[phone] = time.monotonic()
                self.event_offsets[phone] = where
            await asyncio.sleep(interval)

    async def _http_load(self, client: httpx.AsyncClient) -> None:
        """An operator adding entries by hand, one after another; only a 2xx counts as accepted."""
        while not self.stop_load.is_set():
            phone = next(PHONES)
            body = {"identifier": {"type": "phone", "value": "+" + phone}, "reason": "chaos"}
            try:
                r = await client.post(
                    f"/v1/stoplists/{self.stoplist_id}/entries", json=body, headers=self.h()
                )
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
                continue
            if 200 <= r.status_code < 300:
                self.http_acked[phone] = time.monotonic()
                self.in_force.add(phone)
            else:
                self._server_error("POST /v1/stoplists/{id}/entries", r)
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.05)

    def _server_error(self, route: str, r: httpx.Response) -> None:
        """An outage should answer 503 (retry later); any other 5xx is counted against the service."""
        if r.status_code >= 500 and r.status_code != 503:
            self.row.server_errors[f"{route} -> {r.status_code} {r.text[:120]}"] += 1

    # -- the checker ---------------------------------------------------------------------------------

    async def _check(self, client: httpx.AsyncClient, phones: list[str]) -> dict[str, bool] | None:
        """One batch check as a dialer sends it; None when the service did not answer 200."""
        if not phones:
            return {}
        body = {"identifiers": [{"type": "phone", "value": p} for p in phones]}
        try:
            r = await client.post("/v1/check", json=body, headers=self.h(["DIALER"]))
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            self._server_error("POST /v1/check", r)
            return None
        return {p: res["suppressed"] for p, res in zip(phones, r.json()["results"], strict=True)}

    async def _checker(self, client: httpx.AsyncClient) -> None:
        """Ask about every accepted phone, continuously; count each 'not suppressed' for one in force."""
        assert self.rig.watch is not None
        while True:
            seen = self.rig.watch.added
            for p in self.event_acked:
                if (self.account, p) in seen:
                    self.in_force.add(p)
            must = set(self.in_force)
            phones = sorted(must | set(self.event_acked))
            answers = await self._check(client, phones)
            self.row.checks += 1
            if answers is None:
                self.row.check_errors += 1
                await asyncio.sleep(0.1)
                continue
            for p, suppressed in answers.items():
                if suppressed:
                    self.in_force.add(p)
                elif p in must:
                    self.false_negative_phones.add(p)
            await asyncio.sleep(0.05)

    # -- after the fault -----------------------------------------------------------------------------

    def _missing(self, answers: dict[str, bool]) -> tuple[set[str], set[str], set[str]]:
        """Accepted phones not suppressed, accepted phones not on the topic, unstops not applied."""
        assert self.rig.watch is not None
        added, removed = self.rig.watch.added, self.rig.watch.removed
        accepted = set(self.event_acked) | set(self.http_acked)
        not_checked = {p for p in accepted if not answers.get(p)}
        not_on_topic = {p for p in accepted if (self.account, p) not in added}
        unstops = {p for p in self.unstopped if answers.get(p) or (self.account, p) not in removed}
        return not_checked, not_on_topic, unstops

    async def _recover(self, client: httpx.AsyncClient) -> None:
        """Wait until every accepted opt-out is checked suppressed and on the topic; time it from the heal."""
        accepted = sorted(set(self.event_acked) | set(self.http_acked) | set(self.unstopped))
        deadline = time.monotonic() + PLAN.recovery_timeout
        missing: tuple[set[str], set[str], set[str]] = (set(accepted), set(accepted), set())
        while time.monotonic() < deadline:
            answers = await self._check(client, accepted)
            if answers is not None:
                missing = self._missing(answers)
                if not any(m - self._excused(m) for m in missing):
                    break
            await asyncio.sleep(0.25)
        self.row.recovery_s = round(time.monotonic() - self.fault_healed, 2)
        not_checked, not_on_topic, unstops = missing
        lost = not_checked | not_on_topic
        if self.broker_stopped_at is not None:
            # Tansu stores in memory: an event the old broker acked but nobody consumed died with it.
            # Those are the broker's loss, not the services'; HTTP adds are never excused.
            died = self._excused(lost)
            self.row.lost_to_broker_memory = len(died)
            lost -= died
            unstops -= self._excused(unstops)
        self.row.lost = len(lost)
        self.row.unstops_missing = len(unstops)
        if lost and self.broker_stopped_at is not None:
            when = sorted(
                round((self.event_acked.get(p) or self.http_acked[p]) - self.broker_stopped_at, 1)
                for p in lost
            )
            self.row.notes.append(
                f"lost ones were acked {when[0]}..{when[-1]} s after the old broker exited "
                f"(heal at {round(self.fault_healed - self.broker_stopped_at, 1)} s)"
            )
        if lost:
            on_log = await self._on_topic_now(lost)
            self.row.notes.append(
                f"a fresh consumer reading {SUPPRESSION_CHANGES} from offset 0 now finds {len(on_log)} of them"
            )
            http = lost & set(self.http_acked)
            self.row.notes.append(
                f"lost {len(lost)}: {len(http)} HTTP adds, {len(lost) - len(http)} events; "
                f"{len(lost & not_checked)} not suppressed by the check API, "
                f"{len(lost & not_on_topic)} never on {SUPPRESSION_CHANGES}; e.g. {sorted(lost)[:3]}"
            )
        for what, n in self.row.server_errors.items():
            self.row.notes.append(f"{n}x {what}")
        if self.false_negative_phones:
            self.row.notes.append(f"false negatives e.g. {sorted(self.false_negative_phones)[:5]}")

    async def _on_topic_now(self, phones: set[str]) -> set[str]:
        """Which phones' `added` events a brand-new reader finds (tells a stuck watcher from a lost event)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.rig.stack.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
        )
        await consumer.start()
        found: set[str] = set()
        try:
            parts = [
                TopicPartition(SUPPRESSION_CHANGES, p)
                for p in consumer.partitions_for_topic(SUPPRESSION_CHANGES) or ()
            ]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                positions = [await consumer.position(tp) for tp in parts]
                if all(pos >= ends[tp] for pos, tp in zip(positions, parts, strict=True)):
                    break
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for r in records:
                        env = orjson.loads(r.value or b"{}")
                        value = env.get("payload", {}).get("entry", {}).get("identifier", {}).get("value")
                        if env.get("account_id") == self.account and value in phones:
                            found.add(value)
        finally:
            await consumer.stop()
        return found

    def _excused(self, phones: set[str]) -> set[str]:
        """The phones whose loss the broker restart explains (none when the fault was not the broker)."""
        if self.broker_stopped_at is None:
            return set()
        return {p for p in phones if self._died_with_tansu(p)}

    def _died_with_tansu(self, phone: str) -> bool:
        """Lost because Tansu keeps logs in memory (impossible on Kafka), not because of a service:
        - anything accepted before the broker stopped (the old log is gone; consumers may not have read it);
        - an event the new broker stored below the old log's end: a running consumer keeps its position,
          and Tansu answers a fetch past the new end with nothing, so it skips up to that offset."""
        assert self.broker_stopped_at is not None
        acked = self.event_acked.get(phone) or self.http_acked.get(phone) or self.unstopped[phone]
        if acked < self.broker_stopped_at:
            return True
        where = self.event_offsets.get(phone)
        return where is not None and where[1] < self.rig.rewound_end.get(where[0], 0)

    async def _count_duplicates(self, client: httpx.AsyncClient) -> None:
        """An opt-out applied twice shows as two entries or two distinct `added` events for one phone."""
        assert self.rig.watch is not None
        dup_events = {
            p for (acct, p), ids in self.rig.watch.added.items() if acct == self.account and len(set(ids)) > 1
        }
        values: Counter[str] = Counter()
        r = await client.get("/v1/stoplists", headers=self.h(["VIEWER"]))
        assert r.status_code == 200, r.text
        for stoplist in r.json()["items"]:
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": 1000}
                if cursor:
                    params["cursor"] = cursor
                page = await client.get(
                    f"/v1/stoplists/{stoplist['id']}/entries", params=params, headers=self.h(["VIEWER"])
                )
                assert page.status_code == 200, page.text
                for entry in page.json()["items"]:
                    values[entry["identifier"]["value"]] += 1
                cursor = page.json()["next_cursor"]
                if not cursor:
                    break
        dup_entries = {v for v, n in values.items() if n > 1}
        self.row.duplicated = len(dup_events | dup_entries)


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
    "| false negatives | checks (errors) | unstops not applied | other 5xx | recovery s |"
)


def table(rows: list[Row]) -> str:
    """The chaos table as Markdown."""
    lines = [HEADER, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r.fault} | {r.accepted} | {r.in_flight} | {r.lost} | {r.lost_to_broker_memory} "
            f"| {r.duplicated} | {r.false_negatives} | {r.checks} ({r.check_errors}) "
            f"| {r.unstops_missing} | {sum(r.server_errors.values())} | {r.recovery_s} |"
        )
    return "\n".join(lines)
