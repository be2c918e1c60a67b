"""Contact-list benchmark against a running service: validate and commit of a telephony CSV with 3 units per
contact through HTTP, then SuppressionChanged -> flagged-count update throughput through the broker.

    python bench/bench_contact_list.py --url http://127.0.0.1:8002 --token "$TOKEN" \
        --kafka 127.0.0.1:9092 --n 2000

The token must carry OUTBOUND_MANAGER; events are published for the token's account.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import sys
import time
import uuid
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from publish import publish_batches

from dialguard.events.envelope import envelope_bytes
from dialguard.events.topics import SUPPRESSION_CHANGES


def account_of(token: str) -> str:
    """The account claim of the (trusted, our own) token, without verifying it."""
    body = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return str(claims["account_id"])


def phones(i: int) -> tuple[str, str]:
    """Two valid, distinct US numbers per contact (exchange 200-999, line 0000-9999)."""
    exchange, line = 200 + (i // 10_000) % 800, i % 10_000
    return f"1267{exchange:03d}{line:04d}", f"1215{exchange:03d}{line:04d}"


def telephony_csv(n: int) -> bytes:
    """n contacts, each with a phone, a second phone and an email (3 units), plus plain fields."""
    out = io.StringIO()
    out.write("phone,phone2,email,first_name,city\n")
    for i in range(n):
        p1, p2 = phones(i)
        out.write(f"{p1},{p2},c{i}@example.com,Name{i},City{i % 50}\n")
    return out.getvalue().encode()


async def wait_import(c: httpx.AsyncClient, import_id: str, status: str, timeout: float) -> dict[str, Any]:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        body: dict[str, Any] = (await c.get(f"/v1/imports/{import_id}")).json()
        if body["status"] == status:
            return body
        if body["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"import ended {body['status']}: {body.get('error')}")
        await asyncio.sleep(0.05)
    raise TimeoutError(f"import not {status} in {timeout}s")


async def wait_flagged(c: httpx.AsyncClient, list_id: str, n: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    flagged = 0
    while time.perf_counter() < deadline:
        flagged = (await c.get(f"/v1/contact-lists/{list_id}")).json()["counts"]["flagged"]
        if flagged >= n:
            return time.perf_counter()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"only {flagged}/{n} contacts flagged in {timeout}s")


def suppression_event(account: str, id_type: str, value: str) -> tuple[bytes, bytes]:
    """One SuppressionChanged(added) as the suppression service's relay publishes it (key account:type:value)."""
    entry_id = str(uuid.uuid4())
    value_bytes = envelope_bytes(
        event_id=uuid.uuid4(),
        event_type="SuppressionChanged",
        occurred_at="2026-11-23T10:00:00.000Z",
        account_id=account,
        producer="bench",
        payload={
            "op": "added",
            "entry": {
                "entry_id": entry_id,
                "stoplist_id": str(uuid.uuid4()),
                "identifier": {"type": id_type, "value": value},
                "channel": None,
                "sender": None,
                "source": "api",
                "reason": "bench",
                "added_at": "2026-11-23T10:00:00.000Z",
                "expires_at": None,
            },
            "suppressed": True,
        },
    )
    return f"{account}:{id_type}:{value}".encode(), value_bytes


async def run(url: str, token: str, kafka: str, n: int, timeout: float) -> dict[str, Any]:
    account = account_of(token)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as c:
        r = await c.post(
            "/v1/contact-lists", json={"name": f"bench-{uuid.uuid4().hex[:8]}", "kind": "telephony"}
        )
        r.raise_for_status()
        list_id = r.json()["id"]
        data = telephony_csv(n)

        started = time.perf_counter()
        r = await c.post(
            f"/v1/contact-lists/{list_id}/imports",
            files={"file": ("bench.csv", data, "text/csv")},
            data={"consent_confirmed": "true"},
        )
        r.raise_for_status()
        import_id = r.json()["import_id"]
        validated = await wait_import(c, import_id, "validated", timeout)
        validate_s = time.perf_counter() - started
        if validated["valid"] != n:
            raise RuntimeError(f"expected {n} valid rows, got {validated}")

        started = time.perf_counter()
        (await c.post(f"/v1/imports/{import_id}/commit")).raise_for_status()
        await wait_import(c, import_id, "completed", timeout)
        commit_s = time.perf_counter() - started

        producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=5, max_batch_size=1 << 20)
        await producer.start()
        try:
            events = []
            for i in range(n):
                p1, p2 = phones(i)
                events += [
                    suppression_event(account, "phone", p1),
                    suppression_event(account, "phone", p2),
                    suppression_event(account, "email", f"c{i}@example.com"),
                ]
            started = time.perf_counter()
            await asyncio.gather(
                *await publish_batches(producer, SUPPRESSION_CHANGES, events, "SuppressionChanged")
            )
            published_s = time.perf_counter() - started
            done = await wait_flagged(c, list_id, n, timeout)
            flag_s = done - started
        finally:
            await producer.stop()
        (await c.delete(f"/v1/contact-lists/{list_id}?confirm=true")).raise_for_status()
    return {
        "n_contacts": n,
        "units_per_contact": 3,
        "file_bytes": len(data),
        "validate_s": round(validate_s, 3),
        "validate_rows_per_s": round(n / validate_s, 1),
        "commit_s": round(commit_s, 3),
        "commit_contacts_per_s": round(n / commit_s, 1),
        "suppression_events": len(events),
        "suppression_publish_s": round(published_s, 3),
        "flagged_after_s": round(flag_s, 3),
        "suppression_events_per_s": round(len(events) / flag_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8002", help="contact-list service base URL")
    parser.add_argument("--token", required=True, help="OUTBOUND_MANAGER token of the account to use")
    parser.add_argument("--kafka", default="127.0.0.1:9092", help="broker bootstrap servers")
    parser.add_argument("--n", type=int, default=2000, help="contacts in the generated file")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each phase")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.url, args.token, args.kafka, args.n, args.timeout))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n"
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
