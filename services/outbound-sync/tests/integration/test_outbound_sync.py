"""outbound-sync through its public surface on the real stack: targets, deliveries, retries, isolation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from dialguard.events import Envelope
from dialguard.testing.fixtures import StartService
from dialguard.testing.helpers import auth, wait_for
from dialguard.testing.services import ServiceProcess

FAST_RETRIES = {
    "DELIVERY_TIMEOUT_S": "2",
    "DELIVERY_CONNECT_TIMEOUT_S": "1",
    "DELIVERY_BACKOFF_BASE_S": "0.05",
    "DELIVERY_BACKOFF_MAX_S": "0.4",
    "DELIVERY_POLL_S": "0.1",
    "DELIVERY_MAX_ATTEMPTS": "4",
    "BREAKER_THRESHOLD": "50",
}


def change(
    account: str,
    stoplist_id: str,
    value: str,
    *,
    op: str = "added",
    id_type: str = "phone",
    entry_id: str | None = None,
    reason: str | None = None,
    expires_at: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    """A SuppressionChanged envelope with the contract's entry fields."""
    entry = {
        "entry_id": entry_id or str(uuid.uuid4()),
        "stoplist_id": stoplist_id,
        "identifier": {"type": id_type, "value": value},
        "channel": None,
        "sender": None,
        "source": "api",
        "reason": reason,
        "added_at": "2026-11-23T10:00:00.000Z",
        "expires_at": expires_at,
    }
    return Envelope(
        event_type="SuppressionChanged",
        account_id=account,
        producer="suppression",
        occurred_at=occurred_at or datetime.now(UTC),
        payload={"op": op, "entry": entry, "suppressed": op == "added"},
    )


async def start_outbound(start_service: StartService, fake: Any, **extra: str) -> ServiceProcess:
    """outbound-sync pointed at the fake server, with fast retries unless a test says otherwise."""
    env = {**FAST_RETRIES, "OUTBOUND_TM_URL_TEMPLATE": f"{fake.base_url}/outbound{{system}}", **extra}
    return await start_service("outbound-sync", **env)


def account() -> str:
    """A fresh account per test: the topic is shared by the whole session."""
    return f"os-{uuid.uuid4().hex[:8]}"


async def _deliveries(c: httpx.AsyncClient, target_id: str, acct: str, **params: Any) -> list[dict[str, Any]]:
    r = await c.get(f"/v1/targets/{target_id}/deliveries", params=params, headers=auth(acct, ["VIEWER"]))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _settled(
    c: httpx.AsyncClient, target_id: str, acct: str, want: int, status: str
) -> list[dict[str, Any]]:
    """Wait until `want` deliveries of the target have this status."""

    async def check() -> list[dict[str, Any]] | None:
        items = await _deliveries(c, target_id, acct, status=status)
        return items if len(items) >= want else None

    found: list[dict[str, Any]] = await wait_for(check, timeout=20)
    return found


