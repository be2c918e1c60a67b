"""Campaign hierarchy, lead uploads (JSON and CSV) and search, through the public API on the real stack."""

from __future__ import annotations

from typing import Any

from dialguard.testing.helpers import auth

PHONES = ["12672345678", "12672345679", "12672345680"]


async def test_hierarchy_paths_shapes_and_tenancy(harness: Any) -> None:
    h = harness
    dg, camp, lst = await h.campaign("spring")
    groups = (await h.client.get(f"{h.base}/dialGroups", headers=h.headers(["VIEWER"]))).json()
    assert [g["id"] for g in groups["items"]] == [dg]
    assert groups["next_cursor"] is None
    campaigns = (await h.client.get(f"{h.base}/dialGroups/{dg}/campaigns", headers=h.headers())).json()[
        "items"
    ]
    assert campaigns == [
        {"id": camp, "name": "spring", "dial_group_id": dg, "created_at": campaigns[0]["created_at"]}
    ]
    for path in (f"/dialGroups/{dg}/campaigns/{camp}/lists", f"/campaigns/{camp}/lists"):
        lists = (await h.client.get(f"{h.base}{path}", headers=h.headers())).json()["items"]
        assert [(x["id"], x["campaign_id"], x["name"]) for x in lists] == [(lst, camp, "spring-list")]

    other = auth("someone-else")
    # The path's account must be the token's: any other account is a 404, never a 403.
    assert (await h.client.get(f"{h.base}/dialGroups", headers=other)).status_code == 404
    assert (
        await h.client.get(f"/v1/admin/accounts/someone-else/dialGroups/{dg}/campaigns", headers=other)
    ).status_code == 404
    assert (
        await h.client.post(
            f"/v1/admin/accounts/someone-else/lists/{lst}/leads", json={"leads": []}, headers=other
        )
    ).status_code == 404
    assert (
        await h.client.get(f"{h.base}/dialGroups/999999/campaigns", headers=h.headers())
    ).status_code == 404
    viewer = await h.client.post(f"{h.base}/dialGroups", json={"name": "x"}, headers=h.headers(["VIEWER"]))
    assert viewer.status_code == 403
    assert (await h.client.get(f"{h.base}/dialGroups")).status_code == 401


async def test_json_upload_normalizes_and_reports_bad_rows(harness: Any) -> None:
    h = harness
    _, camp, lst = await h.campaign()
    r = await h.client.post(
        f"{h.base}/lists/{lst}/leads",
        json={
            "leads": [
                {
                    "phone": "+1 (267) 234-5678",
                    "external_id": "a",
                    "first_name": "Ann",
                    "timezone": "America/New_York",
                },
                {"phone": "12345", "external_id": "b"},
                {"phone": "12672345679"},
                {"phone": "12672345680", "external_id": "c", "timezone": "Mars/Olympus"},
                {"phone": "2672345681", "external_id": "d", "fields": {"plan": "gold"}},
            ]
        },
        headers=h.headers(),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["inserted"], body["rejected"]) == (2, 3)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "phone"),
        (2, "external_id"),
        (3, "timezone"),
    ]
    assert body["errors"][0]["code"] == "invalid_phone"
    leads = await h.leads(lst)
    assert [(x["phone"], x["external_id"]) for x in leads] == [("12672345678", "a"), ("12672345681", "d")]
    first = leads[0]
    assert first["campaign_id"] == camp
    assert first["list_id"] == lst
    assert (first["status"], first["pass_count"], first["suppressed"], first["suppression_causes"]) == (
        "READY",
        0,
        False,
        [],
    )
    assert first["first_name"] == "Ann"
    assert first["timezone"] == "America/New_York"
    assert leads[1]["fields"] == {"plan": "gold"}
    for key in (
        "next_dial_at",
        "agent_disposition",
        "system_disposition",
        "callback_at",
        "reserved_agent_id",
    ):
        assert key in first
    assert (await h.lead(first["id"]))["id"] == first["id"]
    assert (await h.client.get(f"{h.base}/leads/{first['id']}", headers=auth("other"))).status_code == 404


async def test_csv_upload_inserts_good_rows_and_reports_bad_ones(harness: Any) -> None:
    h = harness
    _, _, lst = await h.campaign()
    csv = "Phone Number,External ID,First Name,Plan\r\n(267) 234-5678,e1,=cmd(),gold\r\nnot-a-phone,e2,Bob,x\r\n"
    r = await h.client.post(
        f"{h.base}/lists/{lst}/leads",
        files={"file": ("leads.csv", csv.encode(), "text/csv")},
        headers=h.headers(),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["inserted"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["row"] == 3
    assert body["errors"][0]["field"] == "phone"
    (lead,) = await h.leads(lst)
    assert (lead["phone"], lead["external_id"], lead["first_name"], lead["fields"]) == (
        "12672345678",
        "e1",
        "=cmd()",
        {"Plan": "gold"},
    )
    wrong = await h.client.post(
        f"{h.base}/lists/{lst}/leads", content=b"x", headers={**h.headers(), "content-type": "text/plain"}
    )
    assert wrong.status_code == 415


async def test_search_combines_criteria_and_pages(harness: Any) -> None:
    h = harness
    _, camp, lst = await h.campaign("a")
    _, camp_b, lst_b = await h.campaign("b")
    ids = await h.add_leads(lst, PHONES, timezone="America/Chicago")
    await h.add_leads(lst_b, PHONES[:1])
    await h.act("PAUSE_LEADS", {"campaignId": camp, "leadIds": [ids[1]]})

    assert [x["id"] for x in (await h.search({"campaignId": camp}))["items"]] == ids
    paused = await h.search({"campaignId": camp, "leadStates": ["PAUSED"]})
    assert [x["id"] for x in paused["items"]] == [ids[1]]
    either = await h.search({"campaignIds": [camp, camp_b], "leadPhoneNumbers": ["(267) 234-5678"]})
    assert len(either["items"]) == 2
    tz = await h.search({"listIds": [lst], "leadTimezones": ["America/Chicago"], "leadStates": ["READY"]})
    assert [x["id"] for x in tz["items"]] == [ids[0], ids[2]]
    assert (await h.search({"campaignId": camp, "physicalStates": ["NOT_DIALABLE"]}))["items"][0][
        "id"
    ] == ids[1]
    assert (await h.search({"campaignId": camp, "leadStates": ["COMPLETE"]}))["items"] == []

    first = await h.search({"campaignId": camp}, limit=2)
    assert [x["id"] for x in first["items"]] == ids[:2]
    assert first["next_cursor"]
    rest = await h.search({"campaignId": camp}, limit=2, cursor=first["next_cursor"])
    assert [x["id"] for x in rest["items"]] == ids[2:]
    assert rest["next_cursor"] is None

    bad = await h.client.post(
        f"{h.base}/campaignLeads/search",
        json={"campaignLeadSearchCriteria": {"leadStates": ["SLEEPING"]}},
        headers=h.headers(),
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "campaignLeadSearchCriteria.leadStates.0"
