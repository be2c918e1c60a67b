"""One fault cycle: set up an account, load it, inject the fault, heal, wait for recovery, count.

The account of a cycle has one stoplist, `default` (where upstream LeadStopped, agents' do-not-call and
the operator's HTTP adds all land), two outbound targets on it (a TM target on fake server A, a MANUAL one
on fake server B), and three campaigns in lead-action: A and B hold one lead each for every "lead phone"
(phones the load opts out), C holds leads that only receive call results (their pass_count must equal the
call results the broker acked for them: none lost, none applied twice).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from dialguard.events import Envelope
from dialguard.events.topics import CALL_RESULTS, LEADS_STOPPED, SUPPRESSION_CHANGES, TOPICS
from dialguard.messaging.partitioning import partitions_for_keys
from dialguard.testing.helpers import auth

from .rig import PHONES, PLAN, SERVICES, Rig, Row, consumer_lag

MANAGER = ["OUTBOUND_MANAGER"]
VIEWER = ["VIEWER"]
DIALER = ["DIALER"]
Where = tuple[str, int, int]  # (topic, partition, offset) of an acked event


async def run_cycle(rig: Rig, fault: str, inject: Callable[[], Awaitable[None]]) -> Row:
    """Load, fault, heal, recover; measure everything the promise is about."""
    cycle = Cycle(rig, fault)
    row = await cycle.run(inject)
    rig.rows.append(row)
    return row


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Cycle:
    """The state of one fault cycle: what was accepted when, and what the checker saw."""

    def __init__(self, rig: Rig, fault: str) -> None:
        self.rig = rig
        self.row = Row(fault=fault)
        self.account = f"chaos-{re.sub(r'[^a-z]+', '-', fault.lower())}-{uuid.uuid4().hex[:6]}"
        self.stoplist_id = ""
        self.project = f"p-{self.account}"
        self.prefix_a = f"/outbound01/projects/{self.project}/"
        self.prefix_b = f"/manual/{self.account}/"
        self.event_acked: dict[str, float] = {}  # phone -> when the broker acked its LeadStopped/DNC result
        self.event_offsets: dict[str, Where] = {}  # phone -> where that event is
        self.via_agent: set[str] = set()  # phones opted out by a do-not-call CallResult (via lead-action)
        self.http_acked: dict[str, float] = {}  # phone -> when the HTTP add answered 2xx
        self.unstopped: dict[str, float] = {}  # phones stopped then unstopped (both acked) -> stop acked
        self.in_force: set[str] = set()  # phones a check must call suppressed from now on
        self.false_negative_phones: set[str] = set()
        self.lead_phones: dict[str, list[int]] = {}  # phone -> its leads (campaign A, campaign B)
        self.free_lead_phones: list[str] = []  # lead phones the load has not opted out yet
        self.campaigns: dict[str, int] = {}
        self.call_leads: dict[int, str] = {}  # campaign C: lead id -> phone
        self.calls_acked: Counter[int] = Counter()  # lead id -> call results the broker acked
        self.calls_unsure: set[int] = set()  # a send that failed may still have landed: not counted
        self.calls_at: dict[int, list[tuple[float, Where]]] = defaultdict(list)  # lead id -> acked results
        self._ends_now: dict[tuple[str, int], int] = {}  # log ends after a broker restart (Tansu memory)
        # what the last snapshot read: entry values, deliveries per target and phone, leads counted twice
        self._last: tuple[Counter[str], dict[str, dict[str, list[str]]], set[str]] = (Counter(), {}, set())
        self.stop_load = asyncio.Event()
        self.fault_started = 0.0
        self.fault_healed = 0.0
        self.broker_stopped_at: float | None = None
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.timings: dict[str, float] = {}
        self.target_ids: dict[str, str] = {}  # "A" / "B" -> outbound-sync target id
        self._rows: dict[str, dict[str, list[str]]] = {}  # outbound-sync's delivery rows, last snapshot

    def h(self, roles: list[str] | None = None) -> dict[str, str]:
        return auth(self.account, roles or MANAGER)

    @property
    def la(self) -> str:
        return f"/v1/admin/accounts/{self.account}"

    async def run(self, inject: Callable[[], Awaitable[None]]) -> Row:
        self.clients = {
            name: httpx.AsyncClient(base_url=self.rig.url(name), timeout=5.0) for name in SERVICES
        }
        t0 = time.monotonic()
        try:
            await self._setup()
            self.timings["setup"] = time.monotonic() - t0
            tasks = [
                asyncio.create_task(self._publish_load()),
                asyncio.create_task(self._http_load()),
                asyncio.create_task(self._call_load()),
                asyncio.create_task(self._action_load()),
                asyncio.create_task(self._checker()),
            ]
            try:
                await asyncio.sleep(PLAN.warmup)
                self.row.in_flight = self._pending()
                self.fault_started = time.monotonic()
                wall_start = time.time()
                self.rig.broker_gone_at = None
                await inject()
                self.fault_healed = time.monotonic()
                wall_healed = time.time()
                self.broker_stopped_at = self.rig.broker_gone_at
                await asyncio.sleep(PLAN.cooldown)
                self.stop_load.set()
                await asyncio.gather(*tasks[:4])
                t1 = time.monotonic()
                self.timings["fault"] = t1 - self.fault_started
                await self._recover()
                self.timings["recover"] = time.monotonic() - t1
            finally:
                self.stop_load.set()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await self._during_fault(wall_start, wall_healed)
            t2 = time.monotonic()
            await self._caught_up()
            self.timings["caught up"] = time.monotonic() - t2
        finally:
            for c in self.clients.values():
                await c.aclose()
        self.row.accepted = len(self.event_acked) + len(self.http_acked)
        print(f"chaos {self.row.fault}: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))
        self.row.false_negatives = len(self.false_negative_phones)
        return self.row

    # -- setup ---------------------------------------------------------------------------------------

    async def _setup(self) -> None:
        """The account's default stoplist, two targets on it, three campaigns with leads."""
        sup, osync, la = (
            self.clients["suppression"],
            self.clients["outbound-sync"],
            self.clients["lead-action"],
        )
        r = await sup.post("/v1/stoplists", json={"name": "default"}, headers=self.h())
        assert r.status_code == 201, r.text
        self.stoplist_id = r.json()["id"]
        targets = [
            {"type": "TM", "system": "01", "project": self.project},
            {
                "type": "MANUAL",
                "url": f"{self.rig.target_b.base_url}{self.prefix_b}dnc",
                "method": "POST",
                "headers": {"Content-Type": "application/json"},
                "body_template": '{"phone": "{{identifier.value}}"}',
            },
        ]
        for name, body in zip(("A", "B"), targets, strict=True):
            r = await osync.post(f"/v1/stoplists/{self.stoplist_id}/targets", json=body, headers=self.h())
            assert r.status_code == 201, r.text
            self.target_ids[name] = str(r.json()["id"])
        lists: dict[str, int] = {}
        for name in ("A", "B", "C"):
            r = await la.post(f"{self.la}/dialGroups", json={"name": f"dg-{name}"}, headers=self.h())
            assert r.status_code == 201, r.text
            r = await la.post(
                f"{self.la}/dialGroups/{r.json()['id']}/campaigns", json={"name": name}, headers=self.h()
            )
            assert r.status_code == 201, r.text
            self.campaigns[name] = int(r.json()["id"])
            r = await la.post(
                f"{self.la}/campaigns/{self.campaigns[name]}/lists", json={"name": name}, headers=self.h()
            )
            assert r.status_code == 201, r.text
            lists[name] = int(r.json()["id"])
        phones = [next(PHONES) for _ in range(PLAN.lead_phones)]
        for name in ("A", "B"):
            ids = await self._add_leads(lists[name], phones, name)
            for phone, lead_id in zip(phones, ids, strict=True):
                self.lead_phones.setdefault(phone, []).append(lead_id)
        self.free_lead_phones = list(phones)
        call_phones = [next(PHONES) for _ in range(PLAN.call_leads)]
        ids = await self._add_leads(lists["C"], call_phones, "C")
        self.call_leads = dict(zip(ids, call_phones, strict=True))

    async def _add_leads(self, list_id: int, phones: list[str], tag: str) -> list[int]:
        leads = [{"phone": p, "external_id": f"{tag}-{p}"} for p in phones]
        r = await self.clients["lead-action"].post(
            f"{self.la}/lists/{list_id}/leads", json={"leads": leads}, headers=self.h()
        )
        assert r.status_code == 201, r.text
        assert r.json()["rejected"] == 0, r.text
        return [int(x) for x in r.json()["lead_ids"]]

    def _pending(self) -> int:
        """Accepted opt-outs whose effect nobody has seen yet (events and adds in flight)."""
        assert self.rig.watch is not None
        seen = self.rig.watch.added
        accepted = set(self.event_acked) | set(self.http_acked)
        return sum(1 for p in accepted if (self.account, p) not in seen)

    def _next_phone(self, i: int, every: int) -> str:
        """Every `every`-th opt-out is a phone that has leads (while any is left)."""
        if i % every == 0 and self.free_lead_phones:
            return self.free_lead_phones.pop()
        return str(next(PHONES))

    # -- the load ------------------------------------------------------------------------------------

    async def _publish(self, topic: str, event_type: str, payload: dict[str, Any], key: str) -> Where | None:
        """One upstream event; where it is only when the broker acked it."""
        assert self.rig.producer is not None
        env = Envelope(event_type=event_type, account_id=self.account, producer="chaos", payload=payload)
        await self.rig.publishing.wait()
        try:
            meta = await asyncio.wait_for(
                self.rig.producer.send_and_wait(
                    topic, env.to_bytes(), key=key.encode(), headers=[("event_type", event_type.encode())]
                ),
                timeout=3.0,
            )
        except (KafkaError, TimeoutError, OSError):
            return None
        ends = self.rig.log_end
        tp = (topic, meta.partition)
        ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
        return topic, meta.partition, meta.offset

    async def _stop_event(self, event_type: str, phone: str) -> Where | None:
        payload: dict[str, Any] = {"identifier": {"type": "phone", "value": "+" + phone}}
        if event_type == "LeadStopped":
            payload |= {"source": "end_user_message", "reason": "STOP"}
        return await self._publish(LEADS_STOPPED, event_type, payload, f"{self.account}:phone:{phone}")

    async def _publish_load(self) -> None:
        """Bounded LeadStopped load; every tenth phone is then unstopped (same key, so in order)."""
        interval = 1.0 / PLAN.event_rate
        for i in itertools.count():
            if self.stop_load.is_set():
                return
            if i % 10 == 9:
                phone = str(next(PHONES))  # never a lead phone: its leads must stay suppressed
                if await self._stop_event("LeadStopped", phone) is not None:
                    stopped_at = time.monotonic()
                    unstop_where = await self._stop_event("LeadUnstopped", phone)
                    if unstop_where is not None:
                        self.unstopped[phone] = stopped_at
                        self.event_offsets[phone] = unstop_where
                # a stop without its acked unstop is neither here nor there: not counted
            else:
                phone = self._next_phone(i, 4)
                where = await self._stop_event("LeadStopped", phone)
                if where is not None:
                    self.event_acked[phone] = time.monotonic()
                    self.event_offsets[phone] = where
            await asyncio.sleep(interval)

    async def _http_load(self) -> None:
        """An operator adding entries by hand, one after another; only a 2xx counts as accepted."""
        client = self.clients["suppression"]
        for i in itertools.count():
            if self.stop_load.is_set():
                return
            phone = self._next_phone(i, 3)
            body = {"identifier": {"type": "phone", "value": "+" + phone}, "reason": "chaos"}
            try:
                r = await client.post(
                    f"/v1/stoplists/{self.stoplist_id}/entries", json=body, headers=self.h()
                )
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
                continue
            if 200 <= r.status_code < 300:
                self.http_acked[phone] = time.monotonic()
                self.in_force.add(phone)
            else:
                self._server_error("POST /v1/stoplists/{id}/entries", r)
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.05)

    async def _call_load(self) -> None:
        """CallResults: every other one an agent's do-not-call on a lead phone (an opt-out through
        lead-action), the others unanswered calls on campaign C's leads (round robin)."""
        interval = 1.0 / PLAN.call_rate
        leads = itertools.cycle(sorted(self.call_leads))
        for i in itertools.count():
            if self.stop_load.is_set():
                return
            if i % 2 == 0 and self.free_lead_phones:
                phone = self.free_lead_phones.pop()
                lead_id = self.lead_phones[phone][0]
                where = await self._call_result(lead_id, self.campaigns["A"], phone, dnc=True)
                if where is not None:
                    self.event_acked[phone] = time.monotonic()
                    self.event_offsets[phone] = where
                    self.via_agent.add(phone)
            else:
                lead_id = next(leads)
                where = await self._call_result(
                    lead_id, self.campaigns["C"], self.call_leads[lead_id], dnc=False
                )
                if where is None:
                    self.calls_unsure.add(lead_id)
                else:
                    self.calls_acked[lead_id] += 1
                    self.calls_at[lead_id].append((time.monotonic(), where))
            await asyncio.sleep(interval)

    async def _call_result(self, lead_id: int, campaign_id: int, phone: str, *, dnc: bool) -> Where | None:
        payload = {
            "lead_id": str(lead_id),
            "campaign_id": str(campaign_id),
            "identifier": {"type": "phone", "value": phone},
            "channel": "voice",
            "attempted_at": _now(),
            "system_disposition": "ANSWERED" if dnc else "NO_ANSWER",
            "agent_disposition": "DNC" if dnc else None,
            "reached": dnc,
            "do_not_call": dnc,
        }
        return await self._publish(CALL_RESULTS, "CallResult", payload, f"{self.account}:{lead_id}")

    async def _action_load(self) -> None:
        """A supervisor pausing and readying campaign C's leads, one action after another."""
        client = self.clients["lead-action"]
        for i in itertools.count():
            if self.stop_load.is_set():
                return
            action = "PAUSE_LEADS" if i % 2 == 0 else "READY_LEADS"
            body = {"campaignLeadSearchCriteria": {"campaignId": self.campaigns["C"]}}
            try:
                r = await client.put(
                    f"{self.la}/campaignLeads/actions",
                    params={"leadAction": action},
                    json=body,
                    headers=self.h(),
                )
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
                continue
            if r.status_code == 200:
                self.row.actions += 1
            else:
                self._server_error("PUT /v1/admin/accounts/{id}/campaignLeads/actions", r)
            await asyncio.sleep(0.3)

    def _server_error(self, route: str, r: httpx.Response) -> None:
        """An outage should answer 503 (retry later); any other 5xx is counted against the service."""
        if r.status_code >= 500 and r.status_code != 503:
            self.row.server_errors[f"{route} -> {r.status_code} {r.text[:120]}"] += 1

    # -- the checker ---------------------------------------------------------------------------------

    async def _check(self, phones: list[str]) -> dict[str, bool] | None:
        """One batch check as a dialer sends it; None when the service did not answer 200."""
        if not phones:
            return {}
        body = {"identifiers": [{"type": "phone", "value": p} for p in phones]}
        try:
            r = await self.clients["suppression"].post("/v1/check", json=body, headers=self.h(DIALER))
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            self._server_error("POST /v1/check", r)
            return None
        return {p: res["suppressed"] for p, res in zip(phones, r.json()["results"], strict=True)}

    async def _checker(self) -> None:
        """Ask about every accepted phone, continuously; count each 'not suppressed' for one in force."""
        assert self.rig.watch is not None
        while True:
            seen = self.rig.watch.added
            for p in list(self.event_acked):
                if (self.account, p) in seen:
                    self.in_force.add(p)
            must = set(self.in_force)
            phones = sorted(must | set(self.event_acked))
            answers = await self._check(phones)
            self.row.checks += 1
            if answers is None:
                self.row.check_errors += 1
                await asyncio.sleep(0.1)
                continue
            for p, suppressed in answers.items():
                if suppressed:
                    self.in_force.add(p)
                elif p in must:
                    self.false_negative_phones.add(p)
            await asyncio.sleep(0.1)

    # -- after the fault -----------------------------------------------------------------------------

    async def _entries(self) -> Counter[str] | None:
        """Every entry value of the account (Postgres, through the entries API), counted."""
        client = self.clients["suppression"]
        values: Counter[str] = Counter()
        try:
            r = await client.get("/v1/stoplists", headers=self.h(VIEWER))
            if r.status_code != 200:
                return None
            for stoplist in r.json()["items"]:
                cursor: str | None = None
                while True:
                    params: dict[str, Any] = {"limit": 1000}
                    if cursor:
                        params["cursor"] = cursor
                    page = await client.get(
                        f"/v1/stoplists/{stoplist['id']}/entries", params=params, headers=self.h(VIEWER)
                    )
                    if page.status_code != 200:
                        return None
                    for entry in page.json()["items"]:
                        values[entry["identifier"]["value"]] += 1
                    cursor = page.json()["next_cursor"]
                    if not cursor:
                        break
        except httpx.HTTPError:
            return None
        return values

    async def _leads(self) -> dict[int, dict[str, Any]] | None:
        """Every lead of the cycle's campaigns, by id."""
        out: dict[int, dict[str, Any]] = {}
        try:
            for campaign_id in self.campaigns.values():
                r = await self.clients["lead-action"].post(
                    f"{self.la}/campaignLeads/search",
                    params={"limit": 1000},
                    json={"campaignLeadSearchCriteria": {"campaignId": campaign_id}},
                    headers=self.h(VIEWER),
                )
                if r.status_code != 200:
                    return None
                for lead in r.json()["items"]:
                    out[int(lead["id"])] = lead
        except httpx.HTTPError:
            return None
        return out

    async def _deliveries(self) -> dict[str, dict[str, list[str]]] | None:
        """target -> phone -> the Idempotency-Key of every request the fake target received."""
        out: dict[str, dict[str, list[str]]] = {}
        try:
            for name, target, prefix in (
                ("A", self.rig.target_a, self.prefix_a),
                ("B", self.rig.target_b, self.prefix_b),
            ):
                per_phone: dict[str, list[str]] = defaultdict(list)
                for req in await target.requests(prefix):
                    body = req.get("json") or {}
                    per_phone[str(body.get("phone"))].append(str(req["headers"].get("idempotency-key")))
                out[name] = per_phone
        except httpx.HTTPError:
            return None
        return out

    async def _delivery_rows(self) -> dict[str, dict[str, list[str]]] | None:
        """outbound-sync's own view: target -> phone -> the status of each of its delivery rows."""
        out: dict[str, dict[str, list[str]]] = {}
        try:
            for name, target_id in self.target_ids.items():
                per_phone: dict[str, list[str]] = defaultdict(list)
                cursor: str | None = None
                while True:
                    params: dict[str, Any] = {"limit": 1000}
                    if cursor:
                        params["cursor"] = cursor
                    r = await self.clients["outbound-sync"].get(
                        f"/v1/targets/{target_id}/deliveries", params=params, headers=self.h(VIEWER)
                    )
                    if r.status_code != 200:
                        return None
                    for row in r.json()["items"]:
                        per_phone[str((row.get("identifier") or {}).get("value"))].append(row["status"])
                    cursor = r.json().get("next_cursor")
                    if not cursor:
                        break
                out[name] = per_phone
        except httpx.HTTPError:
            return None
        return out

    async def _snapshot(self) -> dict[str, set[str]] | None:
        """Where each accepted opt-out is still missing (None when a surface did not answer)."""
        assert self.rig.watch is not None
        accepted = set(self.event_acked) | set(self.http_acked)
        answers = await self._check(sorted(accepted | set(self.unstopped)))
        entries = await self._entries()
        leads = await self._leads()
        deliveries = await self._deliveries()
        rows = await self._delivery_rows()
        if answers is None or entries is None or leads is None or deliveries is None or rows is None:
            return None
        added, removed = self.rig.watch.added, self.rig.watch.removed
        lead_ok = {
            p
            for p, ids in self.lead_phones.items()
            if all(
                i in leads and leads[i]["suppressed"] and "dnc" in leads[i]["suppression_causes"] for i in ids
            )
        }
        missing = {
            "not in Postgres": {p for p in accepted if entries[p] < 1},
            "not suppressed by the check API": {p for p in accepted if not answers.get(p)},
            f"not on {SUPPRESSION_CHANGES}": {p for p in accepted if (self.account, p) not in added},
            "a lead with the phone not suppressed": {
                p for p in accepted if p in self.lead_phones and p not in lead_ok
            },
            "a lead with the phone not found by lead-action's search": {
                p for p in accepted if any(i not in leads for i in self.lead_phones.get(p, ()))
            },
            "not delivered to target A": {p for p in accepted if not deliveries["A"].get(p)},
            "not delivered to target B": {p for p in accepted if not deliveries["B"].get(p)},
            "not `delivered` in outbound-sync's deliveries of target A": {
                p for p in accepted if "delivered" not in rows["A"].get(p, ())
            },
            "not `delivered` in outbound-sync's deliveries of target B": {
                p for p in accepted if "delivered" not in rows["B"].get(p, ())
            },
            "unstop not applied": {
                p for p in self.unstopped if answers.get(p) or (self.account, p) not in removed
            },
        }
        calls_lost = set()
        calls_twice = set()
        for lead_id, n in self.calls_acked.items():
            if lead_id in self.calls_unsure or lead_id not in leads:
                continue
            passes = int(leads[lead_id]["pass_count"])
            if passes < n:
                calls_lost.add(str(lead_id))
            elif passes > n:
                calls_twice.add(str(lead_id))
        missing["call result not applied (lead pass_count)"] = calls_lost
        self._last = (entries, deliveries, calls_twice)
        self._rows = rows
        return missing

    async def _recover(self) -> None:
        """Wait until every accepted opt-out is everywhere it must be; time it from the heal."""
        deadline = time.monotonic() + PLAN.recovery_timeout
        missing: dict[str, set[str]] | None = None
        while time.monotonic() < deadline:
            if self.broker_stopped_at is not None:
                self._ends_now = await self.rig.log_ends_now()
            snap = await self._snapshot()
            if snap is not None:
                missing = snap
                if not any(m - self._excused(m, where) for where, m in missing.items()):
                    break
            await asyncio.sleep(0.5)
        self.row.recovery_s = round(time.monotonic() - self.fault_healed, 2)
        if missing is None:
            raise AssertionError(f"{self.row.fault}: the services never answered after the fault")
        lost: set[str] = set()
        died: set[str] = set()
        for where, phones in missing.items():
            excused = self._excused(phones, where)
            died |= excused
            if where == "unstop not applied":
                self.row.unstops_missing = len(phones - excused)
                continue
            if phones - excused:
                self.row.lost_where[where] = len(phones - excused)
            lost |= phones - excused
        self.row.lost = len(lost)
        self.row.lost_to_broker_memory = len(died - lost)
        self._count_duplicates()
        self._notes(lost, missing)
        topic_lost = missing[f"not on {SUPPRESSION_CHANGES}"] & lost
        if topic_lost:
            found = await self.on_topic_now(topic_lost)
            self.row.notes.append(
                f"a fresh consumer reading {SUPPRESSION_CHANGES} from offset 0 now finds {len(found)} "
                f"of the {len(topic_lost)} missing there"
            )

    def _notes(self, lost: set[str], missing: dict[str, set[str]]) -> None:
        for where, n in self.row.lost_where.items():
            self.row.notes.append(f"lost {n}: {where}, e.g. {sorted(missing[where])[:3]}")
        if lost and self.broker_stopped_at is not None:
            when = sorted(
                round((self.event_acked.get(p) or self.http_acked.get(p) or 0.0) - self.broker_stopped_at, 1)
                for p in lost
            )
            self.row.notes.append(
                f"lost ones were acked {when[0]}..{when[-1]} s after the old broker exited "
                f"(heal at {round(self.fault_healed - self.broker_stopped_at, 1)} s)"
            )
        if lost:
            http = lost & set(self.http_acked)
            agent = lost & self.via_agent
            self.row.notes.append(
                f"lost {len(lost)}: {len(http)} HTTP adds, {len(agent)} do-not-call call results, "
                f"{len(lost - http - agent)} other events"
            )
        for where, n in self.row.duplicated_where.items():
            self.row.notes.append(f"duplicated {n}: {where}")
        for what, n in self.row.server_errors.items():
            self.row.notes.append(f"{n}x {what}")
        if self.false_negative_phones:
            self.row.notes.append(f"false negatives e.g. {sorted(self.false_negative_phones)[:5]}")

    def _excused(self, phones: set[str], where: str) -> set[str]:
        """The phones whose loss the broker restart explains (none when the fault was not the broker)."""
        if self.broker_stopped_at is None:
            return set()
        if where.startswith("call result"):
            return {lead for lead in phones if self._call_died(int(lead))}
        downstream = where.startswith(("a lead", "not delivered", "not `delivered`"))
        return {p for p in phones if self._died_with_tansu(p, downstream=downstream)}

    def _died_with_tansu(self, phone: str, *, downstream: bool) -> bool:
        """Lost because Tansu keeps logs in memory (impossible on Kafka), not because of a service:
        - anything accepted before the broker stopped (the old log is gone; consumers may not have read it);
        - an event the new broker stored below the old log's end: a running consumer keeps its position,
          and Tansu answers a fetch past the new end with nothing, so it skips up to that offset. That
          holds for our events, for lead-action's LeadStopped of a do-not-call (its partition's log never
          grew past the old end) and, for lead-action's and outbound-sync's consumers, for the
          SuppressionChanged on the new suppression.changes.v1."""
        assert self.broker_stopped_at is not None
        old = self.rig.rewound_end
        acked = self.event_acked.get(phone) or self.http_acked.get(phone) or self.unstopped[phone]
        if acked < self.broker_stopped_at:
            return True
        where = self.event_offsets.get(phone)
        if where is not None and where[2] < old.get((where[0], where[1]), 0):
            return True
        if phone in self.via_agent:
            key = f"{self.account}:phone:{phone}".encode()
            part = partitions_for_keys([key], TOPICS[LEADS_STOPPED])[0]
            if self._ends_now.get((LEADS_STOPPED, part), 0) <= old.get((LEADS_STOPPED, part), 0):
                return True
        if downstream and self.rig.watch is not None:
            at = self.rig.watch.added_at.get((self.account, phone))
            if at is not None and at[1] < old.get((SUPPRESSION_CHANGES, at[0]), 0):
                return True
        return False

    def _call_died(self, lead_id: int) -> bool:
        """A call result the old broker acked, or the new one stored below the old end (as above)."""
        assert self.broker_stopped_at is not None
        old = self.rig.rewound_end
        return any(
            at < self.broker_stopped_at or where[2] < old.get((where[0], where[1]), 0)
            for at, where in self.calls_at[lead_id]
        )

    def _count_duplicates(self) -> None:
        """An opt-out applied twice: two entries, two distinct `added` events, two Idempotency-Keys for one
        phone at one target, or a call result counted twice. The same key sent again is a redelivery."""
        assert self.rig.watch is not None
        entries, deliveries, calls_twice = self._last
        dup: dict[str, set[str]] = {
            "two entries": {v for v, n in entries.items() if n > 1},
            "two added events": {
                p
                for (acct, p), ids in self.rig.watch.added.items()
                if acct == self.account and len(set(ids)) > 1
            },
            "call result applied twice (lead pass_count)": calls_twice,
        }
        for name, statuses in self._rows.items():
            dup[f"two delivery rows at target {name}"] = {p for p, st in statuses.items() if len(st) > 1}
        for name, per_phone in deliveries.items():
            dup[f"two Idempotency-Keys at target {name}"] = {
                p for p, keys in per_phone.items() if len(set(keys)) > 1
            }
            self.row.redelivered += sum(len(keys) - len(set(keys)) for keys in per_phone.values())
        for where, phones in dup.items():
            if phones:
                self.row.duplicated_where[where] = len(phones)
        self.row.duplicated = len(set().union(*dup.values()))

    async def _during_fault(self, start: float, healed: float) -> None:
        """How many requests each target received while the fault lasted (a slow A must not stall B)."""
        got = {}
        for name, target, prefix in (
            ("A", self.rig.target_a, self.prefix_a),
            ("B", self.rig.target_b, self.prefix_b),
        ):
            got[name] = sum(1 for r in await target.requests(prefix) if start <= r["received_at"] <= healed)
        self.row.notes.append(
            f"requests received during the fault ({healed - start:.1f} s): target A {got['A']}, target B {got['B']}"
        )

    async def _caught_up(self) -> None:
        """Every service's consumers at the end of their partitions (dialguard_consumer_lag 0)."""
        deadline = time.monotonic() + 60
        while True:
            lags = {name: await consumer_lag(self.rig.url(name)) for name in SERVICES}
            if all(v == 0 for v in lags.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        self.row.lag = lags

    async def on_topic_now(self, phones: set[str]) -> set[str]:
        """Which phones' `added` events a brand-new reader finds (tells a stuck watcher from a lost event)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.rig.stack.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
        )
        await consumer.start()
        found: set[str] = set()
        try:
            parts = [TopicPartition(SUPPRESSION_CHANGES, p) for p in range(TOPICS[SUPPRESSION_CHANGES])]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                positions = [await consumer.position(tp) for tp in parts]
                if all(pos >= ends[tp] for pos, tp in zip(positions, parts, strict=True)):
                    break
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for r in records:
                        env = orjson.loads(r.value or b"{}")
                        value = env.get("payload", {}).get("entry", {}).get("identifier", {}).get("value")
                        if env.get("account_id") == self.account and value in phones:
                            found.add(value)
        finally:
            await consumer.stop()
        return found
