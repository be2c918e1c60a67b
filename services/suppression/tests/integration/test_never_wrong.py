"""The check is never wrong: random adds, removes, expiries, FLUSHALLs and rebuilds against a plain model.

Runs the real handlers and the real Redis cache in-process against the session's Postgres and
Redis; every check is compared with the model (zero false negatives, zero wrong positives).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialguard.suppression import repository as repo
from dialguard.suppression.cache_redis import wait_for_older_transactions
from dialguard.suppression.check_wire import CheckIdentifier
from dialguard.suppression.checks import (
    batch_keys,
    canonical_nanp_phones,
    prepare,
    run_checks,
    suppressed_keys,
    suppressed_phones,
)
from dialguard.suppression.domain import NewEntry
from dialguard.suppression.handlers import Suppression, add_entries, remove_entries

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
PHONES = [f"1267234{5600 + i:04d}" for i in range(12)]
CHANNELS = [None, "voice", "sms"]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, len(PHONES) - 1), st.sampled_from(CHANNELS)),
        st.tuples(st.just("remove"), st.integers(0, len(PHONES) - 1), st.sampled_from(CHANNELS)),
        st.tuples(st.just("expire"), st.integers(0, len(PHONES) - 1), st.none()),
        st.tuples(st.just("check"), st.integers(0, len(PHONES) - 1), st.sampled_from(CHANNELS)),
        st.tuples(st.just("flushall"), st.none(), st.none()),
        st.tuples(st.just("rebuild"), st.none(), st.none()),
    ),
    min_size=5,
    max_size=40,
)


async def add_committed(svc: Suppression, account: str, stoplist_id: Any, entries: list[NewEntry]) -> None:
    """The handlers' add in a transaction of its own, committed on return."""
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        await add_entries(
            svc, conn, account_id=account, stoplist_id=stoplist_id, entries=entries, actor="test"
        )


def expected(model: dict[tuple[str, str | None], bool], phone: str, channel: str | None) -> bool:
    return any(
        live and value == phone and (entry_channel is None or channel is None or entry_channel == channel)
        for (value, entry_channel), live in model.items()
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=ops)
async def test_checks_match_the_model_through_flushes_and_rebuilds(harness: Any, program: list[Any]) -> None:
    svc, redis = harness
    account = f"prop-{uuid.uuid4().hex[:10]}"
    model: dict[tuple[str, str | None], bool] = {}
    async with svc.runtime.pool.acquire() as conn:
        stoplist_id = await repo.default_stoplist_id(conn, account_id=account)
    for op, index, channel in program:
        phone = PHONES[index] if index is not None else ""
        if op == "add":
            await add_committed(svc, account, stoplist_id, [NewEntry("phone", phone, channel)])
            model.setdefault((phone, channel), True)
        elif op == "remove":
            async with svc.runtime.pool.acquire() as conn, conn.transaction():
                await remove_entries(
                    svc,
                    conn,
                    account_id=account,
                    where=repo.BY_IDENTIFIER,
                    args=["phone", [phone], channel, None],
                    op="removed",
                    actor="test",
                )
            for key in [k for k in model if k[0] == phone and (channel is None or k[1] == channel)]:
                del model[key]
        elif op == "expire":
            async with svc.runtime.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE entries SET expires_at = now() - interval '1 second' WHERE account_id = $1 AND value = $2",
                    account,
                    phone,
                )
            for key in [k for k in model if k[0] == phone]:
                model[key] = False
        elif op == "flushall":
            await redis.flushall()
        elif op == "rebuild":
            await svc.cache.rebuild(account, force=True)  # supersedes a background rebuild in flight
        else:
            items = prepare([{"type": "phone", "value": phone}], region="US")
            await run_checks(svc, items, account_id=account, channel=channel, sender=None, stoplist_ids=None)
            assert bool(items[0].matches) is expected(model, phone, channel), (op, phone, channel, model)
    # Finally every phone on every channel, through a freshly rebuilt filter and a flushed one.
    for phase in ("rebuilt", "flushed"):
        if phase == "rebuilt":
            await svc.cache.rebuild(account, force=True)  # supersedes a background rebuild in flight
        else:
            await redis.flushall()
        for channel in CHANNELS:  # the batch path (what POST /v1/check runs)
            items = [CheckIdentifier("phone", p) for p in PHONES]
            keys, errors = batch_keys(items, region="US")
            assert not errors
            found = await suppressed_keys(
                svc,
                list({k for ks in keys for k in ks}),
                account_id=account,
                channel=channel,
                sender=None,
                stoplist_ids=None,
            )
            got = [not found.isdisjoint(ks) for ks in keys]
            assert got == [expected(model, p, channel) for p in PHONES], (phase, channel)
            phones = canonical_nanp_phones(items, region="US")  # the vectorised path for canonical phones
            assert phones == PHONES
            fast = await suppressed_phones(
                svc, phones, account_id=account, channel=channel, sender=None, stoplist_ids=None
            )
            assert fast == got, (phase, channel)


async def test_an_account_that_outgrows_its_filter_gets_a_larger_one(harness: Any) -> None:
    """A filter sized for a small account would saturate as it grows (every check a Postgres trip)."""
    svc, _ = harness
    account = f"grow-{uuid.uuid4().hex[:10]}"
    async with svc.runtime.pool.acquire() as conn:
        stoplist_id = await repo.default_stoplist_id(conn, account_id=account)
    phones = [f"1267555{i:04d}" for i in range(1600)]

    async def add(values: list[str]) -> None:
        await add_committed(svc, account, stoplist_id, [NewEntry("phone", p, None) for p in values])

    await add(phones[:10])
    assert await svc.cache.rebuild(account)
    first = await svc.cache.account_status(account)
    assert first["state"] == "ready", first
    assert first["capacity"] < 1100, first
    await add(phones[10:])  # 1,600 entries in a filter planned for ~1,010
    deadline = asyncio.get_running_loop().time() + 60
    while (now := await svc.cache.account_status(account))["generation"] == first["generation"]:
        assert asyncio.get_running_loop().time() < deadline, f"no larger filter was built: {now}"
        await asyncio.sleep(0.05)
    assert now["state"] == "ready", now
    assert now["capacity"] >= 2 * 1600, now  # room to keep growing, not just the current size
    assert now["entries"] == 1600, now
    items = [CheckIdentifier("phone", p) for p in [*phones, "12675559999"]]
    keys, errors = batch_keys(items, region="US")
    assert not errors
    found = await suppressed_keys(
        svc,
        [k for ks in keys for k in ks],
        account_id=account,
        channel=None,
        sender=None,
        stoplist_ids=None,
    )
    assert [not found.isdisjoint(ks) for ks in keys] == [True] * 1600 + [False]


async def test_a_rebuild_waits_for_a_writer_whose_xid_is_above_every_completed_one(harness: Any) -> None:
    """The rebuild's scan must see an add that ran before the build began (docs/suppression-cache.md, S2)."""
    svc, _ = harness
    pool = svc.runtime.pool
    async with pool.acquire() as writer, pool.acquire() as waiter:
        tx = writer.transaction()
        await tx.start()
        await writer.fetchval("SELECT pg_current_xact_id()")  # the writer holds the newest xid, uncommitted
        waiting = asyncio.create_task(wait_for_older_transactions(waiter, poll_s=0.005))
        await asyncio.sleep(0.5)
        assert not waiting.done(), "the wait returned while an older writer was still open"
        await tx.commit()
        await asyncio.wait_for(waiting, 10)
