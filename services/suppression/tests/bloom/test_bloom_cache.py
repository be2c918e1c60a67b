"""The bloom cache against a real Redis-protocol server: answers, readiness, rebuilds, races."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from dialguard.suppression.bloom import (
    AddResult,
    BloomCache,
    BloomCommands,
    RebuildInProgress,
    has_bloom_module,
)

Flush = Callable[[], Awaitable[None]]
FAKE_BF = BloomCommands(reserve="SADD", madd="SADD", mexists="SMISMEMBER")


def _acct() -> str:
    return f"acct-{uuid.uuid4().hex[:8]}"


def _phones(start: int, stop: int, step: int = 1) -> list[bytes]:
    return [b"phone:1%010d" % i for i in range(start, stop, step)]


async def _ready(cache: BloomCache, keys: list[bytes], *, expected_n: int | None = None) -> str:
    acct = _acct()
    assert await cache.load_bulk(acct, keys, expected_n=expected_n)
    return acct


async def test_added_keys_are_reported_present(cache: BloomCache) -> None:
    acct = await _ready(cache, _phones(0, 1000), expected_n=2000)
    new = [b"phone:15550001111", b"email:a@example.com", b"person_id:\xe2\x82\xac-42"]
    assert await cache.add(acct, new) == AddResult(current=True, building=False)
    assert await cache.lookup(acct, new) == [True, True, True]


async def test_an_add_past_the_planned_capacity_reports_the_filter_outgrown(cache: BloomCache) -> None:
    acct = await _ready(cache, _phones(0, 1000), expected_n=1010)
    assert (await cache.status(acct)).capacity == 1010
    assert await cache.add(acct, _phones(5000, 5010)) == AddResult(
        current=True, building=False, outgrown=False
    )
    assert await cache.add(acct, _phones(6000, 6001)) == AddResult(
        current=True, building=False, outgrown=True
    )


async def test_loaded_keys_are_all_present_and_absent_keys_mostly_absent(cache: BloomCache) -> None:
    present = _phones(0, 200_000, 2)
    acct = await _ready(cache, present, expected_n=100_000)
    for at in range(0, len(present), 10_000):
        assert all(await cache.lookup(acct, present[at : at + 10_000]) or [False])
    result = await cache.lookup(acct, _phones(1, 200_000, 2))
    assert result is not None
    assert sum(result) / len(result) <= 0.001


@pytest.mark.slow
async def test_false_positive_rate_over_200k_probes_after_1m_adds_is_below_0_1_percent(
    cache: BloomCache,
) -> None:
    n = 1_000_000
    acct = _acct()
    assert await cache.load_bulk(acct, np.array(_phones(0, 2 * n, 2), dtype="S24"))
    false_hits = 0
    probes = _phones(1, 2 * n, 10)
    for at in range(0, len(probes), 10_000):
        got = await cache.lookup(acct, probes[at : at + 10_000])
        assert got is not None
        false_hits += sum(got)
    assert false_hits / len(probes) <= 0.001
    status = await cache.status(acct)
    assert status.bytes_per_entry is not None
    assert status.bytes_per_entry <= 2.5


async def test_small_and_large_batches_agree(redis: aioredis.Redis) -> None:
    single = BloomCache(redis, redisbloom=False, two_phase_min=10**9)
    split = BloomCache(redis, redisbloom=False, two_phase_min=1)
    await single.start()
    await split.start()
    acct = await _ready(single, _phones(0, 20_000, 2))
    keys = _phones(0, 20_000)
    assert await single.lookup(acct, keys) == await split.lookup(acct, keys)


async def test_few_key_lookups_answer_like_batches(cache: BloomCache) -> None:
    acct = await _ready(cache, _phones(0, 20_000, 2))
    keys = [*_phones(0, 4_000), b"email:a@example.com", b"person_id:" + b"x" * 300, b""]
    batch = await cache.lookup(acct, keys)  # numpy path
    assert batch is not None
    for at in range(0, len(keys), 3):  # plain-int path (3 keys per call)
        assert await cache.lookup(acct, keys[at : at + 3]) == batch[at : at + 3], at
    assert all(batch[:4_000:2])


async def test_never_built_filter_is_not_ready(cache: BloomCache) -> None:
    assert await cache.lookup(_acct(), [b"phone:1"]) is None
    assert (await cache.status(_acct())).state == "absent"


async def test_filter_being_built_for_the_first_time_is_not_ready(cache: BloomCache) -> None:
    acct = _acct()
    token = await cache.begin_rebuild(acct, 100)
    await cache.load(token, [b"phone:1"])
    assert await cache.add(acct, [b"phone:2"]) == AddResult(current=False, building=True)
    assert await cache.lookup(acct, [b"phone:1", b"phone:2"]) is None
    assert (await cache.status(acct)).state == "building"
    assert await cache.finish_rebuild(token)
    assert await cache.lookup(acct, [b"phone:1", b"phone:2"]) == [True, True]


async def test_add_without_a_filter_writes_nothing(cache: BloomCache, redis: aioredis.Redis) -> None:
    acct = _acct()
    assert await cache.add(acct, [b"phone:1"]) == AddResult(current=False, building=False)
    assert await redis.exists(cache._key(acct, "cur")) == 0


async def test_flushall_makes_every_filter_not_ready(cache: BloomCache, flush: Flush) -> None:
    acct = await _ready(cache, _phones(0, 100))
    assert await cache.lookup(acct, _phones(0, 3)) == [True, True, True]
    await flush()
    assert await cache.lookup(acct, _phones(0, 3)) is None
    assert await cache.add(acct, [b"phone:x"]) == AddResult(False, False)


async def test_lost_bits_under_a_surviving_marker_are_not_ready(
    cache: BloomCache, redis: aioredis.Redis
) -> None:
    """Eviction or a stray write can drop the bitmap but keep the meta hash: never read zeros as absent."""
    acct = await _ready(cache, _phones(0, 100))
    cur = cache._key(acct, "cur")
    size = await redis.strlen(cur)
    await redis.delete(cur)
    assert await cache.lookup(acct, _phones(0, 3)) is None
    reads = (await redis.info("commandstats"))["cmdstat_bitfield_ro"]["calls"]
    assert await cache.lookup(acct, _phones(0, 3)) is None
    assert (await redis.info("commandstats"))["cmdstat_bitfield_ro"][
        "calls"
    ] == reads  # known dead: no bit read
    acct = await _ready(cache, _phones(0, 100))
    await redis.set(cache._key(acct, "cur"), b"\x00" * size)
    assert await cache.lookup(acct, _phones(0, 3)) is None


async def test_rebuild_swaps_generations_and_forgets_deleted_keys(
    cache: BloomCache, redis: aioredis.Redis
) -> None:
    old = _phones(0, 5000)
    acct = await _ready(cache, old)
    before = await cache.status(acct)
    kept = old[:2500]
    token = await cache.begin_rebuild(acct, 5000)
    assert (await cache.status(acct)).state == "rebuilding"
    assert await cache.lookup(acct, old[-3:]) == [True, True, True]  # old generation still serves
    assert await cache.load(token, kept)
    assert await cache.finish_rebuild(token)
    after = await cache.status(acct)
    assert after.state == "ready"
    assert after.generation != before.generation
    assert all(await cache.lookup(acct, kept) or [False])
    assert sum(await cache.lookup(acct, old[2500:]) or []) <= 10
    keys = sorted(k.decode() if isinstance(k, bytes) else k for k in await redis.keys(f"*{acct}*"))
    assert keys == sorted([cache._key(acct, "meta"), cache._key(acct, "cur")])


async def test_add_during_a_rebuild_lands_in_both_generations(cache: BloomCache) -> None:
    acct = await _ready(cache, _phones(0, 1000), expected_n=2000)
    token = await cache.begin_rebuild(acct, 1000)
    late = [b"phone:19995550000", b"phone:19995550001"]
    assert await cache.add(acct, late) == AddResult(current=True, building=True)
    assert await cache.lookup(acct, late) == [True, True]  # current generation
    await cache.load(token, _phones(0, 10))  # the scan did not see them
    assert await cache.finish_rebuild(token)
    assert await cache.lookup(acct, late) == [True, True]  # new generation
    assert (await cache.status(acct)).entries == 10 + 2


async def test_large_add_uses_a_bulk_or_and_lands_in_both_generations(redis: aioredis.Redis) -> None:
    cache = BloomCache(redis, redisbloom=False, bulk_add_min=100)
    await cache.start()
    acct = await _ready(cache, _phones(0, 1000))
    token = await cache.begin_rebuild(acct, 5000)
    many = _phones(10_000, 12_000)
    # 3,000 keys in a generation planned for 1,000: outgrown (the building one is planned for 5,000).
    assert await cache.add(acct, many) == AddResult(current=True, building=True, outgrown=True)
    assert all(await cache.lookup(acct, many) or [False])
    assert await cache.finish_rebuild(token)
    assert all(await cache.lookup(acct, many) or [False])
    assert not await redis.keys(f"*{acct}*tmp*")


async def test_flush_during_a_rebuild_fails_the_finish(cache: BloomCache, flush: Flush) -> None:
    acct = await _ready(cache, _phones(0, 100))
    token = await cache.begin_rebuild(acct, 100)
    await cache.load(token, _phones(0, 100))
    await flush()
    assert await cache.finish_rebuild(token) is False
    assert await cache.lookup(acct, _phones(0, 3)) is None


async def test_flush_and_a_new_build_during_a_rebuild_fail_the_old_finish(
    cache: BloomCache, flush: Flush
) -> None:
    acct = await _ready(cache, _phones(0, 100))
    token = await cache.begin_rebuild(acct, 100)
    await flush()
    other = await cache.begin_rebuild(acct, 100)
    assert await cache.finish_rebuild(token) is False
    await cache.load(other, _phones(0, 100))
    assert await cache.finish_rebuild(other) is True
    assert await cache.lookup(acct, _phones(0, 3)) == [True, True, True]


async def test_competing_rebuild_is_refused_unless_forced_and_then_wins(cache: BloomCache) -> None:
    acct = await _ready(cache, _phones(0, 100))
    first = await cache.begin_rebuild(acct, 100)
    with pytest.raises(RebuildInProgress):
        await cache.begin_rebuild(acct, 100)
    second = await cache.begin_rebuild(acct, 100, force=True)
    await cache.load(first, _phones(0, 100))
    await cache.load(second, _phones(100, 200))
    assert await cache.finish_rebuild(first) is False
    assert await cache.finish_rebuild(second) is True
    assert await cache.lookup(acct, _phones(100, 103)) == [True, True, True]


async def test_a_rebuild_whose_heartbeat_stopped_can_be_taken_over(redis: aioredis.Redis) -> None:
    cache = BloomCache(redis, redisbloom=False, rebuild_lease_s=0.05)
    await cache.start()
    acct = _acct()
    stale = await cache.begin_rebuild(acct, 100)
    await asyncio.sleep(0.1)
    fresh = await cache.begin_rebuild(acct, 100)
    assert await cache.finish_rebuild(stale) is False
    assert await cache.finish_rebuild(fresh) is True


async def test_load_reports_a_lost_build(redis: aioredis.Redis) -> None:
    cache = BloomCache(redis, redisbloom=False, heartbeat_every_s=0)
    await cache.start()
    acct = _acct()
    token = await cache.begin_rebuild(acct, 100)
    assert await cache.load(token, [b"a"])
    await cache.begin_rebuild(acct, 100, force=True)
    assert await cache.load(token, [b"b"]) is False


async def test_abort_keeps_the_current_generation(cache: BloomCache, redis: aioredis.Redis) -> None:
    acct = await _ready(cache, _phones(0, 100))
    token = await cache.begin_rebuild(acct, 100)
    await cache.abort_rebuild(token)
    assert (await cache.status(acct)).state == "ready"
    assert await redis.exists(cache._key(acct, "build")) == 0
    assert await cache.lookup(acct, _phones(0, 2)) == [True, True]


async def test_invalidate_makes_the_filter_not_ready(cache: BloomCache) -> None:
    acct = await _ready(cache, _phones(0, 100))
    assert await cache.invalidate(acct)
    assert await cache.lookup(acct, _phones(0, 2)) is None


async def test_other_processes_follow_a_swap(redis: aioredis.Redis) -> None:
    """A process with a cached descriptor must not read or write the old generation's layout."""
    a = BloomCache(redis, redisbloom=False)
    b = BloomCache(redis, redisbloom=False)
    await a.start()
    await b.start()
    acct = await _ready(a, _phones(0, 100), expected_n=1000)
    assert await b.lookup(acct, _phones(0, 2)) == [True, True]
    assert await b.add(acct, [b"phone:x"]) == AddResult(True, False)
    assert await a.load_bulk(acct, _phones(0, 100), expected_n=500_000)  # new size, new layout
    assert await b.add(acct, [b"phone:y"]) == AddResult(True, False)
    assert await a.lookup(acct, [b"phone:y"]) == [True]
    assert await b.lookup(acct, [b"phone:y", *_phones(0, 2)]) == [True, True, True]


