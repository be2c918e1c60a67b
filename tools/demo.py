"""make demo: drives flows (1) and (3) across the four services of a running `make run` and times every hop.

(1) an upstream LeadStopped on leads.stopped.v1 → suppression entry and check → SuppressionChanged seen by a
    dialer → leads suppressed in every campaign (status kept) → contact flagged → delivered to Outbound.
(3) a contact import linked to a campaign → ContactImported → leads in the campaign's list; the number
    stopped in (1) arrives suppressed.
Each run uses a fresh account (printed, with a token for it), so runs never see each other's data.
"""

from __future__ import annotations

import os
import sys

# A script's own directory must not shadow the stdlib (a tools/token.py once broke `import asyncio`).
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    del sys.path[0]

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dialguard.events import Envelope
from dialguard.events.topics import CONTACTS_IMPORTED, LEADS_STOPPED, SUPPRESSION_CHANGES
from dialguard.platform.auth import mint_token

REPO = Path(__file__).resolve().parents[1]
STATE_FILE = REPO / ".local" / "run.json"
SECRET_FILE = REPO / ".local" / "dev-jwt-secret"
STOPPED = "12672345678"  # sent by the "upstream" as +1 (267) 234-5678
OTHER = "12672345679"
FRESH = "12672345680"
Probe = Callable[[], Awaitable[Any]]


