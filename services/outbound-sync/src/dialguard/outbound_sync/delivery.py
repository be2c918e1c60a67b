"""The delivery worker: one lane per target (own keep-alive client, K senders, circuit breaker) over leased rows.

A lane is a pipeline, not a sequence of rounds: a claimer keeps a small queue of leased rows topped up
(one UPDATE … RETURNING per claim), K senders drain it, and a recorder writes outcomes in batches (one
statement per batch). So the target's connections never wait for the database, a slow answer holds up
only its own slot, and a hanging target holds only its own K slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import structlog

from dialguard.outbound_sync import repository as repo
from dialguard.outbound_sync.config import Settings
from dialguard.outbound_sync.domain import (
    Outcome,
    UnsupportedIdentifier,
    backoff_seconds,
    classify,
    idempotency_key,
    looks_like_json,
    mask_headers,
    render_template,
    tm_body,
    tm_url,
)
from dialguard.outbound_sync.http_client import HttpClient, aclose_quietly
from dialguard.outbound_sync.liveness import OWNER_LOCK_SPACE, OwnerLock
from dialguard.outbound_sync.metrics import BACKLOG, BREAKER_OPEN, DELIVERED, FAILED, LATENCY

log = structlog.get_logger(__name__)
BODY_LOG_LIMIT = 2000
RESPONSE_READ_LIMIT = 4096
CLIENT_IDLE_S = 300.0
BACKLOG_EVERY_S = 2.0
REAP_EVERY_S = 2.0
"""How often a worker looks for rows leased by an owner that is gone (liveness.py)."""
LANE_IDLE_S = 5.0  # a lane with nothing to send lingers this long (woken at once by new rows), then ends
FLUSH_S = 0.002  # the recorder waits this long for more outcomes before writing a batch
TARGET_CONFIG_S = 1.0  # a lane re-reads its target's settings this often (a pause applies at the next claim)


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """What one attempt sends."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None


def build_request(target: Any, entry: dict[str, Any], *, tm_template: str) -> OutboundRequest:
    """TM: Outbound's DNC endpoint; MANUAL: the target's own method, URL, headers and rendered body."""
    key = idempotency_key(target["id"], str(entry.get("entry_id")))
    if target["type"] == "TM":
        body = tm_body(entry, target["expires_in_days"])
        return OutboundRequest(
            "POST",
            tm_url(tm_template, target["system"], target["project"]),
            {"Content-Type": "application/json", "Idempotency-Key": key},
            orjson.dumps(body),
        )
    headers: dict[str, str] = dict(target["headers"] or {})
    template: str | None = target["body_template"]
    as_json = looks_like_json(template, headers)
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json" if as_json else "text/plain; charset=utf-8"
    headers["Idempotency-Key"] = key
    method = str(target["method"] or "POST").upper()
    if method == "GET":
        content = None
    elif template is None:
        content = orjson.dumps(entry)
    else:
        content = render_template(template, entry, json_escape=as_json).encode()
    return OutboundRequest(method, target["url"], headers, content)


@dataclass
class Breaker:
    """Stops sending to a target after consecutive failures; one probe after the cool-down decides."""

    threshold: int
    cooldown_s: float
    failures: int = 0
    opened_at: float | None = None
    opened_for: float = 0.0

    def allows(self) -> bool:
        """Closed, or open long enough to let one probe through."""
        return self.opened_at is None or time.monotonic() - self.opened_at >= self.opened_for

    @property
    def probing(self) -> bool:
        """Half-open: only one row goes out until it succeeds."""
        return self.opened_at is not None

    def record(self, success: bool, transient_failure: bool) -> None:
        """Success closes; a transient failure counts toward opening (again, for longer)."""
        if success:
            self.failures, self.opened_at, self.opened_for = 0, None, 0.0
            return
        if not transient_failure:
            return
        self.failures += 1
        if self.opened_at is not None and not self.allows():
            return  # the rest of the round that opened it: already counted
        if self.opened_at is not None or self.failures >= self.threshold:
            self.opened_for = min(self.cooldown_s * 10, max(self.cooldown_s, self.opened_for * 2))
            self.opened_at = time.monotonic()