async def test_lookup_racing_flushes_and_rebuilds_never_answers_absent_for_added_keys(
    cache: BloomCache, redis_server: object, flush: Flush
) -> None:
    """Marker and bits are read in one MULTI: no interleaving flush can yield 'absent'."""
    acct = await _ready(cache, _phones(0, 2000))
    probe = [*_phones(0, 2000, 7), b"phone:added-later"]
    await cache.add(acct, [b"phone:added-later"])
    stop = time.monotonic() + 3.0
    answered = not_ready = 0

    async def churn() -> None:
        while time.monotonic() < stop:
            await flush()
            await asyncio.sleep(0)
            token = await cache.begin_rebuild(acct, 2000, force=True)
            await cache.load(token, _phones(0, 2000))
            await cache.add(acct, [b"phone:added-later"])
            await cache.finish_rebuild(token)
            await asyncio.sleep(random.random() * 0.01)

    async def look() -> None:
        nonlocal answered, not_ready
        other = BloomCache(cache._redis, redisbloom=False, two_phase_min=1)
        await other.start()
        while time.monotonic() < stop:
            for c in (cache, other):
                got = await c.lookup(acct, probe)
                if got is None:
                    not_ready += 1
                else:
                    answered += 1
                    assert all(got)

    await asyncio.gather(churn(), look(), look())
    assert answered > 0
    assert not_ready > 0


