"""lead-action at scale: COPY N leads into a running service's database, then time SUPPRESS_LEADS,
RESET_LEADS and MOVE_TO_CAMPAIGN over HTTP on all of them, the p50/p99 of a two-criteria search (and,
after RESET_LEADS, of one for a state no lead is in), and
how fast SuppressionChanged events on suppression.changes.v1 become suppressed leads (events/s).

Against a running service (its database DSN, its URL and its JWT secret):

    .venv/bin/python bench/bench_lead_action.py --n 1000000 \
        --dsn postgresql://dg_lead_action:...@127.0.0.1:5432/postgres \
        --base-url http://127.0.0.1:8003 --secret "$AUTH_JWT_SECRET" --kafka 127.0.0.1:9092

Without --dsn it brings up its own local stack and lead-action process (as the other benches do).
Loading is setup, not measured: leads are COPYed straight into `lead_action.leads` of a campaign
created over the API, then the table is vacuumed and analyzed. Searches use a fresh token each (the per-token limit is 15 per 10 s).

The event measurement publishes --events SuppressionChanged (op added, suppressed true, channel null,
one entry per lead phone) as fast as the producer takes them and stops the clock when the service's
inbox holds every one of them: the inbox row commits in the same transaction as the leads' update, so
that is the moment the leads are suppressed; a final count checks every lead really is. Without a
broker address (--kafka or KAFKA_BOOTSTRAP_SERVERS) it is skipped and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from publish import publish_batches

from dialguard.events.envelope import envelope_bytes, format_time, utcnow
from dialguard.events.topics import SUPPRESSION_CHANGES
from dialguard.platform.auth import mint_token
from dialguard.testing.helpers import SECRET
from dialguard.testing.infra import acquire_infra
from dialguard.testing.services import ServiceProcess, create_database, provision_all, service_env

REPO = Path(__file__).resolve().parents[1]
STATES = ("READY", "PAUSED", "COMPLETE", "CALLBACK")
ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")


class Api:
    """HTTP calls as one account's manager; `fresh` mints a token per call (per-token rate limits)."""

    def __init__(self, client: httpx.AsyncClient, secret: str, account: str) -> None:
        self.client = client
        self.secret = secret
        self.account = account
        self.base = f"/v1/admin/accounts/{account}"
        self._n = 0

    def headers(self, fresh: bool = False) -> dict[str, str]:
        self._n += 1
        sub = f"bench-{self._n}" if fresh else "bench"
        token = mint_token(secret=self.secret, account_id=self.account, roles=["OUTBOUND_MANAGER"], sub=sub)
        return {"Authorization": f"Bearer {token}"}

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.client.post(self.base + path, json=body, headers=self.headers())
        r.raise_for_status()
        return dict(r.json())

    async def action(
        self, action: str, criteria: dict[str, Any], params: dict[str, Any] | None = None
    ) -> float:
        body: dict[str, Any] = {"campaignLeadSearchCriteria": criteria}
        if params:
            body["leadActionParams"] = {"paramMap": params}
        started = time.perf_counter()
        r = await self.client.put(
            f"{self.base}/campaignLeads/actions",
            params={"leadAction": action},
            json=body,
            headers=self.headers(fresh=True),
        )
        elapsed = time.perf_counter() - started
        r.raise_for_status()
        print(f"  {action}: affected {r.json()['affected']} in {elapsed:.2f} s", flush=True)
        return elapsed


def phone_of(i: int) -> str:
    """The i-th lead's phone (distinct for the first 8 million)."""
    return f"1267{2000000 + i % 8000000:07d}"


async def load(dsn: str, *, account: str, campaign_id: int, list_id: int, n: int) -> float:
    """Setup: COPY n leads (valid-looking US phones, spread over states and time zones); returns seconds."""
    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    try:
        records = (
            (
                account,
                campaign_id,
                list_id,
                list_id,
                f"ext-{i}",
                phone_of(i),
                STATES[i % len(STATES)],
                ZONES[i % len(ZONES)],
            )
            for i in range(n)
        )
        await conn.copy_records_to_table(
            "leads",
            schema_name="lead_action",
            columns=[
                "account_id",
                "campaign_id",
                "list_id",
                "origin_list_id",
                "external_id",
                "phone",
                "status",
                "timezone",
            ],
            records=records,
        )
        # COPY bypasses the service, so the search's block summary (migration 0005) is built here, as
        # the service's inserts would have kept it.
        await conn.execute("SELECT lead_action.rebuild_lead_blocks($1)", account)
        # Setup too: a campaign of a million leads is not being bulk-loaded while it is searched, so the
        # insert-triggered autovacuum of the fresh table runs here rather than during the timed part.
        await conn.execute("VACUUM (ANALYZE) lead_action.leads")
        await conn.execute("VACUUM (ANALYZE) lead_action.lead_blocks")
    finally:
        await conn.close()
    return time.perf_counter() - started


