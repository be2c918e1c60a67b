"""Each lead action's exact effect on lead state, its audit row and its events, on the real stack."""

from __future__ import annotations

from typing import Any

from dialguard.events.topics import LEADS_ACTIONS, LEADS_STOPPED
from dialguard.testing.helpers import auth

PHONES = ["12672345678", "12672345679", "12672345680"]


async def test_status_actions_change_exactly_what_they_say(harness: Any) -> None:
    h = harness
    _, camp, lst = await h.campaign()
    a, b, c = await h.add_leads(lst, PHONES)
    one = {"campaignId": camp, "leadIds": [a]}

    await h.act("MANUAL_LEADS", one, {"AGENT_DISPOSITION": "SALE"})
    lead = await h.lead(a)
    assert (lead["pass_count"], lead["manual_pass_count"], lead["agent_disposition"]) == (1, 1, "SALE")
    assert lead["suppressed"] is False  # not a DNC disposition

    paused = await h.act("PAUSE_LEADS", one)
    assert paused["affected"] == 1
    assert (await h.lead(a))["status"] == "PAUSED"
    await h.act("READY_LEADS", one)
    lead = await h.lead(a)
    assert (lead["status"], lead["pass_count"]) == ("READY", 1)  # pass count kept
    await h.act("CANCEL_LEADS", one)
    assert (await h.lead(a))["status"] == "CANCELLED"
    await h.act("RESET_LEADS", one)
    lead = await h.lead(a)
    assert (lead["status"], lead["pass_count"]) == ("READY", 0)

    # Suppression is a cause, not a status: the status survives suppress and unsuppress.
    await h.act("PAUSE_LEADS", {"leadIds": [b]})
    await h.act("SUPPRESS_LEADS", {"leadIds": [b]})
    lead = await h.lead(b)
    assert (lead["status"], lead["suppressed"], lead["suppression_causes"]) == ("PAUSED", True, ["manual"])
    assert lead["physical_state"] == "SUPPRESSED"
    await h.act("UNSUPPRESS_LEADS", {"leadIds": [b]})
    lead = await h.lead(b)
    assert (lead["status"], lead["suppressed"], lead["suppression_causes"]) == ("PAUSED", False, [])

    await h.act("CALLBACK_LEADS", {"leadIds": [c]}, {"CALLBACK_AT": "2030-01-02T03:04:05Z"})
    lead = await h.lead(c)
    assert (lead["status"], lead["callback_at"], lead["next_dial_at"]) == (
        "CALLBACK",
        "2030-01-02T03:04:05.000Z",
        "2030-01-02T03:04:05.000Z",
    )
    await h.act("CALLBACK_LEADS", {"leadIds": [c]}, {"CANCEL": "true"})
    lead = await h.lead(c)
    assert (lead["status"], lead["callback_at"]) == ("READY", None)
    await h.act(
        "AGENT_RESERVATION",
        {"leadIds": [c]},
        {"AGENT_ID": "agent-7", "CALLBACK_AT": "2030-01-02T03:04:05+02:00"},
    )
    lead = await h.lead(c)
    assert (lead["status"], lead["reserved_agent_id"], lead["callback_at"]) == (
        "CALLBACK",
        "agent-7",
        "2030-01-02T01:04:05.000Z",
    )
    await h.act("AGENT_RESERVATION", {"leadIds": [c]}, {"CANCEL": True})
    lead = await h.lead(c)
    assert (lead["status"], lead["reserved_agent_id"], lead["callback_at"]) == ("READY", None, None)

    before = await h.lead(a)
    refresh = await h.act("DIALER_REFRESH", {"campaignId": camp})
    assert refresh["affected"] == 3
    assert await h.lead(a) == before  # no state change

    nothing = await h.act("CANCEL_LEADS", {"campaignId": camp, "leadStates": ["COMPLETE"]})
    assert nothing["affected"] == 0

    for query in ({}, {"confirm": "false"}):  # destructive: nothing happens without ?confirm=true
        refused = await h.act("DELETE_LEADS", {"leadIds": [c]}, status=400, query=query)
        assert refused["error"]["code"] == "confirmation_required"
        assert refused["error"]["details"][0]["field"] == "confirm"
    assert (await h.client.get(f"{h.base}/leads/{c}", headers=h.headers())).status_code == 200

    deleted = await h.act("DELETE_LEADS", {"leadIds": [c]}, query={"confirm": "true"})
    assert deleted["affected"] == 1
    assert (await h.client.get(f"{h.base}/leads/{c}", headers=h.headers())).status_code == 404
    assert [x["id"] for x in await h.leads(lst)] == [a, b]

    audit = (await h.client.get(f"{h.base}/actions?limit=100", headers=h.headers(["OPS"]))).json()["items"]
    assert [x["action"] for x in audit][:3] == ["DELETE_LEADS", "CANCEL_LEADS", "DIALER_REFRESH"]
    newest = audit[0]
    assert (newest["affected"], newest["criteria"], newest["actor"]) == (1, {"leadIds": [c]}, "dev")
    assert (await h.client.get(f"{h.base}/actions", headers=h.headers(["VIEWER"]))).status_code == 403

    applied = await h.events(LEADS_ACTIONS, len(audit), event_type="LeadActionApplied")
    by_id = {e["payload"]["action_id"]: e for e in applied}
    assert set(by_id) == {x["action_id"] for x in audit}
    refresh_event = by_id[refresh["action_id"]]
    assert refresh_event["payload"]["affected"] == 3
    assert refresh_event["payload"]["campaign_id"] == camp
    assert refresh_event["_key"] == f"{h.account}:{camp}"
    assert by_id[nothing["action_id"]]["payload"]["affected"] == 0