@dataclass
class DeliveryWorker:
    """Finds targets with due rows and runs one lane per target, so a slow target only slows itself."""

    pool: asyncpg.Pool
    settings: Settings
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    _lanes: dict[uuid.UUID, Lane] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _clients: dict[uuid.UUID, tuple[HttpClient, float]] = field(default_factory=dict)
    _breakers: dict[uuid.UUID, Breaker] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _backlog_at: float = 0.0
    _leftovers: dict[uuid.UUID, tuple[list[dict[str, Any]], list[uuid.UUID]]] = field(default_factory=dict)
    _owner_lock: OwnerLock | None = None
    _reaped_at: float = 0.0

    @property
    def concurrency(self) -> int:
        """Requests in flight per target at most (its senders, and its client's connections)."""
        return self.settings.DELIVERY_CONCURRENCY_PER_TARGET

    @property
    def batch_size(self) -> int:
        """Rows a lane holds leased at most (queued plus in flight)."""
        return self.concurrency * 8

    @property
    def lease_s(self) -> float:
        """Long enough for a whole queue even if every request times out: no other instance resends early."""
        s = self.settings
        waves = math.ceil(self.batch_size / self.concurrency)
        return waves * (s.DELIVERY_TIMEOUT_S + s.DELIVERY_CONNECT_TIMEOUT_S) + 30.0

    def wake(self, targets: Iterable[uuid.UUID] | None = None) -> None:
        """New or reset rows: the targets' lanes claim now instead of at the next poll (None: every target)."""
        if targets is None:
            for lane in self._lanes.values():
                lane.kick()
            self._wake.set()
            return
        for target_id in targets:
            running = self._lanes.get(target_id)
            if running is None:
                self._wake.set()  # no lane yet: the dispatcher starts one
            else:
                running.kick()

    async def run(self) -> None:
        """The dispatcher loop (runtime.background)."""
        try:
            while True:
                self._wake.clear()  # before looking: a wake that arrives while we look is not lost
                try:
                    await self._dispatch()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("delivery dispatch failed", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.DELIVERY_POLL_S)
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop lanes (outcomes already known are still written), hand back unfinished leases, close clients."""
        tasks = list(self._tasks)  # lanes still claiming and lanes that stopped claiming but still send
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._lanes.clear()
        with contextlib.suppress(Exception):
            await self._settle_leftovers()  # sent rows recorded as sent, not sent again
        with contextlib.suppress(Exception):
            async with self.pool.acquire() as conn:
                await repo.release_leases(conn, owner=self.owner)
        for client, _ in self._clients.values():
            await aclose_quietly(client)
        self._clients.clear()
        if self._owner_lock is not None:
            await self._owner_lock.close()

    def _keep_leftovers(
        self, target_id: uuid.UUID, outcomes: list[dict[str, Any]], unsent: list[uuid.UUID]
    ) -> None:
        """A lane ended while Postgres was away: its outcomes and unsent rows wait here, still leased to us."""
        kept_outcomes, kept_unsent = self._leftovers.setdefault(target_id, ([], []))
        kept_outcomes.extend(outcomes)
        kept_unsent.extend(unsent)

    async def _settle_leftovers(self) -> None:
        """Record kept outcomes and hand back kept unsent rows once Postgres answers again: without this
        they waited out their lease (~40 s after a Postgres restart, for rows of a lane that was running)."""
        for target_id, (outcomes, unsent) in list(self._leftovers.items()):
            async with self.pool.acquire() as conn, conn.transaction():
                if outcomes:
                    await repo.record_results(conn, target_id=target_id, owner=self.owner, results=outcomes)
                if unsent:
                    await repo.release_rows(conn, ids=unsent, owner=self.owner)
            del self._leftovers[target_id]
            lane = self._lanes.get(target_id)
            if lane is not None:
                lane.kick()

    async def _reap_dead_leases(self) -> None:
        """Every REAP_EVERY_S: say this owner is alive (its lock), and hand back rows whose owner is not."""
        if self._owner_lock is None:
            self._owner_lock = OwnerLock(self.settings.DATABASE_URL, self.owner)
        await self._owner_lock.hold()
        if time.monotonic() - self._reaped_at < REAP_EVERY_S:
            return
        self._reaped_at = time.monotonic()
        async with self.pool.acquire() as conn:
            targets = await repo.release_dead_leases(conn, me=self.owner, lock_space=OWNER_LOCK_SPACE)
        if targets:
            log.info("took over the leases of a process that is gone", targets=len(targets))
            self.wake(targets)

    async def _dispatch(self) -> None:
        if self._leftovers:
            await self._settle_leftovers()
        await self._reap_dead_leases()
        for target_id in [t for t, lane in self._lanes.items() if lane.task is not None and lane.task.done()]:
            del self._lanes[target_id]
        async with self.pool.acquire() as conn:
            due = await repo.due_targets(conn, exclude=list(self._lanes))
            if time.monotonic() - self._backlog_at >= BACKLOG_EVERY_S:
                self._backlog_at = time.monotonic()
                for row in await repo.backlog_by_target(conn):
                    BACKLOG.labels(str(row["target_id"])).set(row["backlog"])
        for row in due:
            if row["id"] not in self._lanes and self._breaker(row["id"]).allows():
                lane = self._lanes[row["id"]] = Lane(self, row["id"])
                lane.task = asyncio.create_task(lane.run())
                self._tasks.add(lane.task)
                lane.task.add_done_callback(self._tasks.discard)
        await self._close_idle_clients()

    def _lane_ended(self, lane: Lane) -> None:
        """Called (synchronously) the moment a lane stops claiming: a wake after this starts a new lane."""
        if self._lanes.get(lane.target_id) is lane:
            del self._lanes[lane.target_id]

    def _breaker(self, target_id: uuid.UUID) -> Breaker:
        breaker = self._breakers.get(target_id)
        if breaker is None:
            s = self.settings
            breaker = self._breakers[target_id] = Breaker(s.BREAKER_THRESHOLD, s.BREAKER_COOLDOWN_S)
        return breaker

    def _client(self, target_id: uuid.UUID) -> HttpClient:
        """One keep-alive client per target: connections are reused, and one target cannot starve another's."""
        found = self._clients.get(target_id)
        client = found[0] if found else None
        if client is None or client.closed:
            client = HttpClient(
                limit=self.concurrency,
                connect_timeout=self.settings.DELIVERY_CONNECT_TIMEOUT_S,
                read_limit=RESPONSE_READ_LIMIT,
            )
        self._clients[target_id] = (client, time.monotonic())
        return client

    async def _close_idle_clients(self) -> None:
        now = time.monotonic()
        for target_id, (client, used) in list(self._clients.items()):
            if target_id not in self._lanes and now - used > CLIENT_IDLE_S:
                del self._clients[target_id]
                await aclose_quietly(client)

    async def attempt(self, client: HttpClient, target: Any, row: Any) -> dict[str, Any]:
        """One HTTP attempt of one row, summarised for the delivery log."""
        s = self.settings
        entry: dict[str, Any] = row["entry"]
        label = str(target["id"])
        try:
            req = build_request(target, entry, tm_template=s.OUTBOUND_TM_URL_TEMPLATE)
        except UnsupportedIdentifier as exc:
            FAILED.labels(label, "failed").inc()
            return _result(row, "failed", str(exc), None, {"error": str(exc)}, transient=False)
        request_log = {
            "method": req.method,
            "url": req.url,
            "headers": mask_headers(req.headers),
            "body": (req.content or b"").decode("utf-8", "replace")[:BODY_LOG_LIMIT],
        }
        started = time.perf_counter()
        response_log: dict[str, Any]
        try:
            async with asyncio.timeout(s.DELIVERY_TIMEOUT_S + s.DELIVERY_CONNECT_TIMEOUT_S):
                response = await client.request(req.method, req.url, req.headers, req.content)
        except TimeoutError:
            outcome = Outcome("retry", f"timeout after {s.DELIVERY_TIMEOUT_S:g}s")
            response_log = {"error": outcome.error}
        except (OSError, ValueError) as exc:
            outcome = Outcome("retry", f"network error: {type(exc).__name__}: {exc}")
            response_log = {"error": outcome.error}
        else:
            retry_after = response.headers.get("retry-after")
            outcome = classify(response.status, retry_after)
            text = response.body.decode("utf-8", "replace")
            response_log = {"status": response.status, "body": text[:BODY_LOG_LIMIT]}
            if retry_after:
                response_log["retry_after"] = retry_after
            if outcome.error and text.strip():
                outcome = Outcome(
                    outcome.status, f"{outcome.error}: {text.strip()[:200]}", outcome.retry_after_s
                )
        elapsed = time.perf_counter() - started
        response_log["elapsed_ms"] = round(elapsed * 1000, 1)
        latency, delivered, _ = _series(label)
        latency.observe(elapsed)
        if outcome.status == "delivered":
            delivered.inc()
            return _result(row, "delivered", None, request_log, response_log, transient=False)
        if outcome.status == "failed":
            FAILED.labels(label, "failed").inc()
            return _result(row, "failed", outcome.error, request_log, response_log, transient=False)
        if row["attempts"] >= s.DELIVERY_MAX_ATTEMPTS:
            FAILED.labels(label, "dead").inc()
            error = f"{outcome.error} (gave up after {row['attempts']} attempts)"
            return _result(row, "dead", error, request_log, response_log, transient=True)
        FAILED.labels(label, "retrying").inc()
        if outcome.retry_after_s is not None:
            delay = min(outcome.retry_after_s, s.DELIVERY_RETRY_AFTER_MAX_S)
        else:
            delay = backoff_seconds(
                row["attempts"], base=s.DELIVERY_BACKOFF_BASE_S, cap=s.DELIVERY_BACKOFF_MAX_S
            )
        result = _result(row, "pending", outcome.error, request_log, response_log, transient=True)
        result["delay"] = delay
        return result