WARMUP = 20


async def search_latencies(
    api: Api, campaign_id: int, samples: int, states: tuple[str, ...] = STATES
) -> dict[str, float]:
    """Two criteria (campaign + lead state), first page of 50, sequential; milliseconds.

    WARMUP untimed searches first (each state at least once), as the peer's check bench warms up
    before its clock starts: a fresh pool connection's first search pays statement preparation
    (~50 ms), a one-off that would otherwise be the p99 of a couple of hundred samples."""
    for i in range(WARMUP):
        criteria = {"campaignId": campaign_id, "leadStates": [states[i % len(states)]]}
        r = await api.client.post(
            f"{api.base}/campaignLeads/search",
            json={"campaignLeadSearchCriteria": criteria},
            headers=api.headers(fresh=True),
        )
        r.raise_for_status()
    times: list[float] = []
    for i in range(samples):
        criteria = {"campaignId": campaign_id, "leadStates": [states[i % len(states)]]}
        started = time.perf_counter()
        r = await api.client.post(
            f"{api.base}/campaignLeads/search",
            json={"campaignLeadSearchCriteria": criteria},
            headers=api.headers(fresh=True),
        )
        times.append((time.perf_counter() - started) * 1000)
        r.raise_for_status()
    times.sort()
    return {
        "samples": samples,
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "max_ms": round(times[-1], 2),
    }


async def update_counts(dsn: str) -> tuple[int, int]:
    """(row updates, HOT ones) of lead_action.leads so far, from the statistics collector."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
               WHERE schemaname = 'lead_action' AND relname = 'leads'"""
        )
    finally:
        await conn.close()
    return int(row["n_tup_upd"]), int(row["n_tup_hot_upd"])


async def hot_share(
    dsn: str, before: tuple[int, int], into: dict[str, float], action: str
) -> tuple[int, int]:
    """Share of an action's row updates that were HOT (wrote no index entry): the machine-independent
    half of the figure. Backends report their counts within a second of going idle, hence the wait."""
    await asyncio.sleep(1.5)
    after = await update_counts(dsn)
    updated = after[0] - before[0]
    into[action] = round((after[1] - before[1]) / updated, 3) if updated else 0.0
    return after


def suppression_changed(account: str, i: int) -> tuple[bytes, bytes, uuid.UUID]:
    """(key, value, event_id) of one stoplist entry added for lead i's phone, on every channel."""
    event_id = uuid.uuid4()
    phone = phone_of(i)
    payload = {
        "op": "added",
        "entry": {
            "entry_id": str(uuid.uuid4()),
            "stoplist_id": "bench-stoplist",
            "identifier": {"type": "phone", "value": phone},
            "channel": None,
            "sender": None,
            "source": "api",
            "reason": "bench",
            "added_at": format_time(utcnow()),
            "expires_at": None,
        },
        "suppressed": True,
    }
    value = envelope_bytes(
        event_id=event_id,
        event_type="SuppressionChanged",
        occurred_at=format_time(utcnow()),
        account_id=account,
        producer="suppression",
        payload=payload,
    )
    return f"{account}:phone:{phone}".encode(), value, event_id


async def suppression_events(dsn: str, kafka: str, *, account: str, events: int) -> dict[str, Any]:
    """Publish `events` SuppressionChanged for distinct lead phones; events/s until all leads are suppressed."""
    prepared = [suppression_changed(account, i) for i in range(events)]
    ids = [event_id for _, _, event_id in prepared]
    conn = await asyncpg.connect(dsn)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        before = await conn.fetchval(
            "SELECT count(*) FROM lead_action.leads WHERE account_id = $1 AND 'dnc' = ANY(suppression_causes)",
            account,
        )
        await conn.execute("CREATE TEMP TABLE bench_events (event_id uuid PRIMARY KEY)")
        await conn.copy_records_to_table("bench_events", records=[(i,) for i in ids])
        started = time.perf_counter()
        await asyncio.gather(
            *await publish_batches(
                producer, SUPPRESSION_CHANGES, [(k, v) for k, v, _ in prepared], "SuppressionChanged"
            )
        )
        published_s = time.perf_counter() - started
        done = 0
        deadline = started + 600
        while time.perf_counter() < deadline:
            done = await conn.fetchval(
                "SELECT count(*) FROM lead_action.inbox i JOIN bench_events b USING (event_id)"
            )
            if done >= events:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        suppressed = await conn.fetchval(
            "SELECT count(*) FROM lead_action.leads WHERE account_id = $1 AND 'dnc' = ANY(suppression_causes)",
            account,
        )
    finally:
        await producer.stop()
        await conn.close()
    result = {
        "events": events,
        "published_s": round(published_s, 2),
        "applied_s": round(elapsed, 2),
        "events_per_s": round(events / elapsed),
        "leads_suppressed": suppressed - before,
        "all_applied": done >= events and suppressed - before == events,
    }
    print(f"  SuppressionChanged: {result}", flush=True)
    return result