async def test_tm_and_manual_targets_get_what_the_contract_says(
    start_service: StartService, fake: Any, publish: Any
) -> None:
    svc = await start_outbound(start_service, fake)
    acct, stoplist = account(), str(uuid.uuid4())
    me = auth(acct)
    async with httpx.AsyncClient(base_url=svc.base_url) as c:
        tm = await c.post(
            f"/v1/stoplists/{stoplist}/targets",
            json={"type": "TM", "system": "03", "project": "Sales DK", "expires_in_days": 30},
            headers=me,
        )
        assert tm.status_code == 201, tm.text
        tm_target = tm.json()
        assert tm_target["url"] == f"{fake.base_url}/outbound03/projects/Sales%20DK/dnc"
        assert tm_target["active"] is True
        assert tm_target["status"] == {
            "last_success_at": None,
            "last_error": None,
            "last_error_at": None,
            "backlog": 0,
        }
        manual = await c.post(
            f"/v1/stoplists/{stoplist}/targets",
            json={
                "type": "MANUAL",
                "url": f"{fake.base_url}/hooks/dnc",
                "method": "PUT",
                "headers": {"Authorization": "Bearer s3cret-token-value", "X-Team": "crm"},
                "body_template": '{"number": "{{identifier.value}}", "kind": "{{identifier.type}}", '
                '"why": "{{reason}}", "list": "{{stoplist_id}}", "id": "{{entry_id}}"}',
            },
            headers=me,
        )
        assert manual.status_code == 201, manual.text
        manual_target = manual.json()
        assert manual_target["headers"] == {"Authorization": "Bear…***", "X-Team": "crm"}
        got = (await c.get(f"/v1/targets/{manual_target['id']}", headers=auth(acct, ["VIEWER"]))).json()
        assert got["headers"]["Authorization"] == "Bear…***"
        listed = (await c.get(f"/v1/stoplists/{stoplist}/targets", headers=auth(acct, ["VIEWER"]))).json()
        assert {t["id"] for t in listed["items"]} == {tm_target["id"], manual_target["id"]}
        assert listed["next_cursor"] is None

        added = change(acct, stoplist, "4520123456", reason='said "stop"')
        await publish(added)
        entry = added.payload["entry"]

        tm_requests = await wait_for(lambda: fake.requests("/outbound03/"))
        assert len(tm_requests) == 1
        sent = tm_requests[0]
        assert sent["method"] == "POST"
        assert sent["path"] == "/outbound03/projects/Sales DK/dnc"
        assert sent["json"] == {"phone": "4520123456", "expires_at": "2026-12-23T10:00:00.000Z"}
        assert sent["headers"]["idempotency-key"]
        manual_requests = await wait_for(lambda: fake.requests("/hooks/dnc"))
        hook = manual_requests[0]
        assert hook["method"] == "PUT"
        assert hook["headers"]["authorization"] == "Bearer s3cret-token-value"
        assert hook["headers"]["x-team"] == "crm"
        assert hook["json"] == {
            "number": "4520123456",
            "kind": "phone",
            "why": 'said "stop"',
            "list": stoplist,
            "id": entry["entry_id"],
        }
        assert hook["headers"]["idempotency-key"] != sent["headers"]["idempotency-key"]

        [log] = await _settled(c, tm_target["id"], acct, 1, "delivered")
        assert (log["entry_id"], log["attempts"], log["last_error"]) == (entry["entry_id"], 1, None)
        assert log["request"]["url"].endswith("/outbound03/projects/Sales%20DK/dnc")
        assert log["response"]["status"] == 201
        await _settled(c, manual_target["id"], acct, 1, "delivered")
        manual_log = (await _deliveries(c, manual_target["id"], acct))[0]
        assert manual_log["request"]["headers"]["Authorization"] == "Bear…***"
        status = (await c.get(f"/v1/targets/{tm_target['id']}", headers=me)).json()["status"]
        assert status["last_success_at"] is not None
        assert status["backlog"] == 0

        # The same event again, and another event for the same entry: delivered once per target.
        await publish(added)
        await publish(change(acct, stoplist, "4520123456", entry_id=entry["entry_id"]))
        sentinel = change(acct, stoplist, "4520999999")
        await publish(sentinel)
        await _settled(c, tm_target["id"], acct, 2, "delivered")
        tm_requests = await fake.requests("/outbound03/")
        assert [r["json"]["phone"] for r in tm_requests] == ["4520123456", "4520999999"]

        # A null body_template sends the SuppressionChanged entry as JSON.
        raw = await c.post(
            f"/v1/stoplists/{stoplist.upper()}/targets",
            json={"type": "MANUAL", "url": f"{fake.base_url}/hooks/raw", "body_template": None},
            headers=me,
        )
        assert raw.status_code == 201
        assert raw.json()["stoplist_id"] == stoplist
        email = change(acct, stoplist, "opt.out@example.com", id_type="email")
        await publish(email)
        [raw_request] = await wait_for(lambda: fake.requests("/hooks/raw"))
        assert raw_request["method"] == "POST"
        assert raw_request["json"] == email.payload["entry"]


