"""The Redis bloom cache behind the check path, with its rebuild job (Postgres scan + atomic swap).

Writes: bits are set before the DB commit (handlers.add_entries); if Redis cannot take them the
transaction fails (HTTP 503, or the event is retried), because committing an entry whose bits are
missing from a still-ready filter would be a false negative. Reads: any Redis error or a filter
that is not ready answers None, which makes the caller ask Postgres for everything, and schedules
a rebuild. See docs/suppression-cache.md for the full argument.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dialguard.suppression.bloom import BloomCache, RebuildInProgress
from dialguard.suppression.cache import Keys, Mask

log = structlog.get_logger(__name__)

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)


async def wait_for_older_transactions(conn: asyncpg.Connection, *, poll_s: float = 0.01) -> None:
    """Return once every transaction that wrote before this call has ended (its adds are then visible to a scan).

    A snapshot's xmax is latestCompletedXid + 1, not the next xid: a writer whose xid is above every
    completed one is in no snapshot field, so "wait while xmin < xmax" would not wait for it (found by
    test_an_account_that_outgrows_its_filter_gets_a_larger_one). Taking an xid of our own, in its own
    committed statement, puts every older writer below a completed xid, where xmin sees it.
    """
    mine = await conn.fetchval("SELECT pg_current_xact_id()")  # autocommit: assigned and completed
    while await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot()) < $1::xid8", mine):  # noqa: ASYNC110
        await asyncio.sleep(poll_s)


class RedisSuppressionCache:
    """SuppressionCache on Redis: per-account bloom filters, rebuilt from Postgres on demand."""

    HEADROOM = 1.05  # a rebuild after a flush or a restart: the account's size is what it is
    GROWTH_HEADROOM = 2.0  # a rebuild because adds outgrew the filter

    def __init__(self, redis_url: str, *, scan_chunk: int = 20_000) -> None:
        self._redis: Redis = Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._bloom = BloomCache(self._redis)
        self._started = False
        self._pool: asyncpg.Pool | None = None
        self._rebuilding: dict[str, asyncio.Task[None]] = {}
        self._scan_chunk = scan_chunk
        self._next_attempt: dict[str, float] = {}
        self._retry_after_s = 5.0

    def bind(self, pool: asyncpg.Pool) -> None:
        """The Postgres pool rebuilds scan (known only once the runtime started)."""
        self._pool = pool

    async def _ensure_started(self) -> None:
        if not self._started:
            await self._bloom.start()
            self._started = True

    async def warm_up(self) -> None:
        """Connect and detect the server now, so the first opt-out does not pay for it (best effort:
        with Redis down the service still starts, and checks answer from Postgres)."""
        try:
            await asyncio.wait_for(self._ensure_started(), 5.0)
        except REDIS_ERRORS as exc:
            log.warning("cache not reachable at start, will retry on use", error=repr(exc))

    async def add(self, account_id: str, keys: Sequence[bytes]) -> None:
        await self._ensure_started()
        result = await self._bloom.add(account_id, keys)
        if result.outgrown:
            # The current filter keeps answering (exactly, only with more "maybe"s) until the larger one swaps in.
            # Sized from the filter's count too: the scan only sees this add once its transaction commits.
            self.schedule_rebuild(account_id, growing=True, at_least=result.entries)

    async def lookup(self, account_id: str, keys: Keys) -> Mask | None:
        try:
            await self._ensure_started()
            answer = await self._bloom.lookup_mask(account_id, keys)
        except REDIS_ERRORS as exc:
            log.warning("cache unavailable, answering from Postgres", error=repr(exc))
            return None
        if answer is None:
            self.schedule_rebuild(account_id)
        return answer

    def schedule_rebuild(self, account_id: str, *, growing: bool = False, at_least: int = 0) -> None:
        """At most one rebuild per account in this process, and not more often than every few seconds:
        while another worker builds, every lookup here also misses, and each attempt costs a count(*).

        growing: the account outgrew its filter, so size the next one with room to grow (doubling keeps
        the total rebuild work of an account that grows from nothing within a few times its size)."""
        task = self._rebuilding.get(account_id)
        now = time.monotonic()
        if (task is None or task.done()) and now >= self._next_attempt.get(account_id, 0.0):
            self._next_attempt[account_id] = now + self._retry_after_s
            headroom = self.GROWTH_HEADROOM if growing else self.HEADROOM
            self._rebuilding[account_id] = asyncio.create_task(
                self._rebuild_quietly(account_id, headroom, at_least)
            )

    async def _rebuild_quietly(self, account_id: str, headroom: float, at_least: int) -> None:
        try:
            await self.rebuild(account_id, headroom=headroom, at_least=at_least)
        except RebuildInProgress:
            pass
        except Exception as exc:
            log.warning("cache rebuild failed", account_id=account_id, error=repr(exc))

    async def rebuild(
        self, account_id: str, *, force: bool = False, headroom: float = HEADROOM, at_least: int = 0
    ) -> bool:
        """Build a fresh generation from every live entry and swap it in; False if a flush or rival intervened."""
        assert self._pool is not None, "bind() the pool first"
        await self._ensure_started()
        async with self._pool.acquire() as conn:
            live = await conn.fetchval("SELECT count(*) FROM entries WHERE account_id = $1", account_id)
            expected = int(max(live, at_least) * headroom) + 1000
            token = await self._bloom.begin_rebuild(account_id, expected, force=force)
            try:
                await wait_for_older_transactions(conn)
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    cursor = await conn.cursor(
                        """SELECT id_type || ':' || value FROM entries
                           WHERE account_id = $1 AND (expires_at IS NULL OR expires_at > now())""",
                        account_id,
                    )
                    while True:
                        rows = await cursor.fetch(self._scan_chunk)
                        if not rows:
                            break
                        if not await self._bloom.load(token, [r[0].encode() for r in rows]):
                            return False
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._bloom.abort_rebuild(token)
                raise
        swapped = await self._bloom.finish_rebuild(token)
        log.info("cache rebuilt", account_id=account_id, entries=live, swapped=swapped)
        return swapped

    async def status(self) -> dict[str, Any]:
        try:
            await asyncio.wait_for(self._redis.ping(), 2.0)
            await self._ensure_started()
        except REDIS_ERRORS as exc:
            return {"ok": False, "error": f"redis unreachable: {exc!r}"}
        return {"ok": True, "backend": self._bloom.backend, "rebuilding": sorted(self._rebuilding_now())}

    def _rebuilding_now(self) -> list[str]:
        return [a for a, t in self._rebuilding.items() if not t.done()]

    async def account_status(self, account_id: str) -> dict[str, Any]:
        """One account's filter state (ops endpoint)."""
        st = await self._bloom.status(account_id)
        return dataclasses.asdict(st)

    async def close(self) -> None:
        for task in self._rebuilding.values():
            task.cancel()
        await self._bloom.aclose()
        await self._redis.aclose()
