"""Suppression through its public surface on the real stack: stoplists, entries, check, truncate, events."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from dialguard.events import Envelope
from dialguard.events.topics import LEADS_STOPPED, SUPPRESSION_CHANGES
from dialguard.platform.auth import mint_token
from dialguard.testing.fixtures import StartService
from dialguard.testing.helpers import SECRET, account_events, auth, wait_for

PHONE = "12672345678"


async def test_stoplists_entries_and_tenancy(start_service: StartService) -> None:
    sup = await start_service("suppression")
    async with httpx.AsyncClient(base_url=sup.base_url) as c:
        r = await c.post(
            "/v1/stoplists",
            json={"name": "vip", "entries": [{"identifier": {"type": "phone", "value": "+1 267 234 5678"}}]},
            headers=auth(),
        )
        assert r.status_code == 201, r.text
        sl = r.json()
        assert sl["record_count"] == 1
        assert sl["entries"][0]["identifier"] == {"type": "phone", "value": PHONE}
        assert (await c.post("/v1/stoplists", json={"name": "vip"}, headers=auth())).status_code == 409

        first = await c.post(
            f"/v1/stoplists/{sl['id']}/entries",
            json={"identifier": {"type": "email", "value": " Opt.Out@Example.COM "}, "channel": "email"},
            headers=auth(),
        )
        assert first.status_code == 201
        assert first.json()["identifier"]["value"] == "opt.out@example.com"
        again = await c.post(
            f"/v1/stoplists/{sl['id']}/entries",
            json={"identifier": {"type": "email", "value": "opt.out@example.com"}, "channel": "email"},
            headers=auth(),
        )
        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]

        bad = await c.post(
            f"/v1/stoplists/{sl['id']}/entries",
            json={"identifier": {"type": "phone", "value": "12345"}},
            headers=auth(),
        )
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["field"] == "identifier.value"
        wrong_channel = await c.post(
            f"/v1/stoplists/{sl['id']}/entries",
            json={"identifier": {"type": "email", "value": "a@b.com"}, "channel": "sms"},
            headers=auth(),
        )
        assert wrong_channel.status_code == 422

        listed = (await c.get("/v1/stoplists", headers=auth("acme", ["VIEWER"]))).json()["items"]
        assert [(s["name"], s["record_count"]) for s in listed if s["id"] == sl["id"]] == [("vip", 2)]
        page = (await c.get(f"/v1/stoplists/{sl['id']}/entries?type=email&limit=1", headers=auth())).json()
        assert [e["identifier"]["type"] for e in page["items"]] == ["email"]
        assert page["next_cursor"] is None
        by_value = (
            await c.get(f"/v1/stoplists/{sl['id']}/entries?value=(267) 234-5678", headers=auth())
        ).json()
        assert len(by_value["items"]) == 1

        assert (
            await c.get(f"/v1/stoplists/{sl['id']}", headers=auth("globex", ["VIEWER"]))
        ).status_code == 404
        assert (
            await c.post(
                f"/v1/stoplists/{sl['id']}/entries",
                json={"identifier": {"type": "phone", "value": PHONE}},
                headers=auth("globex"),
            )
        ).status_code == 404
        assert (await c.patch(f"/v1/stoplists/{sl['id']}", json={"name": "vip2"}, headers=auth())).json()[
            "name"
        ] == "vip2"

        entry_id = first.json()["id"]
        no_confirm = await c.delete(f"/v1/stoplists/{sl['id']}/entries/{entry_id}", headers=auth())
        assert no_confirm.status_code == 400
        assert no_confirm.json()["error"]["code"] == "confirmation_required"
        assert (
            await c.delete(
                f"/v1/stoplists/{sl['id']}/entries/{entry_id}?confirm=true", headers=auth("globex")
            )
        ).status_code == 404
        assert (
            await c.delete(f"/v1/stoplists/{sl['id']}/entries/{entry_id}?confirm=true", headers=auth())
        ).status_code == 204
        bulk = await c.post(
            f"/v1/stoplists/{sl['id']}/entries:delete?confirm=true",
            json={"entry_ids": [sl["entries"][0]["id"], str(uuid.uuid4())]},
            headers=auth(),
        )
        assert bulk.json()["deleted"] == 1
        assert (await c.get(f"/v1/stoplists/{sl['id']}", headers=auth())).json()["record_count"] == 0
        assert (await c.delete(f"/v1/stoplists/{sl['id']}?confirm=true", headers=auth())).status_code == 204
        assert (await c.get(f"/v1/stoplists/{sl['id']}", headers=auth())).status_code == 404


async def test_check_honours_channel_sender_and_request_order(start_service: StartService) -> None:
    sup = await start_service("suppression")
    async with httpx.AsyncClient(base_url=sup.base_url) as c:
        sl = (await c.post("/v1/stoplists", json={"name": "sms-only"}, headers=auth())).json()
        await c.post(
            f"/v1/stoplists/{sl['id']}/entries",
            json={"identifier": {"type": "phone", "value": PHONE}, "channel": "sms", "sender": "BRAND"},
            headers=auth(),
        )
        dialer = auth("acme", ["DIALER"])

        async def single(**params: str) -> bool:
            r = await c.get("/v1/check", params={"type": "phone", "value": PHONE, **params}, headers=dialer)
            assert r.status_code == 200, r.text
            return bool(r.json()["suppressed"])

        assert await single() is True
        assert await single(channel="sms") is True
        assert await single(channel="voice") is False
        assert await single(channel="sms", sender="OTHER") is False
        assert await single(channel="sms", sender="BRAND") is True
        other_account = await c.get(
            "/v1/check", params={"type": "phone", "value": PHONE}, headers=auth("globex", ["DIALER"])
        )
        assert other_account.json()["suppressed"] is False

        batch = await c.post(
            "/v1/check",
            json={
                "identifiers": [
                    {"type": "phone", "value": "12672345679"},
                    {"type": "phone", "value": "(267) 234-5678"},
                    {"type": "email", "value": "nobody@example.com"},
                    {"type": "phone", "value": "not a phone"},
                ],
                "channel": "sms",
            },
            headers=dialer,
        )
        assert batch.status_code == 200
        assert [r["suppressed"] for r in batch.json()["results"]] == [False, True, False, False]
        assert batch.json()["results"][1]["identifier"]["value"] == "(267) 234-5678"
        assert batch.json()["results"][3]["error"]["code"] == "invalid_phone"
        too_many = await c.post(
            "/v1/check", json={"identifiers": [{"type": "phone", "value": PHONE}] * 10_001}, headers=dialer
        )
        assert too_many.status_code == 422
        assert (await c.get("/v1/check", params={"type": "phone", "value": PHONE})).status_code == 401


async def test_check_input_errors_auth_metrics_and_openapi(start_service: StartService) -> None:
    sup = await start_service("suppression")
    dialer = auth("acme", ["DIALER"])
    async with httpx.AsyncClient(base_url=sup.base_url) as c:
        bad_queries = [
            ({"value": PHONE}, "type"),
            ({"type": "fax", "value": PHONE}, "type"),
            ({"type": "phone"}, "value"),
            ({"type": "phone", "value": PHONE, "channel": "pigeon"}, "channel"),
            ({"type": "phone", "value": PHONE, "region": "usa"}, "region"),
            ({"type": "phone", "value": "12345"}, "value"),
        ]
        for params, field in bad_queries:
            r = await c.get("/v1/check", params=params, headers=dialer)
            assert r.status_code == 422, (params, r.text)
            assert r.json()["error"]["details"][0]["field"] == field, r.text
        bad_bodies = [
            (b"{not json", "body"),
            (b"[]", "body"),
            (b'{"identifiers": {}}', "identifiers"),
            (b'{"identifiers": [{"type": "phone"}]}', "identifiers.0.value"),
            (
                b'{"identifiers": [{"type": "phone", "value": "x"}, {"type": "fax", "value": "1"}]}',
                "identifiers.1.type",
            ),
            (b'{"identifiers": [], "channel": "pigeon"}', "channel"),
            (b'{"identifiers": [], "stoplist_ids": ["nope"]}', "stoplist_ids"),
        ]
        for body, field in bad_bodies:
            r = await c.post(
                "/v1/check", content=body, headers={**dialer, "content-type": "application/json"}
            )
            assert r.status_code == 422, (body, r.text)
            assert r.json()["error"]["details"][0]["field"] == field, r.text
        huge = await c.post("/v1/check", content=b" " * (8 * 1024 * 1024 + 1), headers=dialer)
        assert huge.status_code == 413
        assert huge.json()["error"]["code"] == "payload_too_large"
        assert (await c.post("/v1/check", json={"identifiers": []}, headers=dialer)).json() == {"results": []}

        no_role = await c.get(
            "/v1/check", params={"type": "phone", "value": PHONE}, headers=auth("acme", ["AUDITOR"])
        )
        assert no_role.status_code == 403
        assert no_role.json()["error"]["code"] == "forbidden"
        forged = await c.get(
            "/v1/check", params={"type": "phone", "value": PHONE}, headers={"Authorization": "Bearer x.y.z"}
        )
        assert forged.status_code == 401
        assert forged.json()["error"]["code"] == "invalid_token"

        metrics = (await c.get("/metrics")).text
        seen = {
            (s.labels["method"], s.labels["status"])
            for family in text_string_to_metric_families(metrics)
            if family.name == "dialguard_http_request_seconds"
            for s in family.samples
            if s.name.endswith("_count") and s.labels["route"] == "/v1/check"
        }
        assert {("GET", "422"), ("POST", "413"), ("GET", "401"), ("POST", "200")} <= seen
        paths = (await c.get("/openapi.json")).json()["paths"]
        assert {"get", "post"} <= set(paths["/v1/check"])
        assert "requestBody" in paths["/v1/check"]["post"]


async def test_truncate_needs_the_password(start_service: StartService) -> None:
    sup = await start_service("suppression")
    async with httpx.AsyncClient(base_url=sup.base_url) as c:
        sl = (
            await c.post(
                "/v1/stoplists",
                json={
                    "name": "t",
                    "entries": [{"identifier": {"type": "person_id", "value": f"p{i}"}} for i in range(5)],
                },
                headers=auth(),
            )
        ).json()
        url = f"/v1/stoplists/{sl['id']}/truncate"
        assert (await c.post(url, json={"password": "whatever1"}, headers=auth())).status_code == 403
        assert (
            await c.put(
                f"/v1/stoplists/{sl['id']}/truncate-password",
                json={"password": "s3cret-pass"},
                headers=auth(),
            )
        ).status_code == 204
        wrong = await c.post(url, json={"password": "nope-nope"}, headers=auth())
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "wrong_password")
        ok = await c.post(url, json={"password": "s3cret-pass"}, headers=auth())
        assert ok.json() == {"removed": 5}
        assert (await c.get(f"/v1/stoplists/{sl['id']}", headers=auth())).json()["record_count"] == 0


async def _changes(infra: Any, account: str, want: int, timeout: float = 30) -> list[dict[str, Any]]:
    return await account_events(infra.kafka_bootstrap, SUPPRESSION_CHANGES, account, want, timeout)


async def test_lead_stopped_and_unstopped_events_round_trip(
    infra: Any, dsns: dict[str, str], start_service: StartService
) -> None:
    sup = await start_service("suppression", EXPIRY_SWEEP_SECONDS="0.5")
    account = f"ev-{uuid.uuid4().hex[:6]}"
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()

    async def publish(event_type: str, payload: dict[str, Any]) -> None:
        env = Envelope(event_type=event_type, account_id=account, producer="upstream", payload=payload)
        await producer.send_and_wait(LEADS_STOPPED, env.to_bytes(), key=f"{account}:phone:{PHONE}".encode())

    dialer = auth(account, ["DIALER"])
    try:
        async with httpx.AsyncClient(base_url=sup.base_url) as c:

            async def suppressed() -> bool:
                r = await c.get("/v1/check", params={"type": "phone", "value": PHONE}, headers=dialer)
                return bool(r.json()["suppressed"])

            await publish(
                "LeadStopped",
                {
                    "identifier": {"type": "phone", "value": "+1 (267) 234-5678"},
                    "source": "end_user_message",
                    "reason": "STOP",
                },
            )
            await wait_for(suppressed)
            lists = (await c.get("/v1/stoplists", headers=auth(account))).json()["items"]
            assert [s["name"] for s in lists] == ["default"]
            await publish("LeadUnstopped", {"identifier": {"type": "phone", "value": PHONE}})

            async def not_suppressed() -> bool:
                return not await suppressed()

            await wait_for(not_suppressed)
            # An entry that expired stops suppressing at once and leaves with an `expired` event.
            await publish(
                "LeadStopped", {"identifier": {"type": "phone", "value": PHONE}, "expires_in_days": 1}
            )
            await wait_for(suppressed)
            conn = await asyncpg.connect(dsns["suppression"])
            try:
                await conn.execute(
                    "UPDATE entries SET expires_at = now() - interval '1 second' WHERE account_id = $1",
                    account,
                )
            finally:
                await conn.close()
            assert await suppressed() is False
        events = await _changes(infra, account, 4)
        ops = [(e["payload"]["op"], e["payload"]["suppressed"]) for e in events]
        assert ops == [("added", True), ("removed", False), ("added", True), ("expired", False)]
        assert events[0]["payload"]["entry"]["identifier"] == {"type": "phone", "value": PHONE}
        assert events[0]["payload"]["entry"]["source"] == "end_user_message"
    finally:
        await producer.stop()


async def test_a_burst_of_opt_outs_applies_in_order_with_each_events_correlation(
    infra: Any, start_service: StartService
) -> None:
    """Opt-outs arriving together are applied as a group; order per identifier and correlation ids hold."""
    sup = await start_service("suppression")
    account = f"burst-{uuid.uuid4().hex[:6]}"
    phones = [f"1267234{7000 + i:04d}" for i in range(40)]
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, linger_ms=50)
    await producer.start()

    def event(event_type: str, phone: str, correlation: str, **extra: Any) -> bytes:
        payload = {"identifier": {"type": "phone", "value": phone}, **extra}
        env = Envelope(
            event_type=event_type,
            account_id=account,
            producer="upstream",
            correlation_id=correlation,
            payload=payload,
        )
        return env.to_bytes()

    try:
        sends = [
            await producer.send(
                LEADS_STOPPED,
                event(
                    "LeadStopped", p, f"corr-{p}", source="agent_disposition" if i % 2 else "end_user_message"
                ),
                key=f"{account}:phone:{p}".encode(),
            )
            for i, p in enumerate(phones)
        ]
        # One identifier stopped, unstopped and stopped again within the same burst: ends suppressed.
        # Another stopped then unstopped: ends not suppressed.
        key_a, key_b = f"{account}:phone:{phones[0]}".encode(), f"{account}:phone:{phones[1]}".encode()
        sends.append(await producer.send(LEADS_STOPPED, event("LeadUnstopped", phones[0], "u0"), key=key_a))
        sends.append(
            await producer.send(
                LEADS_STOPPED, event("LeadStopped", phones[0], "again", source="api"), key=key_a
            )
        )
        sends.append(await producer.send(LEADS_STOPPED, event("LeadUnstopped", phones[1], "u1"), key=key_b))
        await asyncio.gather(*sends)
        changes = await _changes(infra, account, want=len(phones) + 3)
    finally:
        await producer.stop()

    removed = {
        c["payload"]["entry"]["identifier"]["value"]: c["correlation_id"]
        for c in changes
        if c["payload"]["op"] == "removed"
    }
    assert removed == {phones[0]: "u0", phones[1]: "u1"}  # each removal names the unstop that caused it
    added = [c for c in changes if c["payload"]["op"] == "added"]
    assert {c["correlation_id"] for c in added} == {f"corr-{p}" for p in phones} | {"again"}
    for c in added:  # each entry's event names the opt-out that asked for it
        if c["correlation_id"] != "again":
            assert c["correlation_id"] == f"corr-{c['payload']['entry']['identifier']['value']}"
    async with httpx.AsyncClient(base_url=sup.base_url) as c:
        r = await c.post(
            "/v1/check",
            json={"identifiers": [{"type": "phone", "value": p} for p in phones]},
            headers=auth(account, ["DIALER"]),
        )
        got = [x["suppressed"] for x in r.json()["results"]]
        assert got == [True, False] + [True] * (len(phones) - 2)
        entries = (await c.get("/v1/stoplists", headers=auth(account))).json()["items"]
        assert [s["record_count"] for s in entries] == [len(phones) - 1]


async def test_audit_shows_who_added_and_removed_each_entry(start_service: StartService) -> None:
    """OPS can show an opt-out's whole history, even after the entry itself is gone."""
    sup = await start_service("suppression")
    account = f"audit-{uuid.uuid4().hex[:6]}"

    def as_user(sub: str, roles: list[str]) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {mint_token(secret=SECRET, account_id=account, roles=roles, sub=sub)}"
        }

    alice, bob = as_user("alice", ["OUTBOUND_MANAGER"]), as_user("bob", ["OUTBOUND_MANAGER"])
    ops = as_user("auditor", ["OPS"])
    async with httpx.AsyncClient(base_url=sup.base_url) as c:
        sl = (await c.post("/v1/stoplists", json={"name": "audited"}, headers=alice)).json()
        url = f"/v1/stoplists/{sl['id']}/entries"
        kept = (
            await c.post(url, json={"identifier": {"type": "phone", "value": PHONE}}, headers=alice)
        ).json()
        gone = (
            await c.post(url, json={"identifier": {"type": "email", "value": "x@example.com"}}, headers=alice)
        ).json()
        r = await c.delete(f"{url}/{gone['id']}", params={"confirm": "true"}, headers=bob)
        assert r.status_code in (200, 204), r.text

        audit = (await c.get("/v1/audit/entries", headers=ops)).json()
        facts = [(f["action"], f["actor"], f["identifier"]["value"]) for f in audit["items"]]
        assert facts == [
            ("removed", "bob", "x@example.com"),
            ("added", "alice", "x@example.com"),
            ("added", "alice", PHONE),
        ]
        assert audit["items"][0]["entry_id"] == gone["id"]
        assert audit["items"][2]["entry_id"] == kept["id"]

        typed = await c.get(
            "/v1/audit/entries", params={"type": "phone", "value": "+1 (267) 234-5678"}, headers=ops
        )
        assert [f["entry_id"] for f in typed.json()["items"]] == [kept["id"]]
        removed = await c.get("/v1/audit/entries", params={"kind": "removed"}, headers=ops)
        assert [f["actor"] for f in removed.json()["items"]] == ["bob"]
        by_actor = await c.get("/v1/audit/entries", params={"actor": "alice"}, headers=ops)
        assert len(by_actor.json()["items"]) == 2

        walked, cursor = [], None  # keyset pages of one walk every fact once, in order
        while True:
            page = (
                await c.get(
                    "/v1/audit/entries",
                    params={"limit": 1, **({"cursor": cursor} if cursor else {})},
                    headers=ops,
                )
            ).json()
            walked += [(f["action"], f["entry_id"]) for f in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert walked == [(f["action"], f["entry_id"]) for f in audit["items"]]

        assert (await c.get("/v1/audit/entries", headers=as_user("d", ["DIALER"]))).status_code == 403
        other = await c.get("/v1/audit/entries", headers=auth(f"other-{account}", ["OPS"]))
        assert other.json()["items"] == []
        half = await c.get("/v1/audit/entries", params={"type": "phone"}, headers=ops)
        assert (half.status_code, half.json()["error"]["details"][0]["field"]) == (422, "value")
        bad = await c.get("/v1/audit/entries", params={"cursor": "bm9wZQ"}, headers=ops)
        assert bad.status_code == 422