class Lane:
    """One target's pipeline: a claimer tops up a queue of leased rows, K senders drain it, a recorder
    writes their outcomes in batches. Ends when idle, paused, deleted or when the breaker opens."""

    def __init__(self, worker: DeliveryWorker, target_id: uuid.UUID) -> None:
        self.worker = worker
        self.target_id = target_id
        self.task: asyncio.Task[None] | None = None
        self.breaker = worker._breaker(target_id)
        self._label = str(target_id)
        self._queue: asyncio.Queue[tuple[Any, Any] | None] = asyncio.Queue()
        self._busy = 0  # rows taken by a sender and not yet answered
        self._outcomes: list[dict[str, Any]] = []
        self._kick = asyncio.Event()
        self._outcome_ready = asyncio.Event()
        self._released: list[uuid.UUID] = []
        self._target: Any = None
        self._target_at = 0.0
        self._more = False

    def kick(self) -> None:
        """New rows may be due, or a slot is free: the claimer looks again."""
        self._kick.set()

    async def run(self) -> None:
        """Claimer in this task; senders and the recorder beside it; on the way out, nothing leased is lost."""
        client = self.worker._client(self.target_id)
        senders = [asyncio.create_task(self._sender(client)) for _ in range(self.worker.concurrency)]
        recorder = asyncio.create_task(self._recorder())
        try:
            await self._claimer()
        except asyncio.CancelledError:
            for task in senders:
                task.cancel()
            raise
        except Exception as exc:  # rows already leased go out again when their lease ends
            log.warning("delivery lane failed", target_id=self._label, error=repr(exc))
        finally:
            self.worker._lane_ended(self)
            self.worker._clients[self.target_id] = (client, time.monotonic())  # in use until senders stop
            while not self._queue.empty():  # claimed but never sent: back to the table at once
                item = self._queue.get_nowait()
                if item is not None:
                    self._released.append(item[1]["id"])
            for _ in senders:
                self._queue.put_nowait(None)
            with contextlib.suppress(BaseException):
                await asyncio.gather(*senders, return_exceptions=True)
            recorder.cancel()
            with contextlib.suppress(BaseException):
                await recorder
            try:
                await self._flush()
            except Exception as exc:  # kept by the worker, recorded when Postgres is back
                log.warning("delivery outcomes not recorded yet", target_id=self._label, error=repr(exc))
            if self._released:
                try:
                    async with self.worker.pool.acquire() as conn:
                        await repo.release_rows(conn, ids=self._released, owner=self.worker.owner)
                    self._released = []
                except Exception as exc:  # kept by the worker below
                    log.warning("unsent rows not handed back yet", target_id=self._label, error=repr(exc))
            if self._outcomes or self._released:
                self.worker._keep_leftovers(self.target_id, self._outcomes, self._released)
            self.worker._clients[self.target_id] = (client, time.monotonic())

    async def _claimer(self) -> None:
        worker, breaker = self.worker, self.breaker
        batch = worker.batch_size
        idle_since = time.monotonic()
        while breaker.allows():
            self._kick.clear()
            held = self._queue.qsize() + self._busy
            if breaker.probing:
                want = 1 if held == 0 else 0  # half-open: one row decides
            else:
                want = batch - held if self._queue.qsize() <= batch // 2 else 0  # top up before it runs dry
            got = 0
            if want > 0:
                async with worker.pool.acquire() as conn:
                    if self._target is None or time.monotonic() - self._target_at >= TARGET_CONFIG_S:
                        self._target = await repo.target_config(conn, target_id=self.target_id)
                        self._target_at = time.monotonic()
                    if self._target is None or not self._target["active"]:
                        return
                    rows = await repo.claim(
                        conn,
                        target_id=self.target_id,
                        limit=want,
                        lease_s=worker.lease_s,
                        owner=worker.owner,
                    )
                for row in rows:
                    self._queue.put_nowait((self._target, row))
                got = len(rows)
                self._more = got == want  # a full claim: more may be due, top up as the queue drains
            now = time.monotonic()
            if got or held or self._outcomes:
                idle_since = now
            elif now - idle_since >= LANE_IDLE_S:
                return
            if got == want and want > 0 and not breaker.probing:
                continue  # more may be due: top up as soon as a sender frees room
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), worker.settings.DELIVERY_POLL_S)

    async def _sender(self, client: HttpClient) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            target, row = item
            if not self.breaker.allows():  # opened while this row waited: it goes out after the cool-down
                self._released.append(row["id"])
                continue
            self._busy += 1
            try:
                result = await self.worker.attempt(client, target, row)
            finally:
                self._busy -= 1
            self.breaker.record(result["status"] == "delivered", result["transient"])
            _series(self._label)[2].set(0 if self.breaker.opened_at is None else 1)
            self._outcomes.append(result)
            self._outcome_ready.set()
            if not self.breaker.allows() or (
                self._more and self._queue.qsize() <= self.worker.batch_size // 2
            ):
                self._kick.set()  # the claimer tops up (or stops); otherwise new rows come with a wake

    async def _recorder(self) -> None:
        while True:
            await self._outcome_ready.wait()
            if len(self._outcomes) < self.worker.batch_size // 2:
                await asyncio.sleep(FLUSH_S)  # let outcomes of the same moment share one statement
            self._outcome_ready.clear()
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # kept, and written on the next try
                log.warning("delivery outcomes not recorded yet", target_id=self._label, error=repr(exc))
                await asyncio.sleep(self.worker.settings.DELIVERY_POLL_S)
                self._outcome_ready.set()

    async def _flush(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        try:
            async with self.worker.pool.acquire() as conn:
                await repo.record_results(
                    conn, target_id=self.target_id, owner=self.worker.owner, results=outcomes
                )
        except BaseException:
            self._outcomes[:0] = outcomes
            raise
        if self._more:
            self._kick.set()  # a recorded row may unblock the next entry of its identifier (else: next wake/poll)


@functools.lru_cache(maxsize=4096)
def _series(label: str) -> tuple[Any, Any, Any]:
    """A target's latency, delivered and breaker series (labels() costs a lock and a dict walk per call)."""
    return LATENCY.labels(label), DELIVERED.labels(label), BREAKER_OPEN.labels(label)


def _result(
    row: Any,
    status: str,
    error: str | None,
    request: dict[str, Any] | None,
    response: dict[str, Any] | None,
    *,
    transient: bool,
) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": status,
        "error": error,
        "request": request,
        "response": response,
        "delay": 0.0,
        "transient": transient,
    }
