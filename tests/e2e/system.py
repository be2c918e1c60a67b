"""The running system as an operator and a dialer see it: each service's public HTTP API and the topics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dialguard.events import Envelope
from dialguard.testing.helpers import auth, wait_for

# The machine is shared and loaded: every hop gets a generous deadline.
HOP_TIMEOUT = 45.0
MANAGER = ["OUTBOUND_MANAGER"]
DIALER = ["DIALER"]
VIEWER = ["VIEWER"]


@dataclass
class Seen:
    """One message a watcher saw: topic, key and the decoded envelope."""

    topic: str
    key: str | None
    envelope: dict[str, Any]

    @property
    def event_type(self) -> str:
        return str(self.envelope["event_type"])

    @property
    def payload(self) -> dict[str, Any]:
        return dict(self.envelope["payload"])


class TopicWatch:
    """A plain aiokafka consumer without a group, from the end of each topic: sees what happens from now on."""

    def __init__(self, bootstrap: str, topics: Iterable[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = tuple(topics)
        self.seen: list[Seen] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        await consumer.start()
        await consumer.topics()  # a fresh client knows no topic metadata until it asks for it
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        missing = set(self.topics) - {tp.topic for tp in partitions}
        assert not missing, f"topics not on the broker: {missing}"
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end offsets now, before the test publishes anything
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for r in records:
                    with contextlib.suppress(ValueError):
                        self.seen.append(
                            Seen(tp.topic, r.key.decode() if r.key else None, orjson.loads(r.value))
                        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def events(self, topic: str, account: str, event_type: str | None = None) -> list[Seen]:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            self._task.result()  # the watcher died: show why instead of timing out on "saw nothing"
        # Topics are at-least-once (a relay that loses its ack re-publishes); consumers, dialers and
        # this watcher count an event once per event_id.
        out: dict[Any, Seen] = {}
        for s in self.seen:
            if (
                s.topic == topic
                and s.envelope.get("account_id") == account
                and (event_type is None or s.event_type == event_type)
            ):
                out.setdefault(s.envelope.get("event_id"), s)
        return list(out.values())

    async def wait(
        self,
        topic: str,
        account: str,
        event_type: str,
        match: Callable[[dict[str, Any]], bool] = lambda _: True,
        count: int = 1,
        timeout: float = HOP_TIMEOUT,
    ) -> list[Seen]:
        """Wait until `count` events of the type whose payload matches have been seen; returns them."""

        async def found() -> list[Seen] | None:
            hits = [s for s in self.events(topic, account, event_type) if match(s.payload)]
            return hits if len(hits) >= count else None

        try:
            result: list[Seen] = await wait_for(found, timeout=timeout, interval=0.1)
        except AssertionError:
            got = [(s.event_type, s.payload) for s in self.events(topic, account)]
            raise AssertionError(f"no {count}x {event_type} on {topic} in {timeout}s; saw {got}") from None
        return result


@dataclass
class System:
    """One account's view of the running system; every assertion goes through these public surfaces."""

    account: str
    suppression: httpx.AsyncClient
    contact_list: httpx.AsyncClient
    lead_action: httpx.AsyncClient
    outbound_sync: httpx.AsyncClient
    fake: httpx.AsyncClient
    producer: AIOKafkaProducer
    watch: TopicWatch

    def h(self, roles: list[str] | None = None) -> dict[str, str]:
        return auth(self.account, roles or MANAGER)

    # --- topics -------------------------------------------------------------------------------

    async def publish(self, topic: str, event_type: str, payload: dict[str, Any], key: str) -> Envelope:
        """Publish as an upstream system would: the envelope, the contract's key, event_type header."""
        env = Envelope(
            event_type=event_type,
            account_id=self.account,
            producer="e2e-upstream",
            correlation_id=f"e2e-{event_type}",
            payload=payload,
        )
        await self.producer.send_and_wait(
            topic,
            env.to_bytes(),
            key=key.encode(),
            headers=[("event_type", event_type.encode()), ("correlation_id", b"e2e")],
        )
        return env

    # --- suppression --------------------------------------------------------------------------

    async def stoplist(self, name: str) -> str:
        r = await self.suppression.post("/v1/stoplists", json={"name": name}, headers=self.h())
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def stoplists(self) -> list[dict[str, Any]]:
        r = await self.suppression.get("/v1/stoplists", headers=self.h(VIEWER))
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    async def entries(self, stoplist_id: str, **filters: str) -> list[dict[str, Any]]:
        r = await self.suppression.get(
            f"/v1/stoplists/{stoplist_id}/entries", params=filters, headers=self.h(VIEWER)
        )
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    async def add_entry(self, stoplist_id: str, phone: str, **extra: Any) -> dict[str, Any]:
        body = {"identifier": {"type": "phone", "value": phone}, **extra}
        r = await self.suppression.post(f"/v1/stoplists/{stoplist_id}/entries", json=body, headers=self.h())
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def check(self, phone: str) -> dict[str, Any]:
        r = await self.suppression.get(
            "/v1/check", params={"type": "phone", "value": phone}, headers=self.h(DIALER)
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def check_becomes(self, phone: str, suppressed: bool) -> dict[str, Any]:
        async def settled() -> dict[str, Any] | None:
            body = await self.check(phone)
            return body if body["suppressed"] is suppressed else None

        result: dict[str, Any] = await wait_for(settled, timeout=HOP_TIMEOUT, interval=0.1)
        return result

    # --- outbound-sync and the fake Outbound server ---------------------------------------------

    async def tm_target(self, stoplist_id: str, system: str, project: str) -> dict[str, Any]:
        body = {"type": "TM", "system": system, "project": project}
        r = await self.outbound_sync.post(f"/v1/stoplists/{stoplist_id}/targets", json=body, headers=self.h())
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def deliveries(self, target_id: str) -> list[dict[str, Any]]:
        r = await self.outbound_sync.get(f"/v1/targets/{target_id}/deliveries", headers=self.h(VIEWER))
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    async def fake_requests(self, path_prefix: str) -> list[dict[str, Any]]:
        r = await self.fake.get("/_requests", params={"path_prefix": path_prefix})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    # --- lead-action --------------------------------------------------------------------------

    @property
    def la_base(self) -> str:
        return f"/v1/admin/accounts/{self.account}"

    async def la_create(self, path: str, name: str) -> dict[str, Any]:
        r = await self.lead_action.post(f"{self.la_base}{path}", json={"name": name}, headers=self.h())
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def campaign(self, name: str) -> tuple[str, str]:
        """(campaign id, list id) of a fresh campaign in a fresh dial group, with one list."""
        dg = await self.la_create("/dialGroups", f"dg-{name}")
        camp = await self.la_create(f"/dialGroups/{dg['id']}/campaigns", name)
        lst = await self.la_create(f"/campaigns/{camp['id']}/lists", f"{name}-list")
        assert lst["campaign_id"] == camp["id"]
        return str(camp["id"]), str(lst["id"])

    async def add_leads(self, list_id: str, leads: list[dict[str, Any]]) -> list[str]:
        r = await self.lead_action.post(
            f"{self.la_base}/lists/{list_id}/leads", json={"leads": leads}, headers=self.h()
        )
        assert r.status_code == 201, r.text
        assert r.json()["rejected"] == 0, r.text
        return [str(x) for x in r.json()["lead_ids"]]

    async def leads_of_list(self, list_id: str) -> list[dict[str, Any]]:
        r = await self.lead_action.get(
            f"{self.la_base}/lists/{list_id}/leads", params={"limit": 1000}, headers=self.h(VIEWER)
        )
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    async def search(self, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        r = await self.lead_action.post(
            f"{self.la_base}/campaignLeads/search",
            params={"limit": 1000},
            json={"campaignLeadSearchCriteria": criteria},
            headers=self.h(VIEWER),
        )
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    async def act(
        self, action: str, criteria: dict[str, Any], params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"campaignLeadSearchCriteria": criteria}
        if params is not None:
            body["leadActionParams"] = {"paramMap": params}
        r = await self.lead_action.put(
            f"{self.la_base}/campaignLeads/actions",
            params={"leadAction": action},
            json=body,
            headers=self.h(),
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def leads_become(
        self, criteria: dict[str, Any], predicate: Callable[[list[dict[str, Any]]], bool], what: str
    ) -> list[dict[str, Any]]:
        """Poll a lead search until the predicate holds over its result."""
        last: list[dict[str, Any]] = []

        async def holds() -> list[dict[str, Any]] | None:
            nonlocal last
            last = await self.search(criteria)
            return last if predicate(last) else None

        try:
            result: list[dict[str, Any]] = await wait_for(holds, timeout=HOP_TIMEOUT, interval=0.2)
        except AssertionError:
            shown = [
                (x["id"], x["phone"], x["status"], x["suppressed"], x["suppression_causes"]) for x in last
            ]
            raise AssertionError(f"lead-action: {what} never held; leads {shown}") from None
        return result

    # --- contact-list -------------------------------------------------------------------------

    async def new_contact_list(self, **extra: Any) -> dict[str, Any]:
        body = {"name": "e2e", "kind": "telephony", "close_when_all_reached": False, **extra}
        r = await self.contact_list.post("/v1/contact-lists", json=body, headers=self.h())
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def import_contacts(self, list_id: str, csv_text: str) -> dict[str, Any]:
        """Upload, wait for validation, commit, wait for completion; returns the finished Import."""
        r = await self.contact_list.post(
            f"/v1/contact-lists/{list_id}/imports",
            files={"file": ("contacts.csv", csv_text.encode(), "text/csv")},
            data={"consent_confirmed": "true"},
            headers=self.h(),
        )
        assert r.status_code == 202, r.text
        import_id = str(r.json()["import_id"])
        validated = await self.import_status(import_id, "validated")
        assert validated["invalid"] == 0, validated
        r = await self.contact_list.post(f"/v1/imports/{import_id}/commit", headers=self.h())
        assert r.status_code == 202, r.text
        return await self.import_status(import_id, "completed")

    async def import_status(self, import_id: str, status: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            r = await self.contact_list.get(f"/v1/imports/{import_id}", headers=self.h(VIEWER))
            assert r.status_code == 200, r.text
            body = dict(r.json())
            assert body["status"] not in {"failed", "cancelled"}, body
            return body if body["status"] == status else None

        result: dict[str, Any] = await wait_for(reached, timeout=HOP_TIMEOUT, interval=0.2)
        return result

    async def contacts(self, list_id: str) -> dict[str, dict[str, Any]]:
        """The list's contacts by external id."""
        r = await self.contact_list.get(
            f"/v1/contact-lists/{list_id}/contacts", params={"limit": 1000}, headers=self.h(VIEWER)
        )
        assert r.status_code == 200, r.text
        return {str(c["external_id"]): c for c in r.json()["items"]}

    async def get_contact_list(self, list_id: str) -> dict[str, Any]:
        r = await self.contact_list.get(f"/v1/contact-lists/{list_id}", headers=self.h(VIEWER))
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def contact_statuses_become(
        self, list_id: str, expected: dict[str, str]
    ) -> dict[str, dict[str, Any]]:
        """Poll until each named contact (by external id) has the expected status."""
        last: dict[str, dict[str, Any]] = {}

        async def holds() -> dict[str, dict[str, Any]] | None:
            nonlocal last
            last = await self.contacts(list_id)
            return (
                last
                if all(ext in last and last[ext]["status"] == st for ext, st in expected.items())
                else None
            )

        try:
            result: dict[str, dict[str, Any]] = await wait_for(holds, timeout=HOP_TIMEOUT, interval=0.2)
        except AssertionError:
            got = {ext: c["status"] for ext, c in last.items()}
            raise AssertionError(f"contact-list: statuses {got} never became {expected}") from None
        return result

    async def list_counts_become(self, list_id: str, **expected: int) -> dict[str, Any]:
        """Poll the ContactList until the named counts hold (others are not checked)."""
        last: dict[str, Any] = {}

        async def holds() -> dict[str, Any] | None:
            nonlocal last
            last = await self.get_contact_list(list_id)
            return last if all(last["counts"][k] == v for k, v in expected.items()) else None

        try:
            result: dict[str, Any] = await wait_for(holds, timeout=HOP_TIMEOUT, interval=0.2)
        except AssertionError:
            raise AssertionError(
                f"contact-list: counts {last.get('counts')} never matched {expected}"
            ) from None
        return result


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