async def test_target_validation_roles_and_tenancy(start_service: StartService, fake: Any) -> None:
    svc = await start_outbound(start_service, fake)
    acct, stoplist = account(), str(uuid.uuid4())
    me = auth(acct)
    async with httpx.AsyncClient(base_url=svc.base_url) as c:
        url = f"/v1/stoplists/{stoplist}/targets"
        for body, field in [
            ({"type": "MANUAL", "url": "ftp://example.com/dnc"}, "url"),
            ({"type": "MANUAL", "url": "not a url"}, "url"),
            (
                {"type": "MANUAL", "url": "https://x.example/dnc", "body_template": "{{phone}}"},
                "body_template",
            ),
            ({"type": "MANUAL", "url": "https://x.example/dnc", "method": "TRACE"}, "method"),
            (
                {"type": "MANUAL", "url": "https://x.example/dnc", "headers": {"Bad Name": "x"}},
                "headers.Bad Name",
            ),
            ({"type": "TM", "system": "08", "project": "p"}, "system"),
            ({"type": "TM", "system": "001", "project": "p"}, "system"),
            ({"type": "TM", "system": "01"}, "project"),
            ({"type": "FAX", "system": "01", "project": "p"}, "type"),
        ]:
            r = await c.post(url, json=body, headers=me)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["error"]["details"][0]["field"] == field, r.text
        unknown = await c.post(
            url, json={"type": "MANUAL", "url": "https://x.example", "body_template": "{{nope}}"}, headers=me
        )
        assert unknown.json()["error"]["details"][0]["placeholders"] == ["nope"]

        assert (await c.post(url, json={"type": "TM", "system": "01", "project": "p"})).status_code == 401
        viewer = auth(acct, ["VIEWER"])
        assert (
            await c.post(url, json={"type": "TM", "system": "01", "project": "p"}, headers=viewer)
        ).status_code == 403
        created = await c.post(url, json={"type": "TM", "system": 1, "project": "p"}, headers=me)
        assert created.status_code == 201
        assert created.json()["system"] == "01"
        target = created.json()
        tid = target["id"]

        other = auth("someone-else")
        assert (await c.get(f"/v1/targets/{tid}", headers=other)).status_code == 404
        assert (await c.patch(f"/v1/targets/{tid}", json={"active": False}, headers=other)).status_code == 404
        assert (await c.delete(f"/v1/targets/{tid}?confirm=true", headers=other)).status_code == 404
        assert (await c.get(f"/v1/targets/{tid}/deliveries", headers=other)).status_code == 404
        bogus = await c.get(f"/v1/targets/{tid}/deliveries?status=lost", headers=me)
        assert bogus.status_code == 400
        assert bogus.json()["error"]["code"] == "unknown_status"
        assert bogus.json()["error"]["details"] == ["pending", "delivered", "failed", "dead"]
        assert (await c.get(f"/v1/stoplists/{stoplist}/targets", headers=other)).json()["items"] == []
        assert (await c.get(f"/v1/stoplists/{uuid.uuid4()}/targets/{tid}", headers=me)).status_code == 404

        patched = await c.patch(
            f"/v1/stoplists/{stoplist}/targets/{tid}", json={"project": "q", "expires_in_days": 7}, headers=me
        )
        assert patched.status_code == 200, patched.text
        assert (patched.json()["project"], patched.json()["expires_in_days"]) == ("q", 7)
        assert patched.json()["url"].endswith("/outbound01/projects/q/dnc")
        assert (await c.patch(f"/v1/targets/{tid}", json={"system": "9"}, headers=me)).status_code == 422
        assert (await c.patch(f"/v1/targets/{tid}", json={"type": "MANUAL"}, headers=me)).status_code == 422

        hook = await c.post(
            url,
            json={
                "type": "MANUAL",
                "url": "https://x.example/a",
                "headers": {"X-Api-Key": "key-0123456789abcdef"},
            },
            headers=me,
        )
        hid = hook.json()["id"]
        echoed = await c.patch(
            f"/v1/targets/{hid}",
            json={"url": "https://x.example/b", "headers": {**hook.json()["headers"], "X-Extra": "1"}},
            headers=me,
        )
        assert echoed.status_code == 200, echoed.text
        assert echoed.json()["headers"] == {"X-Api-Key": "key-…***", "X-Extra": "1"}

        no_confirm = await c.delete(f"/v1/targets/{tid}", headers=me)
        assert no_confirm.status_code == 400
        assert no_confirm.json()["error"]["code"] == "confirmation_required"
        assert (
            await c.delete(f"/v1/stoplists/{stoplist}/targets/{tid}?confirm=true", headers=me)
        ).status_code == 204
        assert (await c.get(f"/v1/targets/{tid}", headers=me)).status_code == 404
        assert (await c.delete(f"/v1/targets/{hid}?confirm=true", headers=me)).status_code == 204