async def test_status_and_stats_report_size_and_entries(cache: BloomCache) -> None:
    acct = await _ready(cache, _phones(0, 100_000))
    status = await cache.status(acct)
    assert status.state == "ready"
    assert status.backend == "bitmap"
    assert status.entries == 100_000
    assert status.capacity == 100_000
    assert status.bytes_per_entry is not None
    assert status.bytes_per_entry <= 2.5
    stats = await cache.stats()
    assert acct in {s.account_id for s in stats.per_account}
    assert stats.bytes_used >= status.bytes_used
    assert stats.ready >= 1
    assert cache.bytes_per_entry <= 2.5


async def test_account_ids_cannot_reach_other_accounts_keys(cache: BloomCache) -> None:
    acct = await _ready(cache, _phones(0, 10))
    assert await cache.lookup(acct + "}:x", _phones(0, 1)) is None
    assert cache._key("a}:cur", "meta") != cache._key("a", "cur")


async def test_redisbloom_is_not_detected_on_plain_valkey(redis: aioredis.Redis) -> None:
    cache = BloomCache(redis)
    await cache.start()
    assert cache.backend == "bitmap"


def test_module_list_parsing_finds_the_bf_module() -> None:
    assert has_bloom_module([[b"name", b"bf", b"ver", 20612]])
    assert has_bloom_module([{"name": "bf", "ver": 20612}])
    assert not has_bloom_module([[b"name", b"search", b"ver", 1]])
    assert not has_bloom_module([])


