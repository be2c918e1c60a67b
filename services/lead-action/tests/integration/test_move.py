"""MOVE_TO_CAMPAIGN: move / copy / TRANSITION x duplicates MOVE / IGNORE, new lists, LeadsMoved chunks."""

from __future__ import annotations

from typing import Any

from dialguard.events.topics import LEADS_MOVED
from dialguard.testing.helpers import auth

DUP, FRESH = "12672345678", "12672345679"


async def _setup(h: Any) -> tuple[str, list[str], str, str, str]:
    """Source campaign with leads [DUP, FRESH]; target list already holding DUP."""
    _, src, src_list = await h.campaign("src")
    ids = await h.add_leads(src_list, [DUP, FRESH])
    await h.act("PAUSE_LEADS", {"campaignId": src})
    _, dst, dst_list = await h.campaign("dst")
    (existing,) = await h.add_leads(dst_list, [DUP])
    return src, ids, dst, dst_list, existing


def _params(dst: str, dst_list: str, copy: str, duplicates: str) -> dict[str, str]:
    return {
        "CAMPAIGN_ID": dst,
        "LIST_ID": dst_list,
        "CREATE_COPY_SETTING": copy,
        "DUPLICATE_ACTION_SETTING": duplicates,
    }


async def test_move_copy_transition_by_duplicate_setting(harness: Any) -> None:
    h = harness
    expectations = {
        # (copy setting, duplicates): (leads placed in target, source statuses afterwards or None = moved away)
        ("false", "MOVE"): 2,
        ("false", "IGNORE"): 1,
        ("true", "MOVE"): 2,
        ("true", "IGNORE"): 1,
        ("TRANSITION", "MOVE"): 2,
        ("TRANSITION", "IGNORE"): 1,
    }
    action_modes: dict[str, tuple[str, str, list[str]]] = {}
    for (copy, duplicates), placed in expectations.items():
        src, ids, dst, dst_list, existing = await _setup(h)
        result = await h.act(
            "MOVE_TO_CAMPAIGN",
            {"campaignId": src, "campaignIds": [src]},
            _params(dst, dst_list, copy, duplicates),
        )
        assert result["affected"] == placed, (copy, duplicates)
        target = await h.leads(dst_list)
        assert len(target) == 1 + placed
        assert sorted(x["phone"] for x in target) == sorted(
            [DUP] + ([DUP, FRESH] if placed == 2 else [FRESH])
        )
        source = {x["id"]: x for x in (await h.search({"campaignId": src}))["items"]}
        moved_ids = [x["id"] for x in target if x["id"] != existing]
        if copy == "false":
            assert sorted(moved_ids) == sorted(ids if placed == 2 else [ids[1]])  # same leads, re-homed
            assert list(source) == ([] if placed == 2 else [ids[0]])
            assert all(x["campaign_id"] == dst for x in target)
            assert all(x["status"] == "PAUSED" for x in target if x["id"] != existing)
        else:
            assert not set(moved_ids) & set(ids)  # copies are new leads
            assert all(x["status"] == "READY" and x["pass_count"] == 0 for x in target)
            expected_source = "TRANSITION" if copy == "TRANSITION" else "PAUSED"
            assert source[ids[1]]["status"] == expected_source
            assert source[ids[0]]["status"] == (expected_source if placed == 2 else "PAUSED")
        action_modes[result["action_id"]] = (src, dst, sorted(moved_ids))

    events = await h.events(LEADS_MOVED, len(action_modes), event_type="LeadsMoved")
    assert len(events) == len(action_modes)
    for e in events:
        p = e["payload"]
        src, dst, moved = action_modes[p["action_id"]]
        assert (p["from_campaign_id"], p["to_campaign_id"], sorted(p["lead_ids"]), p["total_moved"]) == (
            src,
            dst,
            moved,
            len(moved),
        )
        assert p["mode"] in ("move", "copy", "transition")
        assert e["_key"] == f"{h.account}:{dst}"