async def _tm_target(
    c: httpx.AsyncClient, acct: str, stoplist: str, system: str, project: str, **more: Any
) -> str:
    r = await c.post(
        f"/v1/stoplists/{stoplist}/targets",
        json={"type": "TM", "system": system, "project": project, **more},
        headers=auth(acct),
    )
    assert r.status_code == 201, r.text
    target_id: str = r.json()["id"]
    return target_id


async def test_retries_backoff_retry_after_failures_and_manual_retry(
    start_service: StartService, fake: Any, publish: Any
) -> None:
    svc = await start_outbound(start_service, fake)
    acct = account()
    lists = {name: str(uuid.uuid4()) for name in ("p503", "p429", "p400", "p500", "order")}
    await fake.behave(match="/outbound01/projects/p503/", fail_status=503, fail_times=2)
    await fake.behave(match="/outbound01/projects/p429/", fail_status=429, fail_times=1, retry_after=1)
    await fake.behave(match="/outbound01/projects/p400/", fail_status=400)
    await fake.behave(match="/outbound01/projects/p500/", fail_status=500)
    await fake.behave(match="/outbound01/projects/order/", fail_status=503, fail_times=1)
    async with httpx.AsyncClient(base_url=svc.base_url) as c:
        targets = {name: await _tm_target(c, acct, sl, "01", name) for name, sl in lists.items()}
        for name, sl in lists.items():
            await publish(change(acct, sl, "4520123456", reason=name))
        later = change(acct, lists["order"], "4520123456", reason="second")
        await publish(later)

        # Order per identifier: the second entry waits until the first one's retry went through.
        in_order = await _settled(c, targets["order"], acct, 2, "delivered")
        key_of = {d["entry_id"]: d["request"]["headers"]["Idempotency-Key"] for d in in_order}
        first_key_order = next(k for e, k in key_of.items() if e != later.payload["entry"]["entry_id"])
        sequence = [
            r["headers"]["idempotency-key"] for r in await fake.requests("/outbound01/projects/order/")
        ]
        assert sequence == [first_key_order, first_key_order, key_of[later.payload["entry"]["entry_id"]]]

        # 503 twice, then accepted: three requests with one Idempotency-Key.
        [ok] = await _settled(c, targets["p503"], acct, 1, "delivered")
        assert ok["attempts"] == 3
        tries = await fake.requests("/outbound01/projects/p503/")
        assert len(tries) == 3
        assert len({t["headers"]["idempotency-key"] for t in tries}) == 1

        # 429 with Retry-After: 1 → the next try waits at least that long (the backoff base is 0.05 s).
        await _settled(c, targets["p429"], acct, 1, "delivered")
        limited = await fake.requests("/outbound01/projects/p429/")
        assert len(limited) == 2
        assert limited[1]["received_at"] - limited[0]["received_at"] >= 0.95

        # 400 is final: failed after one request, with the response summary; never retried by itself.
        [failed] = await _settled(c, targets["p400"], acct, 1, "failed")
        assert failed["attempts"] == 1
        assert failed["last_error"].startswith("HTTP 400")
        assert failed["response"]["status"] == 400
        [first_try] = await fake.requests("/outbound01/projects/p400/")
        first_key = first_try["headers"]["idempotency-key"]
        target = (await c.get(f"/v1/targets/{targets['p400']}", headers=auth(acct))).json()
        assert target["status"]["last_error"].startswith("HTTP 400")

        # 500 every time: dead after the retry budget (DELIVERY_MAX_ATTEMPTS=4).
        [dead] = await _settled(c, targets["p500"], acct, 1, "dead")
        assert dead["attempts"] == 4
        assert len(await fake.requests("/outbound01/projects/p500/")) == 4

        # The operator fixes the far end and retries by hand: same Idempotency-Key, delivered.
        await fake.reset()
        retried = await c.post(
            f"/v1/targets/{targets['p400']}/deliveries/{failed['id']}:retry", headers=auth(acct, ["VIEWER"])
        )
        assert retried.status_code == 403
        other = await c.post(
            f"/v1/targets/{targets['p400']}/deliveries/{failed['id']}:retry", headers=auth("x")
        )
        assert other.status_code == 404
        retried = await c.post(
            f"/v1/targets/{targets['p400']}/deliveries/{failed['id']}:retry", headers=auth(acct)
        )
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "pending"
        await _settled(c, targets["p400"], acct, 1, "delivered")
        [again] = await fake.requests("/outbound01/projects/p400/")
        assert again["headers"]["idempotency-key"] == first_key
        assert failed["request"]["headers"]["Idempotency-Key"] == first_key