async def measure(
    *, dsn: str, base_url: str, secret: str, n: int, searches: int, kafka: str | None, events: int
) -> dict[str, Any]:
    """Hierarchy over HTTP, leads by COPY, then the timed actions and searches."""
    account = f"bench-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        api = Api(client, secret, account)
        dg = await api.post("/dialGroups", {"name": "bench"})
        src = await api.post(f"/dialGroups/{dg['id']}/campaigns", {"name": "source"})
        dst = await api.post(f"/dialGroups/{dg['id']}/campaigns", {"name": "target"})
        lst = await api.post(f"/dialGroups/{dg['id']}/campaigns/{src['id']}/lists", {"name": "bench"})
        src_id = int(src["id"])
        print(f"loading {n} leads ...", flush=True)
        load_s = await load(dsn, account=account, campaign_id=src_id, list_id=int(lst["id"]), n=n)
        search = await search_latencies(api, src_id, searches)
        crit = {"campaignId": src_id}
        hot: dict[str, float] = {}
        updates = await update_counts(dsn)
        suppress_s = await api.action("SUPPRESS_LEADS", crit)
        updates = await hot_share(dsn, updates, hot, "SUPPRESS_LEADS")
        reset_s = await api.action("RESET_LEADS", crit)
        updates = await hot_share(dsn, updates, hot, "RESET_LEADS")
        # Every lead is READY now: a state no lead is in (the worst case for a walk of the campaign).
        absent = await search_latencies(api, src_id, max(searches // 4, 1), ("PAUSED", "CALLBACK"))
        move_s = await api.action(
            "MOVE_TO_CAMPAIGN",
            crit,
            {"CAMPAIGN_ID": dst["id"], "LIST_ID": "0", "LIST_NAME": "moved", "CREATE_COPY_SETTING": "false"},
        )
        await hot_share(dsn, updates, hot, "MOVE_TO_CAMPAIGN")
    k = min(events, n)
    if kafka and k > 0:
        changes: dict[str, Any] = await suppression_events(dsn, kafka, account=account, events=k)
    else:
        changes = {"skipped": "no broker address (--kafka or KAFKA_BOOTSTRAP_SERVERS)"}
    return {
        "leads": n,
        "load_copy_s": round(load_s, 2),
        "search_two_criteria": search,
        "search_state_no_lead_is_in": absent,
        "suppress_leads_s": round(suppress_s, 3),
        "reset_leads_s": round(reset_s, 3),
        "move_to_campaign_s": round(move_s, 3),
        "hot_update_share": hot,
        "suppression_changed": changes,
    }


async def run_own_stack(n: int, searches: int, events: int) -> dict[str, Any]:
    """No --dsn: a private local stack, a fresh database and one lead-action process."""
    infra = await asyncio.to_thread(acquire_infra, REPO / ".local" / f"bench-lead-action-{os.getpid()}")
    svc: ServiceProcess | None = None
    try:
        admin = await create_database(infra.postgres_admin_url)
        dsn = (await provision_all(admin))["lead-action"]
        env = service_env(
            kafka=infra.kafka_bootstrap, database_url=dsn, redis_url=infra.redis_url, secret=SECRET
        )
        svc = ServiceProcess("lead-action", env, REPO / ".local" / "bench-logs")
        await svc.start(timeout=120)
        return await measure(
            dsn=dsn,
            base_url=svc.base_url,
            secret=SECRET,
            n=n,
            searches=searches,
            kafka=infra.kafka_bootstrap,
            events=events,
        )
    finally:
        if svc is not None:
            await svc.stop()
        infra.close()


def main() -> None:
    """Print the results as JSON (and write them to --out when given)."""
    parser = argparse.ArgumentParser(description="lead-action actions and search benchmark")
    parser.add_argument("--n", type=int, default=5000, help="leads to load")
    parser.add_argument("--dsn", help="the running service's database (its role's DSN)")
    parser.add_argument("--base-url", default="http://127.0.0.1:8003", help="the running service")
    parser.add_argument("--secret", default=os.environ.get("AUTH_JWT_SECRET", SECRET), help="its JWT secret")
    parser.add_argument("--searches", type=int, default=1000, help="search samples for the percentiles")
    parser.add_argument(
        "--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), help="the running service's broker"
    )
    parser.add_argument("--events", type=int, default=50_000, help="SuppressionChanged events to publish")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    if args.dsn:
        coro = measure(
            dsn=args.dsn,
            base_url=args.base_url,
            secret=args.secret,
            n=args.n,
            searches=args.searches,
            kafka=args.kafka,
            events=args.events,
        )
        results = asyncio.run(coro)
    else:
        results = asyncio.run(run_own_stack(args.n, args.searches, args.events))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