async def test_redisbloom_path_with_a_fake_module(redis: aioredis.Redis, flush: Flush) -> None:
    """Same protocol on BF.* commands (a set stands in for the module here)."""
    cache = BloomCache(redis, redisbloom=True, bf_commands=FAKE_BF)
    await cache.start()
    assert cache.backend == "redisbloom"
    acct = _acct()
    assert await cache.lookup(acct, [b"k1"]) is None
    assert await cache.load_bulk(acct, [b"k1", b"k2"])
    assert await cache.lookup(acct, [b"k1", b"k2", b"k3"]) == [True, True, False]
    token = await cache.begin_rebuild(acct, 10)
    assert await cache.add(acct, [b"k4"]) == AddResult(True, True)
    await cache.load(token, [b"k1"])
    assert await cache.finish_rebuild(token)
    assert await cache.lookup(acct, [b"k1", b"k2", b"k4"]) == [True, False, True]
    assert (await cache.status(acct)).backend == "redisbloom"
    await redis.delete(cache._key(acct, "cur"))
    await redis.sadd(cache._key(acct, "cur"), b"k1")  # recreated without the sentinel
    assert await cache.lookup(acct, [b"k1"]) is None
    token = await cache.begin_rebuild(acct, 10)
    await flush()
    assert await cache.finish_rebuild(token) is False