class Demo:
    """One account's walk through the system, printing each hop with the time since the flow began."""

    def __init__(self, state: dict[str, Any], secret: str, account: str, timeout: float) -> None:
        self.urls: dict[str, str] = state["services"]
        self.kafka: str = state["kafka_bootstrap"]
        self.fake_url: str | None = state.get("fake_outbound_url")
        self.account = account
        self.timeout = timeout
        self.token = mint_token(
            secret=secret, account_id=account, roles=["OUTBOUND_MANAGER", "DIALER", "VIEWER"], sub="demo"
        )
        self.http = httpx.AsyncClient(timeout=30.0, headers={"Authorization": f"Bearer {self.token}"})
        self.seen: list[dict[str, Any]] = []
        self.missed: list[str] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None

    # --- plumbing -----------------------------------------------------------------------------

    def url(self, service: str, path: str) -> str:
        return self.urls[service] + path

    async def call(self, method: str, service: str, path: str, expect: int, **kw: Any) -> Any:
        r = await self.http.request(method, self.url(service, path), **kw)
        if r.status_code != expect:
            raise SystemExit(f"{service} {method} {path} answered {r.status_code}: {r.text}")
        return r.json() if r.content else None

    async def start_dialer(self) -> None:
        """A plain aiokafka consumer, as a dialer runs it: from the end of the topics, no group."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        await consumer.start()
        await consumer.topics()
        parts = [
            TopicPartition(t, p)
            for t in (SUPPRESSION_CHANGES, LEADS_STOPPED, CONTACTS_IMPORTED)
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._read())
        self._producer = AIOKafkaProducer(bootstrap_servers=self.kafka)
        await self._producer.start()

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            for tp, records in (await self._consumer.getmany(timeout_ms=200)).items():
                for r in records:
                    with contextlib.suppress(ValueError):
                        env = orjson.loads(r.value)
                        if env.get("account_id") == self.account:
                            self.seen.append({"topic": tp.topic, **env})

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        await self.http.aclose()

    def events(self, topic: str, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["topic"] == topic and e["event_type"] == event_type]

    async def hops(self, began: float, probes: list[tuple[str, Probe]]) -> None:
        """Poll every hop at once; print each as it becomes true, with ms since `began`."""

        async def one(label: str, probe: Probe) -> None:
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                detail = await probe()
                if detail:
                    ms = (time.monotonic() - began) * 1000
                    print(
                        f"  +{ms:8.0f} ms  {label}: {detail if isinstance(detail, str) else 'yes'}",
                        flush=True,
                    )
                    return
                await asyncio.sleep(0.05)
            self.missed.append(label)
            print(f"  NOT SEEN in {self.timeout:.0f} s  {label}", flush=True)

        await asyncio.gather(*(one(label, probe) for label, probe in probes))

    # --- API shortcuts ------------------------------------------------------------------------

    @property
    def la(self) -> str:
        return f"/v1/admin/accounts/{self.account}"

    async def campaign(self, name: str) -> tuple[str, str]:
        dg = await self.call(
            "POST", "lead-action", f"{self.la}/dialGroups", 201, json={"name": f"{name} group"}
        )
        camp = await self.call(
            "POST", "lead-action", f"{self.la}/dialGroups/{dg['id']}/campaigns", 201, json={"name": name}
        )
        lst = await self.call(
            "POST",
            "lead-action",
            f"{self.la}/campaigns/{camp['id']}/lists",
            201,
            json={"name": f"{name} list"},
        )
        return str(camp["id"]), str(lst["id"])

    async def leads(self, phone: str) -> list[dict[str, Any]]:
        body = {"campaignLeadSearchCriteria": {"leadPhoneNumbers": [phone]}}
        page = await self.call("POST", "lead-action", f"{self.la}/campaignLeads/search", 200, json=body)
        return list(page["items"])

    async def import_contacts(self, list_id: str, csv_text: str, began: float) -> str:
        r = await self.call(
            "POST",
            "contact-list",
            f"/v1/contact-lists/{list_id}/imports",
            202,
            files={"file": ("contacts.csv", csv_text.encode(), "text/csv")},
            data={"consent_confirmed": "true"},
        )
        import_id = str(r["import_id"])
        await self.hops(
            began, [("contact-list: file validated", lambda: self.import_in(import_id, "validated"))]
        )
        await self.call("POST", "contact-list", f"/v1/imports/{import_id}/commit", 202)
        await self.hops(
            began, [("contact-list: import committed", lambda: self.import_in(import_id, "completed"))]
        )
        return import_id

    async def import_in(self, import_id: str, status: str) -> str | None:
        imp = await self.call("GET", "contact-list", f"/v1/imports/{import_id}", 200)
        if imp["status"] in {"failed", "cancelled"}:
            raise SystemExit(f"import {import_id} {imp['status']}: {imp}")
        if imp["status"] != status:
            return None
        return f"valid {imp.get('valid')}, invalid {imp.get('invalid')}, imported {imp['counts']['imported']}"

    async def contact_status(self, list_id: str, external_id: str, status: str) -> str | None:
        page = await self.call("GET", "contact-list", f"/v1/contact-lists/{list_id}/contacts?limit=1000", 200)
        for c in page["items"]:
            if c["external_id"] == external_id and c["status"] == status:
                units = ", ".join(f"{u['value']} callable={u['callable']}" for u in c["units"])
                return f"contact {external_id} is {status} ({units})"
        return None

    # --- flows --------------------------------------------------------------------------------

    async def flow_stop(self) -> None:
        print("\n(1) upstream LeadStopped → suppression → dialer, lead-action, contact-list, Outbound")
        stoplist = await self.call("POST", "suppression", "/v1/stoplists", 201, json={"name": "default"})
        project = f"sales-{self.account}"
        target = await self.call(
            "POST",
            "outbound-sync",
            f"/v1/stoplists/{stoplist['id']}/targets",
            201,
            json={"type": "TM", "system": "03", "project": project},
        )
        camp_a, list_a = await self.campaign("Spring")
        camp_b, list_b = await self.campaign("Winter")
        leads_a = {
            "leads": [{"phone": STOPPED, "external_id": "a-1"}, {"phone": OTHER, "external_id": "a-2"}]
        }
        await self.call("POST", "lead-action", f"{self.la}/lists/{list_a}/leads", 201, json=leads_a)
        leads_b = {"leads": [{"phone": STOPPED, "external_id": "b-1"}]}
        await self.call("POST", "lead-action", f"{self.la}/lists/{list_b}/leads", 201, json=leads_b)
        await self.call(
            "PUT",
            "lead-action",
            f"{self.la}/campaignLeads/actions?leadAction=PAUSE_LEADS",
            200,
            json={"campaignLeadSearchCriteria": {"campaignId": camp_b}},
        )
        cl = await self.call(
            "POST",
            "contact-list",
            "/v1/contact-lists",
            201,
            json={"name": "Spring contacts", "kind": "telephony", "unique_id_column": "id",
                  "name_column": "name", "close_when_all_reached": False},
        )  # fmt: skip
        print(
            f"  set up: stoplist 'default' {stoplist['id']} with TM target {target['id']} (system 03, project "
            f"{project}); campaigns Spring {camp_a} (leads {STOPPED}, {OTHER}) and Winter {camp_b} "
            f"(lead {STOPPED}, PAUSED); contact list {cl['id']} (contacts {STOPPED}, {OTHER})"
        )
        began = time.monotonic()
        await self.import_contacts(
            cl["id"], f"phone,id,name\n{STOPPED},c-1,Ann Lee\n{OTHER},c-2,Bob Ray\n", began
        )

        env = Envelope(
            event_type="LeadStopped",
            account_id=self.account,
            producer="demo-upstream",
            correlation_id=f"demo-{uuid.uuid4().hex[:8]}",
            payload={
                "identifier": {"type": "phone", "value": "+1 (267) 234-5678"},
                "channel": None,
                "stoplist_id": None,
                "source": "end_user_message",
                "reason": "STOP",
            },
        )
        assert self._producer is not None
        began = time.monotonic()
        await self._producer.send_and_wait(
            LEADS_STOPPED,
            env.to_bytes(),
            key=f"{self.account}:phone:{STOPPED}".encode(),
            headers=[("event_type", b"LeadStopped"), ("correlation_id", (env.correlation_id or "").encode())],
        )
        print(f"  +{0:8.0f} ms  published LeadStopped for '+1 (267) 234-5678' on {LEADS_STOPPED}")

        async def entry() -> str | None:
            page = await self.call(
                "GET",
                "suppression",
                f"/v1/stoplists/{stoplist['id']}/entries?type=phone&value={STOPPED}",
                200,
            )
            items = page["items"]
            return (
                f"entry {items[0]['id']} in stoplist 'default' (source {items[0]['source']})"
                if items
                else None
            )

        async def check() -> str | None:
            r = await self.call("GET", "suppression", f"/v1/check?type=phone&value={STOPPED}", 200)
            return f"GET /v1/check → suppressed={r['suppressed']}" if r["suppressed"] else None

        async def dialer() -> str | None:
            for e in self.events(SUPPRESSION_CHANGES, "SuppressionChanged"):
                p = e["payload"]
                return f"dialer consumer got SuppressionChanged op={p['op']} suppressed={p['suppressed']}"
            return None

        async def leads() -> str | None:
            ls = await self.leads(STOPPED)
            if len(ls) == 2 and all("dnc" in x["suppression_causes"] for x in ls):
                return "; ".join(
                    f"lead {x['id']} (campaign {x['campaign_id']}) suppressed, status {x['status']}"
                    for x in ls
                )
            return None

        async def delivered() -> str | None:
            page = await self.call("GET", "outbound-sync", f"/v1/targets/{target['id']}/deliveries", 200)
            done = [d for d in page["items"] if d["status"] == "delivered"]
            return (
                f"delivery {done[0]['id']} delivered after {done[0]['attempts']} attempt(s)" if done else None
            )

        probes: list[tuple[str, Probe]] = [
            ("suppression", entry),
            ("suppression", check),
            ("dialer", dialer),
            ("lead-action", leads),
            ("contact-list", lambda: self.contact_status(cl["id"], "c-1", "flagged")),
            ("outbound-sync", delivered),
        ]
        if self.fake_url is not None:
            fake = self.fake_url

            async def outbound() -> str | None:
                r = await self.http.get(
                    f"{fake}/_requests", params={"path_prefix": f"/outbound03/projects/{project}/"}
                )
                items = r.json()["items"]
                return (
                    f"fake Outbound got {items[0]['method']} {items[0]['path']} {items[0]['body']}"
                    if items
                    else None
                )

            probes.append(("Outbound (fake)", outbound))
        await self.hops(began, probes)

    async def flow_import(self) -> None:
        print(
            "\n(3) contact import linked to a campaign → ContactImported → leads (a stopped number arrives suppressed)"
        )
        camp, lst = await self.campaign("Imports")
        link = {"campaign_id": camp, "list_id": lst}
        cl = await self.call(
            "POST",
            "contact-list",
            "/v1/contact-lists",
            201,
            json={"name": "Imported", "kind": "telephony", "unique_id_column": "id", "name_column": "name",
                  "close_when_all_reached": False, "campaign": link},
        )  # fmt: skip
        print(f"  set up: campaign Imports {camp} list {lst}; contact list {cl['id']} linked to it")
        began = time.monotonic()
        await self.import_contacts(
            cl["id"], f"phone,id,name\n{FRESH},i-1,Cy Fresh\n{STOPPED},i-2,Di Stopped\n", began
        )

        async def imported() -> str | None:
            got = self.events(CONTACTS_IMPORTED, "ContactImported")
            got = [e for e in got if e["payload"]["contact_list_id"] == cl["id"]]
            return (
                f"{len(got)} ContactImported on {CONTACTS_IMPORTED}, campaign {link}"
                if len(got) == 2
                else None
            )

        async def leads() -> str | None:
            page = await self.call("GET", "lead-action", f"{self.la}/lists/{lst}/leads", 200)
            if len(page["items"]) != 2:
                return None
            return "; ".join(
                f"lead {x['id']} {x['phone']} suppressed={x['suppressed']} {x['suppression_causes']}"
                for x in page["items"]
            )

        async def stopped_lead() -> str | None:
            page = await self.call("GET", "lead-action", f"{self.la}/lists/{lst}/leads", 200)
            hit = [x for x in page["items"] if x["phone"] == STOPPED and x["suppressed"]]
            return f"lead {hit[0]['id']} ({STOPPED}) arrived suppressed" if hit else None

        await self.hops(
            began,
            [
                ("contact-list", imported),
                ("lead-action", leads),
                ("lead-action", stopped_lead),
                ("contact-list", lambda: self.contact_status(cl["id"], "i-2", "flagged")),
            ],
        )


def load_state() -> dict[str, Any]:
    if not STATE_FILE.exists():
        raise SystemExit(
            f"{STATE_FILE} not found: start the system first with `make run` (in another terminal)"
        )
    state: dict[str, Any] = json.loads(STATE_FILE.read_text())
    return state


def load_secret() -> str:
    secret = os.environ.get("AUTH_JWT_SECRET")
    if secret:
        return secret
    if not SECRET_FILE.exists():
        raise SystemExit(f"no AUTH_JWT_SECRET and no {SECRET_FILE}: start the system with `make run` first")
    return SECRET_FILE.read_text().strip()


async def run(args: argparse.Namespace) -> int:
    demo = Demo(load_state(), load_secret(), args.account or f"demo-{uuid.uuid4().hex[:6]}", args.timeout)
    print(f"account {demo.account}; token for it (24 h):\n  {demo.token}")
    try:
        await demo.start_dialer()
        await demo.flow_stop()
        await demo.flow_import()
    finally:
        await demo.close()
    if demo.missed:
        print(f"\n{len(demo.missed)} hop(s) not seen: {', '.join(demo.missed)}")
        return 1
    print("\nevery hop seen.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--account", help="account to use (default: a fresh demo-xxxxxx)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each hop")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