async def test_new_list_big_move_chunks_and_refusals(harness: Any) -> None:
    h = harness
    _, src, src_list = await h.campaign("src")
    phones = [f"1267{n:07d}" for n in range(2000001, 2000001 + 2500)]
    ids = await h.add_leads(src_list, phones)
    dg, dst, _ = await h.campaign("dst")
    crit = {"campaignId": src}

    same = await h.act(
        "MOVE_TO_CAMPAIGN", crit, {"CAMPAIGN_ID": src, "LIST_ID": "0", "LIST_NAME": "x"}, status=422
    )
    assert same["error"]["details"][0]["field"] == "leadActionParams.paramMap.CAMPAIGN_ID"
    no_name = await h.act("MOVE_TO_CAMPAIGN", crit, {"CAMPAIGN_ID": dst, "LIST_ID": "0"}, status=422)
    assert no_name["error"]["details"][0]["field"] == "leadActionParams.paramMap.LIST_NAME"
    bad_mode = await h.act(
        "MOVE_TO_CAMPAIGN",
        crit,
        {"CAMPAIGN_ID": dst, "LIST_ID": "0", "LIST_NAME": "n", "CREATE_COPY_SETTING": "maybe"},
        status=422,
    )
    assert bad_mode["error"]["details"][0]["field"] == "leadActionParams.paramMap.CREATE_COPY_SETTING"

    foreign = await h.client.post(
        "/v1/admin/accounts/la-foreign/dialGroups", json={"name": "g"}, headers=auth("la-foreign")
    )
    foreign_campaign = await h.client.post(
        f"/v1/admin/accounts/la-foreign/dialGroups/{foreign.json()['id']}/campaigns",
        json={"name": "theirs"},
        headers=auth("la-foreign"),
    )
    theirs = foreign_campaign.json()["id"]
    await h.act(
        "MOVE_TO_CAMPAIGN", crit, {"CAMPAIGN_ID": theirs, "LIST_ID": "0", "LIST_NAME": "n"}, status=404
    )
    assert len((await h.search(crit, limit=1000))["items"]) == 1000  # nothing moved by the refusals

    result = await h.act(
        "MOVE_TO_CAMPAIGN",
        crit,
        {"CAMPAIGN_ID": dst, "LIST_ID": "0", "LIST_NAME": "Moved leads", "CREATE_COPY_SETTING": "false"},
    )
    assert result["affected"] == 2500
    lists = (
        await h.client.get(f"{h.base}/dialGroups/{dg}/campaigns/{dst}/lists", headers=h.headers())
    ).json()
    new_list = next(x for x in lists["items"] if x["name"] == "Moved leads")
    assert new_list["id"] == result["to_list_id"]
    assert new_list["lead_count"] == 2500
    assert (await h.search(crit))["items"] == []

    events = await h.events(LEADS_MOVED, 3, event_type="LeadsMoved", settle=0.5)
    assert sorted(len(e["payload"]["lead_ids"]) for e in events) == [500, 1000, 1000]
    assert {e["payload"]["total_moved"] for e in events} == {2500}
    assert sorted(i for e in events for i in e["payload"]["lead_ids"]) == sorted(ids)
    assert {e["payload"]["to_list_id"] for e in events} == {new_list["id"]}


async def test_searches_stay_exact_after_partial_moves_back_and_forth(harness: Any) -> None:
    """Leads are found through the list they entered: partial moves must not lose or duplicate any."""
    h = harness
    dg, a, a_list = await h.campaign("a")
    phones = [f"1267{n:07d}" for n in range(3000001, 3000001 + 30)]
    ids = await h.add_leads(a_list, phones)
    _, b, b_list = await h.campaign("b")
    (b_own,) = await h.add_leads(b_list, ["12673999999"])
    await h.act("PAUSE_LEADS", {"leadIds": ids[:10]})

    def found(page: dict[str, Any]) -> list[str]:
        return [x["id"] for x in page["items"]]

    moved = await h.act("MOVE_TO_CAMPAIGN", {"leadIds": ids[5:15]}, _params(b, b_list, "false", "MOVE"))
    assert moved["affected"] == 10
    assert found(await h.search({"campaignId": a}, limit=1000)) == ids[:5] + ids[15:]
    assert found(await h.search({"campaignId": b}, limit=1000)) == sorted([b_own, *ids[5:15]], key=int)
    assert found(await h.search({"campaignId": b, "leadStates": ["PAUSED"]})) == ids[5:10]
    assert found(await h.search({"listIds": [a_list], "leadStates": ["PAUSED"]})) == ids[:5]
    assert (
        found(await h.search({"campaignIds": [a, b], "leadStates": ["READY"]}, limit=7))
        == sorted([*ids[10:], b_own], key=int)[:7]
    )
    lists = (await h.client.get(f"{h.base}/dialGroups/{dg}/campaigns/{a}/lists", headers=h.headers())).json()
    assert [x["lead_count"] for x in lists["items"]] == [20]

    back = await h.act("MOVE_TO_CAMPAIGN", {"campaignId": b}, _params(a, a_list, "false", "MOVE"))
    assert back["affected"] == 11
    assert found(await h.search({"campaignId": b})) == []
    assert found(await h.search({"campaignId": a}, limit=1000)) == sorted([*ids, b_own], key=int)
    reset = await h.act("RESET_LEADS", {"listIds": [a_list], "leadStates": ["PAUSED"]})
    assert reset["affected"] == 10
    assert found(await h.search({"campaignId": a, "leadStates": ["PAUSED"]})) == []