async def test_bitmap_generations_stay_readable_after_switching_to_redisbloom(redis: aioredis.Redis) -> None:
    bitmap = BloomCache(redis, redisbloom=False)
    module = BloomCache(redis, redisbloom=True, bf_commands=FAKE_BF)
    await bitmap.start()
    await module.start()
    acct = await _ready(bitmap, _phones(0, 100))
    assert await module.lookup(acct, _phones(0, 2)) == [True, True]
    assert await module.add(acct, [b"phone:new"]) == AddResult(True, False)
    assert await bitmap.lookup(acct, [b"phone:new"]) == [True]


async def test_restart_from_an_older_snapshot_is_not_ready(restartable_valkey: Any) -> None:
    """A restart may reload bits saved before later adds: generations of an older run_id never count."""
    client = aioredis.Redis.from_url(restartable_valkey.url)
    cache = BloomCache(client, redisbloom=False)
    await cache.start()
    acct = await _ready(cache, _phones(0, 100))
    await cache.add(acct, [b"phone:before-save"])
    await client.save()
    await cache.add(acct, [b"phone:after-save"])  # committed in Postgres, lost by Redis
    await client.aclose()
    restartable_valkey.crash_and_restart()
    client = aioredis.Redis.from_url(restartable_valkey.url)
    try:
        cache = BloomCache(client, redisbloom=False)
        await cache.start()
        assert await client.exists(cache._key(acct, "cur")) == 1  # the stale bits are really there
        assert await cache.lookup(acct, [b"phone:before-save", b"phone:after-save"]) is None
        assert await cache.add(acct, [b"phone:x"]) == AddResult(False, False)
        assert (await cache.status(acct)).state == "absent"
        assert await cache.load_bulk(acct, [b"phone:before-save", b"phone:after-save"])
        assert await cache.lookup(acct, [b"phone:before-save", b"phone:after-save"]) == [True, True]
    finally:
        await client.aclose()


