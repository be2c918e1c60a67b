"""Consumers on the real broker: SuppressionChanged, ContactImported, CallResult; redelivery applies once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from dialguard.events import Envelope
from dialguard.events.topics import (
    CALL_RESULTS,
    CONTACTS_IMPORTED,
    LEADS_STOPPED,
    SUPPRESSION_CHANGES,
    dlq_topic,
)
from dialguard.testing.helpers import wait_for

P0, P1, P2 = "12672345678", "12672345679", "12672345680"


def _change(
    phone: str, op: str, suppressed: bool, entry_id: str, channel: str | None = None
) -> dict[str, Any]:
    return {
        "op": op,
        "entry": {
            "entry_id": entry_id,
            "stoplist_id": str(uuid.uuid4()),
            "identifier": {"type": "phone", "value": phone},
            "channel": channel,
            "sender": None,
            "source": "api",
            "reason": None,
            "added_at": "2026-11-23T10:00:00.000Z",
            "expires_at": None,
        },
        "suppressed": suppressed,
    }


async def test_suppression_changes_reach_leads_in_every_order(harness: Any) -> None:
    h = harness
    _, camp_a, list_a = await h.campaign("a")
    _, camp_b, list_b = await h.campaign("b")
    first, other = await h.add_leads(list_a, [P0, P1])

    async def change(
        phone: str, op: str, suppressed: bool, entry_id: str, channel: str | None = None
    ) -> None:
        await h.publish(
            SUPPRESSION_CHANGES,
            "SuppressionChanged",
            _change(phone, op, suppressed, entry_id, channel),
            key=f"{h.account}:phone:{phone}",
        )

    async def causes(lead_id: str) -> list[str]:
        return list((await h.lead(lead_id))["suppression_causes"])

    # Lead before entry: the existing lead gets cause dnc, its status untouched.
    await h.act("PAUSE_LEADS", {"leadIds": [first]})
    await change(P0, "added", True, "e-1")
    await wait_for(lambda: _has(h, first, "dnc"))
    lead = await h.lead(first)
    assert (lead["status"], lead["suppressed"]) == ("PAUSED", True)

    # Entry before lead: a lead arriving later (any campaign of the account) is suppressed on arrival.
    (arrived,) = await h.add_leads(list_b, [P0])
    assert await causes(arrived) == ["dnc"]
    assert (await h.lead(other))["suppressed"] is False

    # A second entry keeps the phone suppressed when the first goes (suppressed: true).
    await h.act("SUPPRESS_LEADS", {"leadIds": [arrived]})
    await change(P0, "added", True, "e-2", "voice")
    await change(P0, "removed", True, "e-1")
    await change(P0, "removed", False, "e-2", "voice")
    # Only the manual cause holds the second lead now; the first is free again.
    await wait_for(lambda: _lacks(h, first, "dnc"))
    assert await causes(arrived) == ["manual"]
    assert (await h.lead(arrived))["suppressed"] is True
    await h.act("UNSUPPRESS_LEADS", {"leadIds": [arrived]})
    assert (await h.lead(arrived))["suppressed"] is False

    # An sms-only entry does not stop phone dialing.
    await change(P1, "added", True, "e-3", "sms")
    await change(P1, "added", True, "e-4", "voice")
    await wait_for(lambda: _has(h, other, "dnc"))
    await change(P1, "removed", False, "e-4", "voice")
    await wait_for(lambda: _lacks(h, other, "dnc"))
    (later,) = await h.add_leads(list_a, [P1])
    assert (await h.lead(later))["suppressed"] is False
    assert camp_a != camp_b


async def _has(h: Any, lead_id: str, cause: str) -> bool:
    return cause in (await h.lead(lead_id))["suppression_causes"]


async def _lacks(h: Any, lead_id: str, cause: str) -> bool:
    return not await _has(h, lead_id, cause)


def _contact(
    contact_id: str, phones: list[tuple[str, int]], campaign: dict[str, str] | None
) -> dict[str, Any]:
    return {
        "contact_list_id": "cl-1",
        "import_id": "imp-1",
        "contact": {
            "contact_id": contact_id,
            "external_id": f"x-{contact_id}",
            "name": "Ada Lovelace",
            "units": [{"type": "phone", "value": v, "channel": "voice", "priority": p} for v, p in phones]
            + [{"type": "email", "value": "ada@example.com", "channel": "email", "priority": 0}],
            "fields": {"segment": "vip"},
            "timezone": "Europe/London",
        },
        "campaign": campaign,
    }


async def test_contact_imported_creates_leads_once(harness: Any) -> None:
    h = harness
    _, camp, lst = await h.campaign()
    _, _, witness_list = await h.campaign("witness")
    link = {"campaign_id": camp, "list_id": lst}
    (witness,) = await h.add_leads(witness_list, [P2])
    await h.publish(
        SUPPRESSION_CHANGES,
        "SuppressionChanged",
        _change(P2, "added", True, "e-9"),
        key=f"{h.account}:phone:{P2}",
    )
    await wait_for(lambda: _has(h, witness, "dnc"))  # the projection holds P2 before the contact arrives
    env = await h.publish(
        CONTACTS_IMPORTED, "ContactImported", _contact("c1", [(P1, 2), (P0, 1)], link), key=f"{h.account}:c1"
    )
    await h.send(CONTACTS_IMPORTED, env, f"{h.account}:c1")  # redelivery: same event_id
    await h.publish(
        CONTACTS_IMPORTED, "ContactImported", _contact("c1", [(P0, 1)], link), key=f"{h.account}:c1"
    )
    await h.publish(
        CONTACTS_IMPORTED, "ContactImported", _contact("c0", [(P0, 1)], None), key=f"{h.account}:c0"
    )
    await h.publish(
        CONTACTS_IMPORTED, "ContactImported", _contact("c2", [(P2, 1)], link), key=f"{h.account}:c2"
    )

    async def two_leads() -> list[dict[str, Any]] | None:
        leads = await h.leads(lst)
        return leads if len(leads) >= 2 else None

    leads = sorted(await wait_for(two_leads), key=lambda x: x["contact_id"])
    assert [(x["contact_id"], x["phone"]) for x in leads] == [("c1", P0), ("c2", P2)]
    ada = leads[0]
    assert (ada["first_name"], ada["last_name"], ada["external_id"], ada["timezone"], ada["fields"]) == (
        "Ada",
        "Lovelace",
        "x-c1",
        "Europe/London",
        {"segment": "vip"},
    )
    assert leads[1]["suppression_causes"] == ["dnc"]  # suppressed on arrival from the projection

    missing = await h.publish(
        CONTACTS_IMPORTED,
        "ContactImported",
        _contact("c3", [(P0, 1)], {"campaign_id": "999999", "list_id": "1"}),
        key=f"{h.account}:c3",
    )
    dead = await h.events(dlq_topic("lead-action"), 1, event_type="DeadLetter")
    assert str(missing.event_id) in dead[0]["payload"]["value"]
    assert len(await h.leads(lst)) == 2


def _result(lead_id: str, camp: str, phone: str, **extra: Any) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "campaign_id": camp,
        "identifier": {"type": "phone", "value": phone},
        "channel": "voice",
        "attempted_at": datetime.now(UTC).isoformat(),
        "system_disposition": "NO_ANSWER",
        "agent_disposition": None,
        "reached": False,
        "do_not_call": False,
        **extra,
    }


async def test_call_results_count_passes_once_and_stop_on_do_not_call(harness: Any) -> None:
    h = harness
    _, camp, lst = await h.campaign()
    a, b = await h.add_leads(lst, [P0, P1])
    key_a = f"{h.account}:{a}"
    env = Envelope(
        event_type="CallResult", account_id=h.account, producer="dialer", payload=_result(a, camp, P0)
    )
    await h.send(CALL_RESULTS, env, key_a)
    await h.send(CALL_RESULTS, env, key_a)  # redelivered: counted once
    await h.publish(CALL_RESULTS, "CallResult", _result(a, camp, P0, system_disposition="BUSY"), key=key_a)

    async def busy() -> dict[str, Any] | None:
        lead = await h.lead(a)
        return lead if lead["system_disposition"] == "BUSY" else None

    lead = await wait_for(busy)
    assert (lead["pass_count"], lead["status"]) == (2, "READY")
    assert lead["next_dial_at"] > datetime.now(UTC).isoformat()[:19]

    await h.publish(
        CALL_RESULTS,
        "CallResult",
        _result(
            b,
            camp,
            P1,
            system_disposition="ANSWERED",
            agent_disposition="DO_NOT_CALL",
            reached=True,
            do_not_call=True,
        ),
        key=f"{h.account}:{b}",
    )

    async def complete() -> dict[str, Any] | None:
        lead = await h.lead(b)
        return lead if lead["status"] == "COMPLETE" else None

    lead = await wait_for(complete)
    assert (lead["pass_count"], lead["agent_disposition"], lead["suppression_causes"]) == (
        1,
        "DO_NOT_CALL",
        ["dnc"],
    )
    (stop,) = await h.events(LEADS_STOPPED, 1, event_type="LeadStopped", settle=0.5)
    assert (stop["payload"]["identifier"], stop["payload"]["source"]) == (
        {"type": "phone", "value": P1},
        "agent_disposition",
    )


async def test_leads_and_entries_arriving_together_never_miss_each_other(harness: Any) -> None:
    h = harness
    _, _, lst = await h.campaign()
    phones = [f"1267555{n:04d}" for n in range(1000, 1020)]

    async def entry(i: int, phone: str) -> None:
        await h.publish(
            SUPPRESSION_CHANGES,
            "SuppressionChanged",
            _change(phone, "added", True, f"race-{i}"),
            key=f"{h.account}:phone:{phone}",
        )

    # Each phone's entry and lead race: uploads and events interleave with no ordering between them.
    await asyncio.gather(
        *(entry(i, p) for i, p in enumerate(phones)), *(h.add_leads(lst, [p]) for p in phones)
    )

    async def all_suppressed() -> bool:
        leads = await h.leads(lst)
        return len(leads) == len(phones) and all(x["suppression_causes"] == ["dnc"] for x in leads)

    await wait_for(all_suppressed)