async def test_hanging_target_delays_no_other_and_paused_target_waits(
    start_service: StartService, fake: Any, publish: Any
) -> None:
    svc = await start_outbound(start_service, fake, DELIVERY_TIMEOUT_S="60")
    acct, stoplist = account(), str(uuid.uuid4())
    await fake.behave(match="/outbound02/", hang=True)
    async with httpx.AsyncClient(base_url=svc.base_url) as c:
        hanging = await _tm_target(c, acct, stoplist, "02", "slow")
        healthy = await _tm_target(c, acct, stoplist, "01", "fast")
        paused = await _tm_target(c, acct, stoplist, "04", "later", active=False)
        phones = [f"452012345{i}" for i in range(3)]
        for phone in phones:
            await publish(change(acct, stoplist, phone))

        await _settled(c, healthy, acct, 3, "delivered")
        page = (await c.get(f"/v1/targets/{healthy}/deliveries?limit=2", headers=auth(acct))).json()
        assert len(page["items"]) == 2
        rest = await c.get(
            f"/v1/targets/{healthy}/deliveries?limit=2&cursor={page['next_cursor']}", headers=auth(acct)
        )
        assert len(rest.json()["items"]) == 1
        assert rest.json()["next_cursor"] is None
        assert sorted(r["json"]["phone"] for r in await fake.requests("/outbound01/")) == phones

        async def hanging_reached() -> bool:  # arrived, still unanswered; the lane's round holds the rest
            return len(await fake.requests("/outbound02/")) >= 1

        await wait_for(hanging_reached, timeout=30)
        assert await fake.requests("/outbound04/") == []
        slow = (await c.get(f"/v1/targets/{hanging}", headers=auth(acct))).json()
        assert slow["status"]["backlog"] == 3
        assert slow["status"]["last_success_at"] is None
        waiting = (await c.get(f"/v1/targets/{paused}", headers=auth(acct))).json()
        assert waiting["active"] is False
        assert waiting["status"]["backlog"] == 3

        resumed = await c.patch(f"/v1/targets/{paused}", json={"active": True}, headers=auth(acct))
        assert resumed.json()["active"] is True
        await _settled(c, paused, acct, 3, "delivered")
        assert sorted(r["json"]["phone"] for r in await fake.requests("/outbound04/")) == phones

        await fake.reset()  # the hanging server answers at last
        await _settled(c, hanging, acct, 3, "delivered")