async def test_works_with_a_decoding_client(redis_server: Any) -> None:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        cache = BloomCache(client, redisbloom=False)
        await cache.start()
        acct = await _ready(cache, _phones(0, 500))
        assert await cache.add(acct, [b"phone:x"]) == AddResult(True, False)
        assert await cache.lookup(acct, [b"phone:x", *_phones(0, 300)]) == [True] * 301
        assert (await cache.status(acct)).state == "ready"
    finally:
        await client.aclose()


async def test_a_lookup_after_a_server_restart_reconnects_and_reports_not_ready(
    restartable_valkey: Any,
) -> None:
    client = aioredis.Redis.from_url(restartable_valkey.url)
    try:
        cache = BloomCache(client, redisbloom=False)
        await cache.start()
        acct = await _ready(cache, _phones(0, 100))
        assert await cache.lookup(acct, _phones(0, 2)) == [True, True]
        restartable_valkey.crash_and_restart()
        assert await cache.lookup(acct, _phones(0, 2)) is None
    finally:
        await client.aclose()


# --- the process's copy of a whole filter (BloomCache._lookup_snapshot) --------------------------


async def _copying(redis: aioredis.Redis, **kw: Any) -> BloomCache:
    c = BloomCache(redis, redisbloom=False, **kw)
    await c.start()
    return c


async def test_a_copy_never_hides_an_add_made_by_another_process(redis: aioredis.Redis) -> None:
    reader, writer = await _copying(redis), await _copying(redis)
    acct = await _ready(writer, _phones(0, 2000, 2), expected_n=5000)
    batch = _phones(0, 2000)
    first = await reader.lookup(acct, batch)
    assert first is not None
    assert all(first[::2])
    assert acct in reader._snapshots
    copy = reader._snapshots[acct]
    assert await writer.add(acct, [b"phone:added-elsewhere"]) == AddResult(True, False)
    again = await reader.lookup(acct, [*batch, b"phone:added-elsewhere"])
    assert again is not None
    assert again[-1] is True
    assert reader._snapshots[acct].version != copy.version  # read again, not answered from the old copy
    reads = (await redis.info("commandstats"))["cmdstat_get"]["calls"]
    assert await reader.lookup(acct, [*batch, b"phone:added-elsewhere"]) == again
    assert (await redis.info("commandstats"))["cmdstat_get"]["calls"] == reads  # unchanged: the copy answered


async def test_a_copy_answers_like_word_reads(redis: aioredis.Redis) -> None:
    copying, reading = await _copying(redis), await _copying(redis, snapshot_budget_bytes=0)
    acct = await _ready(copying, _phones(0, 50_000, 3), expected_n=20_000)
    await copying.add(acct, _phones(1, 3000, 3))
    keys = _phones(0, 50_000)
    assert await copying.lookup(acct, keys) == await reading.lookup(acct, keys)
    assert acct in copying._snapshots
    assert not reading._snapshots


async def test_a_copy_is_not_used_after_a_flush(redis: aioredis.Redis, flush: Flush) -> None:
    c = await _copying(redis)
    acct = await _ready(c, _phones(0, 1000))
    assert await c.lookup(acct, _phones(0, 500)) == [True] * 500
    await flush()
    assert await c.lookup(acct, _phones(0, 500)) is None
    assert acct not in c._snapshots


async def test_a_replaced_bitmap_under_the_same_marker_is_not_trusted(redis: aioredis.Redis) -> None:
    c = await _copying(redis)
    acct = await _ready(c, _phones(0, 1000))
    assert await c.lookup(acct, _phones(0, 500)) == [True] * 500
    cur = c._key(acct, "cur")
    await redis.set(cur, b"\x00" * await redis.strlen(cur))  # same size, no header: a stray write
    assert await c.lookup(acct, _phones(0, 500)) is None


