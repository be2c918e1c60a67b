"""Events in and out of the contact-list service on the real stack: ContactImported / ImportCompleted leave
through the outbox; suppression changes, lead moves, lead actions and call results drive the status counts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from dialguard.events import Envelope
from dialguard.events.topics import (
    CALL_RESULTS,
    CONTACTS_IMPORTED,
    IMPORTS_COMPLETED,
    LEADS_ACTIONS,
    LEADS_MOVED,
    SUPPRESSION_CHANGES,
)
from dialguard.testing.helpers import auth, wait_for
from dialguard.testing.services import ServiceProcess

from .test_contact_lists import create_list, import_file

COUNT_KEYS = ("total", "callable", "planning", "open", "attempted", "flagged", "closed")


@pytest.fixture
async def producer(infra: Any) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await p.start()
    yield p
    await p.stop()


async def publish(
    producer: AIOKafkaProducer, topic: str, account: str, event_type: str, payload: dict[str, Any], key: str
) -> Envelope:
    env = Envelope(event_type=event_type, account_id=account, producer="test", payload=payload)
    await producer.send_and_wait(topic, env.to_bytes(), key=key.encode())
    return env


def suppression(
    op: str, value: str, channel: str | None, suppressed: bool, entry_id: str, id_type: str = "phone"
) -> dict[str, Any]:
    return {
        "op": op,
        "entry": {
            "entry_id": entry_id,
            "stoplist_id": str(uuid.uuid4()),
            "identifier": {"type": id_type, "value": value},
            "channel": channel,
            "sender": None,
            "source": "api",
            "reason": None,
            "added_at": "2026-11-23T10:00:00.000Z",
            "expires_at": None,
        },
        "suppressed": suppressed,
    }


def call(
    lead_id: str, campaign: str, value: str, *, reached: bool, channel: str = "voice", id_type: str = "phone"
) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "campaign_id": campaign,
        "identifier": {"type": id_type, "value": value},
        "channel": channel,
        "attempted_at": datetime.now(UTC).isoformat(),
        "system_disposition": "ANSWERED" if reached else "NO_ANSWER",
        "agent_disposition": None,
        "reached": reached,
        "do_not_call": False,
    }


async def counts_become(c: httpx.AsyncClient, list_id: str, account: str, **expected: int) -> dict[str, Any]:
    want = {k: expected.get(k, 0) for k in COUNT_KEYS}

    async def match() -> dict[str, Any] | None:
        body = (await c.get(f"/v1/contact-lists/{list_id}", headers=auth(account))).json()
        return dict(body) if body["counts"] == want else None

    try:
        result: dict[str, Any] = await wait_for(match, timeout=20)
    except AssertionError:
        got = (await c.get(f"/v1/contact-lists/{list_id}", headers=auth(account))).json()["counts"]
        raise AssertionError(f"counts {got} never became {want}") from None
    return result


async def assert_counts_match_contacts(c: httpx.AsyncClient, list_id: str, account: str) -> None:
    """The maintained counts equal what the contacts themselves say, status by status."""
    counts = (await c.get(f"/v1/contact-lists/{list_id}", headers=auth(account))).json()["counts"]
    for status in COUNT_KEYS[1:]:
        url = f"/v1/contact-lists/{list_id}/contacts?status={status}&limit=1000"
        assert len((await c.get(url, headers=auth(account))).json()["items"]) == counts[status], status
    everyone = (await c.get(f"/v1/contact-lists/{list_id}/contacts?limit=1000", headers=auth(account))).json()
    assert len(everyone["items"]) == counts["total"]


async def contacts_by_external_id(
    c: httpx.AsyncClient, list_id: str, account: str
) -> dict[str, dict[str, Any]]:
    items = (await c.get(f"/v1/contact-lists/{list_id}/contacts", headers=auth(account))).json()["items"]
    return {x["external_id"]: x for x in items}


async def consume(
    infra: Any, topic: str, account: str, want: int, timeout: float = 20
) -> list[tuple[str, dict[str, Any]]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=infra.kafka_bootstrap,
        group_id=f"t-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        session_timeout_ms=3000,
        heartbeat_interval_ms=300,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    found: list[tuple[str, dict[str, Any]]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < want and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    env = orjson.loads(r.value)
                    if env["account_id"] == account:
                        found.append((r.key.decode(), env))
    finally:
        await consumer.stop()
    return found


async def test_commit_emits_contact_imported_and_import_completed(
    infra: Any, shared_service: ServiceProcess
) -> None:
    svc = shared_service
    account = f"ev-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        cl = await create_list(
            c, account, campaign={"campaign_id": "camp-9", "list_id": "list-9"}, name_column="name"
        )
        assert cl["campaign"] == {"campaign_id": "camp-9", "list_id": "list-9"}
        assert cl["campaign_status"] == "active"
        done = await import_file(
            c,
            cl["id"],
            'phone,name,email,city\n12672345678,"Ann ""Q"" \\ Ü",ann@example.com,"Bos""ton"\n'
            "12672345679,Bob,,\nbad,X,,\n",
            account,
        )
        contacts = await contacts_by_external_id(c, cl["id"], account)
    imported = await consume(infra, CONTACTS_IMPORTED, account, 2)
    assert len(imported) == 2
    by_name = {env["payload"]["contact"]["name"]: (key, env) for key, env in imported}
    key, env = by_name['Ann "Q" \\ Ü']  # Postgres writes these envelopes: quoting must hold
    assert env["event_type"] == "ContactImported"
    assert env["payload"]["contact"]["fields"] == {"city": 'Bos"ton'}
    assert env["payload"]["contact"]["timezone"] is None
    assert env["producer"] == "contact-list"
    contact_id = contacts["1"]["id"]
    assert key == f"{account}:{contact_id}"
    payload = env["payload"]
    assert payload["contact_list_id"] == cl["id"]
    assert payload["import_id"] == done["id"]
    assert payload["campaign"] == {"campaign_id": "camp-9", "list_id": "list-9"}
    assert payload["contact"]["contact_id"] == contact_id
    assert payload["contact"]["external_id"] == "1"
    assert [(u["type"], u["value"], u["channel"], u["priority"]) for u in payload["contact"]["units"]] == [
        ("phone", "12672345678", "voice", 1),
        ("email", "ann@example.com", "email", 2),
    ]
    completed = await consume(infra, IMPORTS_COMPLETED, account, 1)
    key, env = completed[0]
    assert key == f"{account}:{done['id']}"
    assert env["payload"]["target"] == {"kind": "contact_list", "id": cl["id"]}
    assert env["payload"]["status"] == "completed"
    assert env["payload"]["counts"] == {
        "total": 3,
        "imported": 2,
        "duplicates": 0,
        "invalid": 1,
        "skipped": 0,
    }


async def test_contact_imported_units_are_the_stored_units(
    infra: Any, shared_service: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    # A contact with nothing suppressed is published with its units as staged; one with a suppressed
    # unit has them aggregated again from the projection: both must equal what the API stores.
    svc = shared_service
    account = f"cu-{uuid.uuid4().hex[:6]}"
    p1, p2 = "12672345681", "12672345682"
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        probe = await create_list(c, account)
        await import_file(c, probe["id"], f"phone\n{p2}\n", account)
        await publish(
            producer, SUPPRESSION_CHANGES, account, "SuppressionChanged",
            suppression("added", p2, "voice", True, "e-cu-1"), f"{account}:phone:{p2}",
        )  # fmt: skip
        await counts_become(c, probe["id"], account, total=1, flagged=1)
        cl = await create_list(c, account)
        await import_file(
            c, cl["id"], f"phone,email\n{p1},Ann@Example.com\n{p2},bob@example.com\n{p1},\n", account
        )
        stored = await contacts_by_external_id(c, cl["id"], account)
    imported = await consume(infra, CONTACTS_IMPORTED, account, 4)
    published = {
        env["payload"]["contact"]["contact_id"]: env["payload"]["contact"]["units"]
        for _, env in imported
        if env["payload"]["contact_list_id"] == cl["id"]
    }
    assert len(stored) == 3
    assert [u["callable"] for u in stored["2"]["units"]] == [False, True]
    for contact in stored.values():
        assert published[contact["id"]] == contact["units"]


async def test_suppression_changes_flag_and_unflag_contacts(
    shared_service: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    svc = shared_service
    account = f"sup-{uuid.uuid4().hex[:6]}"
    p1, p2, p3, p4 = "12672345671", "12672345672", "12672345673", "12672345674"

    async def changed(
        op: str, value: str, channel: str | None, suppressed: bool, entry_id: str, id_type: str = "phone"
    ) -> Envelope:
        body = suppression(op, value, channel, suppressed, entry_id, id_type)
        return await publish(
            producer, SUPPRESSION_CHANGES, account, "SuppressionChanged", body, f"{account}:{id_type}:{value}"
        )

    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        cl = await create_list(c, account)
        await import_file(c, cl["id"], f"phone,email\n{p1},ann@example.com\n{p2},\n{p3},\n{p4},\n", account)
        await counts_become(c, cl["id"], account, total=4, callable=4)

        first = await changed("added", p2, None, True, "e-p2")  # all channels: Bob's only unit
        await changed(
            "added", p1, "sms", True, "e-p1-sms"
        )  # another channel: Ann's voice unit stays callable
        await changed("added", "ann@example.com", None, True, "e-mail", "email")
        await counts_become(c, cl["id"], account, total=4, callable=3, flagged=1)
        await changed("added", p1, "voice", True, "e-p1-voice")  # Ann has no callable unit left
        await counts_become(c, cl["id"], account, total=4, callable=2, flagged=2)
        ann = (await contacts_by_external_id(c, cl["id"], account))["1"]
        assert ann["status"] == "flagged"
        assert [u["callable"] for u in ann["units"]] == [False, False]

        await changed("removed", p1, "voice", False, "e-p1-voice")  # Ann returns to callable
        await changed("removed", p2, None, False, "e-p2")
        await counts_become(c, cl["id"], account, total=4, callable=4)
        # A redelivered event (same event_id) changes nothing.
        await producer.send_and_wait(
            SUPPRESSION_CHANGES, first.to_bytes(), key=f"{account}:phone:{p2}".encode()
        )
        await changed("added", p3, None, True, "e-p3")
        await changed("added", p4, None, True, "e-p4")
        await counts_become(c, cl["id"], account, total=4, callable=2, flagged=2)
        bob = (await contacts_by_external_id(c, cl["id"], account))["2"]
        assert bob["status"] == "callable"

        # Contacts imported after an entry arrive flagged (the service keeps a projection of live entries).
        later = await create_list(c, account)
        await import_file(c, later["id"], f"phone\n{p4}\n{p2}\n", account)
        body = await counts_become(c, later["id"], account, total=2, callable=1, flagged=1)
        assert body["counts"]["flagged"] == 1

        # Another account's suppression of the same number touches only that account's contacts.
        other = await create_list(c, "other-account")
        await import_file(c, other["id"], f"phone\n{p2}\n", "other-account")
        await publish(
            producer, SUPPRESSION_CHANGES, "other-account", "SuppressionChanged",
            suppression("added", p2, None, True, "x-1"), f"other-account:phone:{p2}",
        )  # fmt: skip
        await counts_become(c, other["id"], "other-account", total=1, flagged=1)
        await counts_become(c, later["id"], account, total=2, callable=1, flagged=1)
        await assert_counts_match_contacts(c, cl["id"], account)


async def test_scripted_lifecycle_gives_exact_counts(
    shared_service: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    svc = shared_service
    account = f"life-{uuid.uuid4().hex[:6]}"
    phones = [f"1267234560{i}" for i in range(5)]
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        one = await create_list(
            c,
            account,
            campaign={"campaign_id": "camp-1", "list_id": "l-1"},
            max_attempts=2,
            unique_id_column="id",
        )
        rows = "".join(f"{p},C{i}\n" for i, p in enumerate(phones))
        await import_file(c, one["id"], f"phone,id\n{rows}", account)
        two = await create_list(
            c, account, campaign={"campaign_id": "camp-2", "list_id": "l-2"}, close_when_all_reached=True
        )
        await import_file(c, two["id"], "phone,email\n12672345690,zed@example.com\n12672345691,\n", account)
        contacts = await contacts_by_external_id(c, one["id"], account)

        async def send(topic: str, event_type: str, payload: dict[str, Any], key: str) -> None:
            await publish(producer, topic, account, event_type, payload, f"{account}:{key}")

        moved = {
            "action_id": "a-1", "from_campaign_id": None, "to_campaign_id": "camp-1", "to_list_id": "l-1",
            "mode": "copy", "duplicate_action": "MOVE", "lead_ids": ["unknown-lead"], "total_moved": 5,
        }  # fmt: skip
        await send(LEADS_MOVED, "LeadsMoved", moved, "camp-1")
        await counts_become(c, one["id"], account, total=5, planning=5)
        await counts_become(c, two["id"], account, total=2, callable=2)

        await send(
            CALL_RESULTS, "CallResult", call(contacts["C0"]["id"], "camp-1", phones[0], reached=True), "x0"
        )
        await send(CALL_RESULTS, "CallResult", call("lead-77", "camp-1", phones[1], reached=False), "x1")
        await send(CALL_RESULTS, "CallResult", call("lead-77", "camp-1", phones[1], reached=False), "x1")
        await send(CALL_RESULTS, "CallResult", call("C2", "camp-1", "+1 267 234 5602", reached=False), "x2")
        await send(
            CALL_RESULTS, "CallResult", call("C3", "camp-9", phones[3], reached=True), "x3"
        )  # other campaign
        await send(
            SUPPRESSION_CHANGES,
            "SuppressionChanged",
            suppression("added", phones[4], None, True, "s-4"),
            f"phone:{phones[4]}",
        )
        await counts_become(c, one["id"], account, total=5, planning=2, attempted=1, closed=1, flagged=1)
        got = await contacts_by_external_id(c, one["id"], account)
        assert got["C2"]["attempts"] == 1
        assert got["C1"]["status"] == "attempted"

        action = {
            "action_id": "a-2", "action": "READY_LEADS", "criteria": {"campaignId": "camp-2"}, "params": {},
            "affected": 2, "campaign_id": "camp-2",
        }  # fmt: skip
        await send(LEADS_ACTIONS, "LeadActionApplied", action, "camp-2")
        await counts_become(c, two["id"], account, total=2, planning=2)
        await send(CALL_RESULTS, "CallResult", call("z", "camp-2", "12672345690", reached=True), "z")
        await send(CALL_RESULTS, "CallResult", call("y", "camp-2", "12672345691", reached=True), "y")
        # Zed has a phone and an email: reached by phone only, he stays open until the email is reached too.
        await counts_become(c, two["id"], account, total=2, open=1, closed=1)
        await send(
            CALL_RESULTS, "CallResult",
            call("z", "camp-2", "zed@example.com", reached=True, channel="email", id_type="email"), "z",
        )  # fmt: skip
        body = await counts_become(c, two["id"], account, total=2, closed=2)
        assert body["campaign_status"] == "completed"
        first = (await c.get(f"/v1/contact-lists/{one['id']}", headers=auth(account))).json()
        assert first["campaign_status"] == "active"
        await assert_counts_match_contacts(c, one["id"], account)
        await assert_counts_match_contacts(c, two["id"], account)


async def test_poison_event_goes_to_the_dlq_and_the_partition_moves_on(
    infra: Any, shared_service: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    account = f"dlq-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=shared_service.base_url, timeout=30) as c:
        cl = await create_list(c, account, campaign={"campaign_id": "camp-d", "list_id": "l-d"})
        await import_file(c, cl["id"], "phone\n12672345601\n", account)
        key = f"{account}:lead-1"
        await publish(
            producer, CALL_RESULTS, account, "CallResult", {"lead_id": "lead-1"}, key
        )  # no campaign
        await publish(
            producer,
            CALL_RESULTS,
            account,
            "CallResult",
            call("C", "camp-d", "12672345601", reached=True),
            key,
        )
        await counts_become(c, cl["id"], account, total=1, closed=1)
    parked = await consume(infra, "dlq.contact-list.v1", account, 1)
    assert len(parked) == 1
    assert parked[0][1]["payload"]["topic"] == CALL_RESULTS
    assert "processing_failed" in parked[0][1]["payload"]["error"]