async def test_backfill_sends_live_entries_known_from_the_topic(
    start_service: StartService, fake: Any, publish: Any
) -> None:
    svc = await start_outbound(start_service, fake)
    acct, stoplist = account(), str(uuid.uuid4())
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    async with httpx.AsyncClient(base_url=svc.base_url) as c:
        first = await _tm_target(c, acct, stoplist, "05", "first")
        old = change(acct, stoplist, "4520000001", occurred_at=long_ago)
        gone = change(acct, stoplist, "4520000002", occurred_at=long_ago)
        removed = change(
            acct, stoplist, "4520000002", op="removed", entry_id=gone.payload["entry"]["entry_id"]
        )
        expired = change(
            acct, stoplist, "4520000003", occurred_at=long_ago, expires_at="2026-01-02T00:00:00.000Z"
        )
        fresh = change(acct, stoplist, "4520000001", entry_id=str(uuid.uuid4()))
        for env in (old, gone, removed, expired, fresh):
            await publish(env)
        # Events before the target existed are not pushed; the fresh one (same key, so after them) is.
        await _settled(c, first, acct, 1, "delivered")
        assert [r["json"]["phone"] for r in await fake.requests("/outbound05/")] == ["4520000001"]

        r = await c.post(
            f"/v1/stoplists/{stoplist}/targets",
            json={"type": "TM", "system": "06", "project": "late", "backfill": True},
            headers=auth(acct),
        )
        assert r.status_code == 201, r.text
        assert r.json()["backfill"] == {"queued": 2}
        late = await _settled(c, r.json()["id"], acct, 2, "delivered")
        assert {d["entry_id"] for d in late} == {
            old.payload["entry"]["entry_id"],
            fresh.payload["entry"]["entry_id"],
        }


async def test_two_instances_never_send_an_entry_twice(
    start_service: StartService, fake: Any, publish: Any
) -> None:
    first = await start_outbound(start_service, fake)
    second = await start_outbound(start_service, fake)
    acct, stoplist = account(), str(uuid.uuid4())
    await fake.behave(match="/outbound07/", delay_ms=20)  # slow enough that both workers find due rows
    async with httpx.AsyncClient(base_url=first.base_url) as c:
        target = await _tm_target(c, acct, stoplist, "07", "shared")
        phones = [f"45201{i:05d}" for i in range(40)]
        for phone in phones:
            await publish(change(acct, stoplist, phone))
        await _settled(c, target, acct, 40, "delivered")
        sent = [r["json"]["phone"] for r in await fake.requests("/outbound07/")]
        assert sorted(sent) == sorted(phones)
        async with httpx.AsyncClient(base_url=second.base_url) as c2:
            metrics = (await c.get("/metrics")).text + (await c2.get("/metrics")).text
        assert f'dialguard_outbound_delivered_total{{target="{target}"}}' in metrics


async def test_a_killed_instances_leased_rows_go_out_in_seconds_not_a_lease_later(
    start_service: StartService, fake: Any, publish: Any
) -> None:
    """With these settings a lease lasts 8 x (2 + 1) + 30 = 54 s; the next instance must not wait it out."""
    first = await start_outbound(start_service, fake)
    acct, stoplist = account(), str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=first.base_url) as c:
        target = await _tm_target(c, acct, stoplist, "06", "takeover")
    await fake.behave(match="/outbound06/", hang=True)
    phones = [f"45206{i:05d}" for i in range(10)]
    for phone in phones:
        await publish(change(acct, stoplist, phone))

    async def all_hanging() -> bool:  # every row is leased by the first instance, and in flight
        return len({r["json"]["phone"] for r in await fake.requests("/outbound06/")}) == len(phones)

    await wait_for(all_hanging, timeout=20)
    first.kill()
    await fake.client.delete("/_behaviour")
    started = asyncio.get_running_loop().time()
    second = await start_outbound(start_service, fake)
    async with httpx.AsyncClient(base_url=second.base_url) as c:
        await _settled(c, target, acct, len(phones), "delivered")
    assert asyncio.get_running_loop().time() - started < 30  # start-up included, well under 54 s
