"""Search through lead_blocks (migration 0005): exact against a plain query on `leads`, paged across pages
and id blocks, after status actions, a move and call results; states no lead is in any more are cleared."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from dialguard.lead_action.domain import LEAD_STATES, STATE_BITS
from dialguard.platform.auth import mint_token
from dialguard.testing.helpers import SECRET

N = 700  # ids span at least three blocks of 256


def phones(n: int, start: int = 0) -> list[str]:
    return [f"1267234{i:04d}" for i in range(start, start + n)]


async def walk(h: Any, criteria: dict[str, Any], limit: int) -> list[str]:
    """Every page of a search, following next_cursor."""
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        # A token of its own per page: a walk is more searches than one token may make in 10 s.
        token = mint_token(secret=SECRET, account_id=h.account, roles=["VIEWER"], sub=f"walk-{uuid.uuid4()}")
        r = await h.client.post(
            f"{h.base}/campaignLeads/search",
            params=params,
            json={"campaignLeadSearchCriteria": criteria},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        ids += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids


async def reference(db: asyncpg.Connection, account: str, where: str, *args: Any) -> list[str]:
    rows = await db.fetch(
        f"SELECT id FROM lead_action.leads WHERE account_id = $1 AND {where} ORDER BY id", account, *args
    )
    return [str(r["id"]) for r in rows]


async def test_state_bits_match_sql(db: asyncpg.Connection) -> None:
    for state in LEAD_STATES:
        assert await db.fetchval("SELECT lead_action.lead_state_bit($1)", state) == STATE_BITS[state]
    assert await db.fetchval("SELECT lead_action.lead_state_bit('SOMETHING_ELSE')") == 128


async def test_block_search_is_exact_and_pages(harness: Any, db: asyncpg.Connection) -> None:
    h = harness
    dg, camp, lst = await h.campaign("blocks")
    other = await h.create(f"/dialGroups/{dg}/campaigns", "other")
    ids = await h.add_leads(lst, phones(N))
    assert len(ids) == N
    camp_i, other_i, lst_i = int(camp), int(other["id"]), int(lst)

    async def check(criteria: dict[str, Any], where: str, *args: Any, limit: int = 37) -> list[str]:
        want = await reference(db, h.account, where, *args)
        assert await walk(h, criteria, limit) == want, criteria
        return want

    # A sparse state across every block, and a dense one.
    sparse = ids[::53]
    await h.act("PAUSE_LEADS", {"campaignId": camp, "leadIds": sparse})
    paused = await check(
        {"campaignId": camp, "leadStates": ["PAUSED"]},
        "campaign_id = $2 AND status = 'PAUSED'",
        camp_i,
        limit=3,
    )
    assert paused == sparse
    await check(
        {"campaignId": camp, "leadStates": ["READY"]}, "campaign_id = $2 AND status = 'READY'", camp_i
    )
    await check(
        {"listIds": [lst], "physicalStates": ["NOT_DIALABLE"]},
        "list_id = $2 AND physical_state = 'NOT_DIALABLE'",
        lst_i,
    )
    await check(
        {"campaignId": camp, "leadStates": ["READY", "PAUSED"], "physicalStates": ["DIALABLE"]},
        "campaign_id = $2 AND physical_state = 'DIALABLE'",
        camp_i,
    )

    # RESET clears PAUSED from the summary, not just from the leads.
    await h.act("RESET_LEADS", {"campaignId": camp})
    assert await walk(h, {"campaignId": camp, "leadStates": ["PAUSED"]}, 50) == []
    claimed = await db.fetchval(
        "SELECT count(*) FROM lead_action.lead_blocks WHERE account_id = $1 AND states & $2 <> 0",
        h.account,
        STATE_BITS["PAUSED"],
    )
    assert claimed == 0

    # Half the leads move to the other campaign's new list (keeping their ids and origin list).
    moved = ids[N // 2 :]
    await h.act(
        "MOVE_TO_CAMPAIGN",
        {"campaignId": camp, "leadIds": moved},
        {"CAMPAIGN_ID": other["id"], "LIST_ID": "0", "LIST_NAME": "moved"},
    )
    await h.act("CANCEL_LEADS", {"campaignId": other["id"], "leadIds": moved[::7]})
    await check({"campaignId": camp}, "campaign_id = $2", camp_i)
    await check(
        {"campaignId": other["id"], "leadStates": ["CANCELLED"]},
        "campaign_id = $2 AND status = 'CANCELLED'",
        other_i,
        limit=5,
    )
    await check({"campaignIds": [camp, other["id"]], "leadStates": ["READY"]}, "status = 'READY'", limit=101)
    after_move = await check({"campaignId": other["id"]}, "campaign_id = $2", other_i, limit=64)
    assert after_move == moved

    # Everything back: the source campaign's list is empty, and the summary says so.
    await h.act(
        "MOVE_TO_CAMPAIGN",
        {"campaignId": camp},
        {"CAMPAIGN_ID": other["id"], "LIST_ID": "0", "LIST_NAME": "all"},
    )
    assert await walk(h, {"campaignId": camp}, 50) == []
    assert (
        await db.fetchval(
            "SELECT count(*) FROM lead_action.lead_blocks WHERE account_id = $1 AND list_id = $2",
            h.account,
            lst_i,
        )
        == 0
    )
    await check({"campaignId": other["id"], "leadStates": ["CANCELLED"]}, "status = 'CANCELLED'", limit=4)

    # Deleted leads leave no block behind.
    await h.act("DELETE_LEADS", {"campaignId": other["id"]}, query={"confirm": "true"})
    assert (
        await db.fetchval("SELECT count(*) FROM lead_action.lead_blocks WHERE account_id = $1", h.account)
        == 0
    )
