"""The delivery worker: one lane per target (own client, concurrency limit, circuit breaker) over leased rows."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
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
from dialguard.outbound_sync.metrics import BACKLOG, BREAKER_OPEN, DELIVERED, FAILED, LATENCY

log = structlog.get_logger(__name__)
BODY_LOG_LIMIT = 2000
RESPONSE_READ_LIMIT = 4096
CLIENT_IDLE_S = 300.0
BACKLOG_EVERY_S = 2.0


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
    _lanes: dict[uuid.UUID, asyncio.Task[None]] = field(default_factory=dict)
    _clients: dict[uuid.UUID, tuple[httpx.AsyncClient, float]] = field(default_factory=dict)
    _breakers: dict[uuid.UUID, Breaker] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _backlog_at: float = 0.0

    @property
    def batch_size(self) -> int:
        """Rows leased per round of a lane."""
        return self.settings.DELIVERY_CONCURRENCY_PER_TARGET * 4

    @property
    def lease_s(self) -> float:
        """Long enough for a whole round even if every request times out: no other instance resends early."""
        s = self.settings
        rounds = math.ceil(self.batch_size / s.DELIVERY_CONCURRENCY_PER_TARGET)
        return rounds * (s.DELIVERY_TIMEOUT_S + s.DELIVERY_CONNECT_TIMEOUT_S) + 30.0

    def wake(self) -> None:
        """New or reset rows: look now instead of at the next poll."""
        self._wake.set()

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
        """Stop lanes, hand back unfinished leases, close clients."""
        for task in self._lanes.values():
            task.cancel()
        for task in self._lanes.values():
            with contextlib.suppress(BaseException):
                await task
        self._lanes.clear()
        with contextlib.suppress(Exception):
            async with self.pool.acquire() as conn:
                await repo.release_leases(conn, owner=self.owner)
        for client, _ in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients.clear()

    async def _dispatch(self) -> None:
        for target_id in [t for t, task in self._lanes.items() if task.done()]:
            del self._lanes[target_id]
        async with self.pool.acquire() as conn:
            due = await repo.due_targets(conn, exclude=list(self._lanes))
            if time.monotonic() - self._backlog_at >= BACKLOG_EVERY_S:
                self._backlog_at = time.monotonic()
                for row in await repo.backlog_by_target(conn):
                    BACKLOG.labels(str(row["target_id"])).set(row["backlog"])
        for row in due:
            breaker = self._breaker(row["id"])
            if breaker.allows():
                self._lanes[row["id"]] = asyncio.create_task(self._lane(row["id"]))
        await self._close_idle_clients()

    def _breaker(self, target_id: uuid.UUID) -> Breaker:
        breaker = self._breakers.get(target_id)
        if breaker is None:
            s = self.settings
            breaker = self._breakers[target_id] = Breaker(s.BREAKER_THRESHOLD, s.BREAKER_COOLDOWN_S)
        return breaker

    def _client(self, target_id: uuid.UUID) -> httpx.AsyncClient:
        """One pooled client per target: connections are reused, and one target cannot starve another's."""
        s = self.settings
        found = self._clients.get(target_id)
        client = found[0] if found else None
        if client is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(s.DELIVERY_TIMEOUT_S, connect=s.DELIVERY_CONNECT_TIMEOUT_S),
                limits=httpx.Limits(
                    max_connections=s.DELIVERY_CONCURRENCY_PER_TARGET,
                    max_keepalive_connections=s.DELIVERY_CONCURRENCY_PER_TARGET,
                ),
                follow_redirects=False,
            )
        self._clients[target_id] = (client, time.monotonic())
        return client

    async def _close_idle_clients(self) -> None:
        now = time.monotonic()
        for target_id, (client, used) in list(self._clients.items()):
            if target_id not in self._lanes and now - used > CLIENT_IDLE_S:
                del self._clients[target_id]
                await client.aclose()

    async def _lane(self, target_id: uuid.UUID) -> None:
        """Rounds of lease, send (bounded concurrency), record, until nothing is due or the breaker opens."""
        try:
            rounds = await self._rounds(target_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the rows stay leased and go out again when the lease ends
            log.warning("delivery lane failed", target_id=str(target_id), error=repr(exc))
            return
        if rounds:
            self._wake.set()  # rows that arrived while this lane was finishing go out now, not at the next poll

    async def _rounds(self, target_id: uuid.UUID) -> int:
        """How many rounds went out; 0 when nothing could be claimed."""
        rounds = 0
        breaker = self._breaker(target_id)
        client = self._client(target_id)
        label = str(target_id)
        while breaker.allows():
            async with self.pool.acquire() as conn:
                target = await repo.target_config(conn, target_id=target_id)
                if target is None or not target["active"]:
                    return rounds
                rows = await repo.claim(
                    conn,
                    target_id=target_id,
                    limit=1 if breaker.probing else self.batch_size,
                    lease_s=self.lease_s,
                    owner=self.owner,
                )
            if not rows:
                return rounds
            rounds += 1
            results = await self._send_round(client, target, rows)
            for result in results:
                breaker.record(result["status"] == "delivered", result["transient"])
            BREAKER_OPEN.labels(label).set(0 if breaker.opened_at is None else 1)
            async with self.pool.acquire() as conn:
                await repo.record_results(conn, target_id=target_id, owner=self.owner, results=results)
            self._clients[target_id] = (client, time.monotonic())
        return rounds

    async def _send_round(
        self, client: httpx.AsyncClient, target: Any, rows: list[Any]
    ) -> list[dict[str, Any]]:
        """Send one round's rows, at most DELIVERY_CONCURRENCY_PER_TARGET at a time."""
        limit = asyncio.Semaphore(self.settings.DELIVERY_CONCURRENCY_PER_TARGET)

        async def attempt(row: Any) -> dict[str, Any]:
            async with limit:
                return await self._attempt(client, target, row)

        return list(await asyncio.gather(*(attempt(r) for r in rows)))

    async def _attempt(self, client: httpx.AsyncClient, target: Any, row: Any) -> dict[str, Any]:
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
                response = await client.send(
                    client.build_request(req.method, req.url, headers=req.headers, content=req.content),
                    stream=True,
                )
                try:
                    body = await _read_limited(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            outcome = Outcome("retry", f"timeout after {s.DELIVERY_TIMEOUT_S:g}s")
            response_log = {"error": outcome.error}
        except httpx.HTTPError as exc:
            outcome = Outcome("retry", f"network error: {type(exc).__name__}: {exc}")
            response_log = {"error": outcome.error}
        else:
            outcome = classify(response.status_code, response.headers.get("retry-after"))
            text = body.decode("utf-8", "replace")
            response_log = {"status": response.status_code, "body": text[:BODY_LOG_LIMIT]}
            if response.headers.get("retry-after"):
                response_log["retry_after"] = response.headers["retry-after"]
            if outcome.error and text.strip():
                outcome = Outcome(
                    outcome.status, f"{outcome.error}: {text.strip()[:200]}", outcome.retry_after_s
                )
        elapsed = time.perf_counter() - started
        response_log["elapsed_ms"] = round(elapsed * 1000, 1)
        LATENCY.labels(label).observe(elapsed)
        if outcome.status == "delivered":
            DELIVERED.labels(label).inc()
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


async def _read_limited(response: httpx.Response) -> bytes:
    """Keep only the start of a response body: the log needs a summary, not a download."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= RESPONSE_READ_LIMIT:
            break
    return b"".join(chunks)[:RESPONSE_READ_LIMIT]


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
