"""The cross-service flows of the system, each proven only through public HTTP APIs and the topics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dialguard.events.topics import (
    CALL_RESULTS,
    CONTACTS_IMPORTED,
    IMPORTS_COMPLETED,
    LEADS_MOVED,
    LEADS_STOPPED,
    SUPPRESSION_CHANGES,
)
from dialguard.testing.helpers import wait_for

from .system import HOP_TIMEOUT, System, now_rfc3339

STOPPED = "12672345678"  # valid US number, written by the upstream system as "+1 (267) 234-5678"
OTHER = "12672345679"
FRESH = ("12672345680", "12672345681")
MOVED = ("12672345682", "12672345683")


def by_external_id(leads: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(x["external_id"]): x for x in leads}


@dataclass
class StoppedWorld:
    """What flow (1) built: ids the later assertions need."""

    stoplist_id: str
    target_id: str
    entry_id: str
    contact_list_id: str
    campaign_ids: tuple[str, str]


async def stop_everywhere(s: System) -> StoppedWorld:
    """Flow (1): one upstream LeadStopped reaches suppression, the dialer, lead-action, contact-list, Outbound."""
    stoplist_id = await s.stoplist("default")
    project = f"sales-{s.account}"  # the fake server is shared by the session: one project per test
    target = await s.tm_target(stoplist_id, "03", project)
    camp_a, list_a = await s.campaign("spring")
    camp_b, list_b = await s.campaign("winter")
    await s.add_leads(
        list_a, [{"phone": STOPPED, "external_id": "a-1"}, {"phone": OTHER, "external_id": "a-2"}]
    )
    await s.add_leads(list_b, [{"phone": STOPPED, "external_id": "b-1"}])
    assert (await s.act("PAUSE_LEADS", {"campaignId": camp_b}))["affected"] == 1
    cl = await s.new_contact_list(unique_id_column="id", name_column="full_name")
    await s.import_contacts(cl["id"], f"phone,id,full_name\n{STOPPED},c-1,Ann Lee\n{OTHER},c-2,Bob Ray\n")
    await s.contact_statuses_become(cl["id"], {"c-1": "callable", "c-2": "callable"})

    await s.publish(
        LEADS_STOPPED,
        "LeadStopped",
        {
            "identifier": {"type": "phone", "value": "+1 (267) 234-5678"},
            "channel": None,
            "stoplist_id": None,
            "source": "end_user_message",
            "sender": None,
            "reason": "STOP",
            "expires_in_days": None,
        },
        key=f"{s.account}:phone:{STOPPED}",
    )

    # suppression: the entry lands in the account's `default` stoplist, normalized
    async def entry() -> list[dict[str, Any]]:
        return await s.entries(stoplist_id, type="phone", value=STOPPED)

    [e] = await wait_for(entry, timeout=HOP_TIMEOUT, interval=0.1)
    assert e["identifier"] == {"type": "phone", "value": STOPPED}
    assert (e["stoplist_id"], e["channel"], e["source"], e["reason"]) == (
        stoplist_id,
        None,
        "end_user_message",
        "STOP",
    )
    assert [x["name"] for x in await s.stoplists()] == ["default"]

    # suppression: a dialer's check says suppressed, naming the entry
    check = await s.check_becomes(STOPPED, True)
    assert check["matches"], check
    assert (await s.check(OTHER))["suppressed"] is False

    # a dialer consuming suppression.changes.v1 with plain aiokafka sees the change
    [seen] = await s.watch.wait(
        SUPPRESSION_CHANGES, s.account, "SuppressionChanged", lambda p: p["entry"]["entry_id"] == e["id"]
    )
    assert seen.key == f"{s.account}:phone:{STOPPED}"
    assert (seen.payload["op"], seen.payload["suppressed"]) == ("added", True)
    assert seen.payload["entry"]["identifier"] == {"type": "phone", "value": STOPPED}
    assert seen.payload["entry"]["stoplist_id"] == stoplist_id

    # lead-action: every lead with the phone, in every campaign, is suppressed (cause dnc), status kept
    leads = await s.leads_become(
        {"leadPhoneNumbers": [STOPPED]},
        lambda ls: len(ls) == 2 and all(x["suppressed"] and "dnc" in x["suppression_causes"] for x in ls),
        "both leads of the stopped phone suppressed with cause dnc",
    )
    assert {x["external_id"]: (x["campaign_id"], x["status"]) for x in leads} == {
        "a-1": (camp_a, "READY"),
        "b-1": (camp_b, "PAUSED"),
    }
    [other] = await s.search({"leadPhoneNumbers": [OTHER]})
    assert (other["suppressed"], other["suppression_causes"], other["status"]) == (False, [], "READY")

    # contact-list: the contact has no callable unit left, so it is flagged; the other stays callable
    contacts = await s.contact_statuses_become(cl["id"], {"c-1": "flagged", "c-2": "callable"})
    assert [u["callable"] for u in contacts["c-1"]["units"]] == [False]
    assert [u["callable"] for u in contacts["c-2"]["units"]] == [True]
    await s.list_counts_become(cl["id"], total=2, callable=1, flagged=1)

    # outbound-sync: the entry is delivered to the TM target on the (fake) Outbound server
    async def delivered() -> list[dict[str, Any]] | None:
        ds = await s.deliveries(target["id"])
        return ds if ds and ds[0]["status"] == "delivered" else None

    [delivery] = await wait_for(delivered, timeout=HOP_TIMEOUT, interval=0.2)
    assert delivery["entry_id"] == e["id"]
    assert delivery["attempts"] == 1
    [request] = await s.fake_requests(f"/outbound03/projects/{project}/")
    assert (request["method"], request["path"]) == ("POST", f"/outbound03/projects/{project}/dnc")
    assert request["json"] == {"phone": STOPPED, "expires_at": None}
    assert any(k.lower() == "idempotency-key" for k in request["headers"])
    return StoppedWorld(stoplist_id, target["id"], e["id"], cl["id"], (camp_a, camp_b))


async def test_flow1_upstream_stop_suppresses_everywhere_and_reaches_outbound_and_the_dialer(
    system: System,
) -> None:
    await stop_everywhere(system)


async def test_flow2_upstream_unstop_reverses_every_effect(system: System) -> None:
    s = system
    world = await stop_everywhere(s)
    await s.publish(
        LEADS_STOPPED,
        "LeadUnstopped",
        {
            "identifier": {"type": "phone", "value": STOPPED},
            "channel": None,
            "stoplist_id": None,
            "reason": "opt-in",
        },
        key=f"{s.account}:phone:{STOPPED}",
    )

    # suppression: the entry is gone and the check is false
    await s.check_becomes(STOPPED, False)
    assert await s.entries(world.stoplist_id, type="phone", value=STOPPED) == []

    # the dialer sees the removal, with suppressed false
    [seen] = await s.watch.wait(
        SUPPRESSION_CHANGES,
        s.account,
        "SuppressionChanged",
        lambda p: p["entry"]["entry_id"] == world.entry_id and p["op"] == "removed",
    )
    assert seen.payload["suppressed"] is False
    assert seen.key == f"{s.account}:phone:{STOPPED}"

    # lead-action: both leads unsuppressed, statuses still as they were
    leads = await s.leads_become(
        {"leadPhoneNumbers": [STOPPED]},
        lambda ls: len(ls) == 2 and not any(x["suppressed"] or x["suppression_causes"] for x in ls),
        "both leads of the unstopped phone unsuppressed",
    )
    assert {x["external_id"]: x["status"] for x in leads} == {"a-1": "READY", "b-1": "PAUSED"}

    # contact-list: the contact is callable again
    contacts = await s.contact_statuses_become(world.contact_list_id, {"c-1": "callable", "c-2": "callable"})
    assert [u["callable"] for u in contacts["c-1"]["units"]] == [True]
    await s.list_counts_become(world.contact_list_id, total=2, callable=2, flagged=0)


async def test_flow3_contact_import_creates_leads_in_the_linked_campaign_suppressed_on_arrival(
    system: System,
) -> None:
    s = system
    stoplist_id = await s.stoplist("default")
    await s.add_entry(stoplist_id, STOPPED, source="manual", reason="asked by phone")
    await s.check_becomes(STOPPED, True)
    campaign_id, list_id = await s.campaign("imports")
    link = {"campaign_id": campaign_id, "list_id": list_id}
    cl = await s.new_contact_list(unique_id_column="id", name_column="full_name", campaign=link)
    assert cl["campaign"] == link

    done = await s.import_contacts(
        cl["id"],
        "phone,id,full_name,city\n"
        f"{FRESH[0]},c-1,Ann Lee,Boston\n{FRESH[1]},c-2,Bob Ray,Chicago\n{STOPPED},c-3,Cy Stop,Denver\n",
    )
    assert done["counts"]["imported"] == 3, done

    # contact-list publishes one ContactImported per contact, carrying the campaign link
    imported = await s.watch.wait(CONTACTS_IMPORTED, s.account, "ContactImported", count=3)
    assert sorted(x.payload["contact"]["external_id"] for x in imported) == ["c-1", "c-2", "c-3"]
    for x in imported:
        assert x.payload["campaign"] == link
        assert (x.payload["contact_list_id"], x.payload["import_id"]) == (cl["id"], done["id"])
        assert x.key == f"{s.account}:{x.payload['contact']['contact_id']}"
    [completed] = await s.watch.wait(IMPORTS_COMPLETED, s.account, "ImportCompleted")
    assert completed.payload["target"] == {"kind": "contact_list", "id": cl["id"]}
    assert (completed.payload["status"], completed.payload["counts"]["imported"]) == ("completed", 3)

    # lead-action: one lead per contact in the linked list; the suppressed number arrives suppressed
    async def three_leads() -> list[dict[str, Any]] | None:
        leads = await s.leads_of_list(list_id)
        return leads if len(leads) == 3 else None

    leads = by_external_id(await wait_for(three_leads, timeout=HOP_TIMEOUT, interval=0.2))
    assert {k: (v["phone"], v["campaign_id"]) for k, v in leads.items()} == {
        "c-1": (FRESH[0], campaign_id),
        "c-2": (FRESH[1], campaign_id),
        "c-3": (STOPPED, campaign_id),
    }
    assert (leads["c-1"]["first_name"], leads["c-1"]["last_name"]) == ("Ann", "Lee")
    assert (leads["c-3"]["suppressed"], leads["c-3"]["suppression_causes"]) == (True, ["dnc"])
    assert (leads["c-3"]["status"], leads["c-3"]["physical_state"]) == ("READY", "SUPPRESSED")
    assert [leads["c-1"]["suppressed"], leads["c-2"]["suppressed"]] == [False, False]

    # contact-list: the suppressed contact is flagged, the others callable
    await s.contact_statuses_become(cl["id"], {"c-1": "callable", "c-2": "callable", "c-3": "flagged"})
    await s.list_counts_become(cl["id"], total=3, callable=2, flagged=1)


async def test_flow4_move_to_campaign_plans_the_linked_contact_list(system: System) -> None:
    s = system
    camp_a, list_a = await s.campaign("source")
    camp_b, list_b = await s.campaign("target")
    cl = await s.new_contact_list(
        unique_id_column="id", name_column="full_name", campaign={"campaign_id": camp_b, "list_id": list_b}
    )
    await s.import_contacts(cl["id"], f"phone,id,full_name\n{FRESH[0]},c-1,Ann Lee\n{FRESH[1]},c-2,Bob Ray\n")

    async def leads_in(list_id: str, n: int) -> list[dict[str, Any]] | None:
        leads = await s.leads_of_list(list_id)
        return leads if len(leads) == n else None

    await wait_for(lambda: leads_in(list_b, 2), timeout=HOP_TIMEOUT, interval=0.2)
    before = await s.list_counts_become(cl["id"], total=2, callable=2, planning=0)
    assert before["campaign_status"] == "active"

    moved_ids = await s.add_leads(
        list_a, [{"phone": MOVED[0], "external_id": "m-1"}, {"phone": MOVED[1], "external_id": "m-2"}]
    )
    result = await s.act(
        "MOVE_TO_CAMPAIGN",
        {"campaignId": camp_a},
        {
            "CAMPAIGN_ID": camp_b,
            "LIST_ID": list_b,
            "CREATE_COPY_SETTING": "false",
            "DUPLICATE_ACTION_SETTING": "MOVE",
        },
    )
    assert result["affected"] == 2, result

    # lead-action publishes LeadsMoved for the target campaign
    [moved] = await s.watch.wait(LEADS_MOVED, s.account, "LeadsMoved")
    assert moved.key == f"{s.account}:{camp_b}"
    p = moved.payload
    assert (p["from_campaign_id"], p["to_campaign_id"], p["to_list_id"]) == (camp_a, camp_b, list_b)
    assert (p["mode"], p["duplicate_action"], p["total_moved"]) == ("move", "MOVE", 2)
    assert sorted(p["lead_ids"]) == sorted(moved_ids)

    # lead-action: the leads (same ids) now live in the target list
    target_leads = await wait_for(lambda: leads_in(list_b, 4), timeout=HOP_TIMEOUT, interval=0.2)
    assert set(moved_ids) <= {x["id"] for x in target_leads}
    assert await s.leads_of_list(list_a) == []

    # contact-list: the list linked to the target campaign is planned, its campaign active
    after = await s.list_counts_become(cl["id"], total=2, callable=0, planning=2)
    assert after["campaign_status"] == "active"
    await s.contact_statuses_become(cl["id"], {"c-1": "planning", "c-2": "planning"})


async def test_flow5_agent_do_not_call_closes_the_loop_through_suppression(system: System) -> None:
    s = system
    camp_a, list_a = await s.campaign("calls")
    camp_b, list_b = await s.campaign("other")
    [called, _] = await s.add_leads(
        list_a, [{"phone": STOPPED, "external_id": "a-1"}, {"phone": OTHER, "external_id": "a-2"}]
    )
    await s.add_leads(list_b, [{"phone": STOPPED, "external_id": "b-1"}])
    cl = await s.new_contact_list(unique_id_column="id", name_column="full_name")
    await s.import_contacts(cl["id"], f"phone,id,full_name\n{STOPPED},c-1,Ann Lee\n")
    await s.contact_statuses_become(cl["id"], {"c-1": "callable"})

    await s.publish(
        CALL_RESULTS,
        "CallResult",
        {
            "lead_id": called,
            "campaign_id": camp_a,
            "identifier": {"type": "phone", "value": STOPPED},
            "channel": "voice",
            "attempted_at": now_rfc3339(),
            "system_disposition": "ANSWERED",
            "agent_disposition": "DNC",
            "reached": True,
            "do_not_call": True,
        },
        key=f"{s.account}:{called}",
    )

    # lead-action publishes LeadStopped (source agent_disposition) through its outbox
    [stopped] = await s.watch.wait(LEADS_STOPPED, s.account, "LeadStopped")
    assert stopped.envelope["producer"] == "lead-action"
    assert stopped.payload["identifier"] == {"type": "phone", "value": STOPPED}
    assert stopped.payload["source"] == "agent_disposition"
    assert stopped.key == f"{s.account}:phone:{STOPPED}"

    # suppression: the account's default stoplist is created on first use and holds the entry
    async def default_entries() -> list[dict[str, Any]] | None:
        lists = await s.stoplists()
        if [x["name"] for x in lists] != ["default"]:
            return None
        return await s.entries(lists[0]["id"], type="phone", value=STOPPED) or None

    [e] = await wait_for(default_entries, timeout=HOP_TIMEOUT, interval=0.2)
    assert e["source"] == "agent_disposition"
    await s.check_becomes(STOPPED, True)
    [seen] = await s.watch.wait(
        SUPPRESSION_CHANGES, s.account, "SuppressionChanged", lambda p: p["entry"]["entry_id"] == e["id"]
    )
    assert (seen.payload["op"], seen.payload["suppressed"]) == ("added", True)

    # lead-action: every lead of the phone suppressed; the called one completed (reached), the other kept
    leads = await s.leads_become(
        {"leadPhoneNumbers": [STOPPED]},
        lambda ls: len(ls) == 2 and all(x["suppressed"] and "dnc" in x["suppression_causes"] for x in ls),
        "both leads of the DNC phone suppressed with cause dnc",
    )
    got = by_external_id(leads)
    assert (got["a-1"]["status"], got["a-1"]["pass_count"], got["a-1"]["agent_disposition"]) == (
        "COMPLETE",
        1,
        "DNC",
    )
    assert (got["b-1"]["status"], got["b-1"]["campaign_id"]) == ("READY", camp_b)
    [other] = await s.search({"leadPhoneNumbers": [OTHER]})
    assert other["suppressed"] is False

    # contact-list: the contact is flagged
    await s.contact_statuses_become(cl["id"], {"c-1": "flagged"})