async def test_manual_dnc_disposition_stops_the_phone(harness: Any) -> None:
    h = harness
    _, camp, lst = await h.campaign()
    a, b = await h.add_leads(lst, PHONES[:2])
    result = await h.act("MANUAL_LEADS", {"campaignId": camp, "leadIds": [a]}, {"AGENT_DISPOSITION": "DNC"})
    assert result["affected"] == 1
    lead = await h.lead(a)
    assert (lead["agent_disposition"], lead["suppressed"], lead["suppression_causes"]) == (
        "DNC",
        True,
        ["dnc"],
    )
    assert (await h.lead(b))["suppressed"] is False
    (stop,) = await h.events(LEADS_STOPPED, 1, event_type="LeadStopped", settle=0.5)
    assert stop["payload"]["identifier"] == {"type": "phone", "value": PHONES[0]}
    assert stop["payload"]["source"] == "agent_disposition"
    assert stop["_key"] == f"{h.account}:phone:{PHONES[0]}"


async def test_bad_requests_are_4xx_naming_the_problem(harness: Any) -> None:
    h = harness
    _, camp, lst = await h.campaign()
    await h.add_leads(lst, PHONES[:1])
    crit = {"campaignId": camp}

    unknown = await h.client.put(
        f"{h.base}/campaignLeads/actions",
        params={"leadAction": "EXPLODE_LEADS"},
        json={"campaignLeadSearchCriteria": crit},
        headers=h.headers(),
    )
    assert unknown.status_code == 400
    error = unknown.json()["error"]
    assert error["code"] == "unknown_action"
    assert "RESET_LEADS" in error["details"]
    assert "UNSUPPRESS_LEADS" in error["details"][0]["valid_values"]

    other = await h.client.put(
        f"{h.base}/campaignLeads/actions",
        params={"leadAction": "RESET_LEADS"},
        json={"campaignLeadSearchCriteria": crit},
        headers=auth("another-account"),
    )
    assert other.status_code == 404
    viewer = await h.client.put(
        f"{h.base}/campaignLeads/actions",
        params={"leadAction": "RESET_LEADS"},
        json={"campaignLeadSearchCriteria": crit},
        headers=h.headers(["VIEWER"]),
    )
    assert viewer.status_code == 403

    async def field_of(action: str, params: dict[str, Any], criteria: dict[str, Any] = crit) -> str:
        body = await h.act(action, criteria, params, status=422)
        return str(body["error"]["details"][0]["field"])

    prefix = "leadActionParams.paramMap."
    assert await field_of("MANUAL_LEADS", {}) == prefix + "AGENT_DISPOSITION"
    assert await field_of("CALLBACK_LEADS", {}) == prefix + "CALLBACK_AT"
    assert await field_of("CALLBACK_LEADS", {"CALLBACK_AT": "tomorrow"}) == prefix + "CALLBACK_AT"
    assert await field_of("CALLBACK_LEADS", {"CALLBACK_AT": "2030-01-01T00:00:00Z", "CANCEL": "true"}) == (
        prefix + "CANCEL"
    )
    assert await field_of("AGENT_RESERVATION", {"CALLBACK_AT": "2030-01-01T00:00:00Z"}) == prefix + "AGENT_ID"
    assert await field_of("EMAIL_LEADS", {"EMAIL_ADDRESSES": "ops@example.com, not-an-address"}) == (
        prefix + "EMAIL_ADDRESSES"
    )
    assert await field_of("MOVE_TO_CAMPAIGN", {"LIST_ID": "0", "LIST_NAME": "x"}) == prefix + "CAMPAIGN_ID"
    assert await field_of("RESET_LEADS", {}, {}) == "campaignLeadSearchCriteria"
    assert await field_of("RESET_LEADS", {}, {"campaignId": camp, "campaignIds": ["999"]}) == (
        "campaignLeadSearchCriteria.campaignIds"
    )
    assert (await h.lead((await h.leads(lst))[0]["id"]))["status"] == "READY"  # nothing applied