async def test_a_copy_follows_a_swap_to_a_new_generation(redis: aioredis.Redis) -> None:
    reader, writer = await _copying(redis), await _copying(redis)
    acct = await _ready(writer, _phones(0, 1000), expected_n=1000)
    assert await reader.lookup(acct, _phones(0, 500)) == [True] * 500
    old = reader._snapshots[acct].descriptor
    assert await writer.load_bulk(acct, _phones(1000, 2000), expected_n=50_000)  # the first 1000 deleted
    got = await reader.lookup(acct, [*_phones(0, 500), *_phones(1000, 1500)])
    assert got is not None
    assert all(got[500:])
    assert sum(got[:500]) <= 5
    assert reader._snapshots[acct].descriptor != old


async def test_copies_stay_within_their_byte_budget(redis: aioredis.Redis) -> None:
    probe = await _copying(redis)
    one = await _ready(probe, _phones(0, 1000), expected_n=20_000)
    size = int((await probe.status(one)).bytes_used)
    c = await _copying(redis, snapshot_budget_bytes=size + size // 2)
    two = await _ready(c, _phones(0, 1000), expected_n=20_000)
    for acct in (one, two, one):
        assert await c.lookup(acct, _phones(0, 1000)) == [True] * 1000
    assert list(c._snapshots) == [one]
    small = await _copying(redis, snapshot_budget_bytes=size // 2)
    assert await small.lookup(acct, _phones(0, 1000)) == [True] * 1000
    assert not small._snapshots  # over the budget: single words read instead


async def test_a_copy_dropped_by_a_concurrent_lookup_still_answers_the_lookup_that_validated_it(
    redis: aioredis.Redis, flush: Flush
) -> None:
    """Lookup A validates its copy, then waits; meanwhile lookup B finds the filter flushed and drops the
    copy. A must still answer from the copy it proved current (it once raised KeyError here)."""
    c = await _copying(redis)
    acct = await _ready(c, _phones(0, 1000))
    assert await c.lookup(acct, _phones(0, 500)) == [True] * 500
    real = c._read_version
    a_read, b_done = asyncio.Event(), asyncio.Event()

    async def paused(*args: Any) -> Any:
        got = await real(*args)
        if not a_read.is_set():  # the first caller is A: hold it after its read
            a_read.set()
            await b_done.wait()
        return got

    c._read_version = paused  # type: ignore[method-assign]
    a = asyncio.create_task(c.lookup(acct, _phones(0, 500)))
    await a_read.wait()
    await flush()
    assert await c.lookup(acct, _phones(0, 500)) is None  # B: not ready, copy dropped
    assert acct not in c._snapshots
    b_done.set()
    assert await a == [True] * 500


async def test_a_filter_too_large_to_read_for_one_batch_is_copied_once_it_holds_still(
    redis: aioredis.Redis,
) -> None:
    """A 20,000-entry filter (~47 KB) costs more to read than 20 keys' word reads (~30 KB): it is copied
    only after batches whose word reads add up to its size saw the same version, and an add between
    batches starts the count again."""
    reader, writer = await _copying(redis), await _copying(redis)
    acct = await _ready(writer, _phones(0, 1000), expected_n=20_000)
    nbytes = int((await writer.status(acct)).bytes_used)
    batch = _phones(0, 20)
    per_batch = 1500 * len(batch)
    assert per_batch < nbytes < 3 * per_batch
    assert await reader.lookup(acct, batch) == [True] * 20
    assert acct not in reader._snapshots  # one batch's worth of reads: not yet
    await writer.add(acct, [b"phone:moved-the-version"])
    assert await reader.lookup(acct, batch) == [True] * 20
    assert acct not in reader._snapshots  # the version moved: counting starts again
    for _ in range(-(-nbytes // per_batch) - 2):
        assert await reader.lookup(acct, batch) == [True] * 20
        assert acct not in reader._snapshots
    assert await reader.lookup(acct, [*batch, b"phone:moved-the-version"]) == [True] * 21
    assert acct in reader._snapshots  # held still long enough: copied, and answering
    gets = (await redis.info("commandstats"))["cmdstat_get"]["calls"]
    assert await reader.lookup(acct, batch) == [True] * 20
    assert (await redis.info("commandstats"))["cmdstat_get"]["calls"] == gets
