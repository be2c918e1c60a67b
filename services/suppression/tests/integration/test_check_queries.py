"""The Postgres confirmation of a check: one value and many values answer alike, on every scope, and the
one-value statement is served by Postgres' generic plan (no planning per single check)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from dialguard.suppression import repository as repo
from dialguard.suppression.domain import NewEntry
from dialguard.suppression.handlers import add_entries

PHONE, OTHER = "12672345601", "12672345602"


async def test_one_value_and_many_values_agree_and_one_value_is_planned_once(harness: Any) -> None:
    svc, _ = harness
    account = f"plan-{uuid.uuid4().hex[:10]}"
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        default = await repo.default_stoplist_id(conn, account_id=account)
        other_list = uuid.uuid4()
        await conn.execute(
            "INSERT INTO stoplists (id, account_id, name) VALUES ($1, $2, 'other')", other_list, account
        )
        past = datetime.now(UTC) - timedelta(days=1)
        await add_entries(
            svc,
            conn,
            account_id=account,
            stoplist_id=default,
            entries=[
                NewEntry("phone", PHONE, "sms", "BRAND"),
                NewEntry("phone", OTHER, None, None, expires_at=past),
            ],
            actor="test",
        )
        await add_entries(
            svc,
            conn,
            account_id=account,
            stoplist_id=other_list,
            entries=[NewEntry("phone", OTHER)],
            actor="test",
        )
    # (channel, sender, stoplists) -> values that must match, for PHONE and OTHER
    cases: list[tuple[str | None, str | None, list[uuid.UUID] | None, set[str]]] = [
        (None, None, None, {PHONE, OTHER}),
        ("sms", None, None, {PHONE, OTHER}),
        ("voice", None, None, {OTHER}),
        ("sms", "OTHER", None, {OTHER}),
        ("sms", "BRAND", None, {PHONE, OTHER}),
        (None, None, [default], {PHONE}),  # OTHER's entry in the default list has expired
        (None, None, [other_list], {OTHER}),
    ]
    async with svc.runtime.pool.acquire() as conn:
        for _ in range(2):  # past Postgres' five custom plans, so the generic one answers too
            for channel, sender, stoplists, want in cases:
                scope = {"channel": channel, "sender": sender, "stoplist_ids": stoplists}
                many = await repo.matching_values(
                    conn, account_id=account, id_type="phone", values=[PHONE, OTHER], **scope
                )
                assert set(many) == {f"phone:{v}" for v in want}, scope
                for value in (PHONE, OTHER):
                    one = await repo.matching_entries(
                        conn, account_id=account, id_type="phone", values=[value], **scope
                    )
                    assert {r["value"] for r in one} == {value} & want, (value, scope)
                    alone = await repo.matching_values(
                        conn, account_id=account, id_type="phone", values=[value], **scope
                    )
                    assert set(alone) == {f"phone:{value}"} & {f"phone:{v}" for v in want}, (value, scope)
        plans = await conn.fetch(
            """SELECT generic_plans, custom_plans FROM pg_prepared_statements
               WHERE statement LIKE '%value = $3::text%' AND statement LIKE '%stoplist_id, channel, sender%'"""
        )
    assert plans, "the one-value statement was not prepared on this connection"
    assert sum(p["generic_plans"] for p in plans) > 0, [dict(p) for p in plans]
