"""Contact-list benchmark against a running service: validate and commit of a telephony CSV with 3 units per
contact through HTTP, then SuppressionChanged -> flagged-count update throughput through the broker.

    python bench/bench_contact_list.py --url http://127.0.0.1:8002 --token "$TOKEN" \
        --kafka 127.0.0.1:9092 --n 2000
    python bench/bench_contact_list.py --local --n 1000000     # own stack + service, fresh account

The token must carry OUTBOUND_MANAGER; events are published for the token's account.

Uploads are limited to 20 MB (CONTRACT §5) and a 3-unit row is ~60 bytes, so more than ~330,000
contacts do not fit one file: the rows are then uploaded as several files of equal size below the limit
into the same list, one after another (validate, commit, next), and validate_s / commit_s are the sums.
The events phase flags the first --event-contacts contacts (3 events each; default 100,000).
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


MAX_UPLOAD = 20 * 1024 * 1024


def telephony_parts(n: int) -> list[bytes]:
    """The n-contact file, or equal parts of it (same header) that each fit the upload limit."""
    data = telephony_csv(n)
    if len(data) <= MAX_UPLOAD:
        return [data]
    header, _, body = data.partition(b"\n")
    lines = body.splitlines(keepends=True)
    parts = -(-len(data) // (MAX_UPLOAD - 64 * 1024))
    size = -(-len(lines) // parts)
    return [header + b"\n" + b"".join(lines[i : i + size]) for i in range(0, len(lines), size)]


async def run(
    url: str, token: str, kafka: str, n: int, timeout: float, event_contacts: int | None = None
) -> dict[str, Any]:
    account = account_of(token)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as c:
        r = await c.post(
            "/v1/contact-lists", json={"name": f"bench-{uuid.uuid4().hex[:8]}", "kind": "telephony"}
        )
        r.raise_for_status()
        list_id = r.json()["id"]
        parts = telephony_parts(n)
        validate_s = commit_s = 0.0
        for number, data in enumerate(parts, 1):
            rows = data.count(b"\n") - 1
            started = time.perf_counter()
            r = await c.post(
                f"/v1/contact-lists/{list_id}/imports",
                files={"file": (f"bench-{number}.csv", data, "text/csv")},
                data={"consent_confirmed": "true"},
            )
            r.raise_for_status()
            import_id = r.json()["import_id"]
            validated = await wait_import(c, import_id, "validated", timeout)
            validate_s += time.perf_counter() - started
            if validated["valid"] != rows:
                raise RuntimeError(f"expected {rows} valid rows, got {validated}")

            started = time.perf_counter()
            (await c.post(f"/v1/imports/{import_id}/commit")).raise_for_status()
            done = await wait_import(c, import_id, "completed", timeout)
            commit_s += time.perf_counter() - started
            if done["counts"]["imported"] != rows:
                raise RuntimeError(f"expected {rows} imported, got {done}")
            print(
                f"file {number}/{len(parts)}: {rows} rows, validate+commit so far "
                f"{validate_s:.1f} s + {commit_s:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        flag_n = min(n, event_contacts if event_contacts is not None else 100_000)
        events_result = await flag_contacts(c, account, kafka, list_id, flag_n, timeout) if flag_n else {}
        (await c.delete(f"/v1/contact-lists/{list_id}?confirm=true")).raise_for_status()
    return {
        "n_contacts": n,
        "units_per_contact": 3,
        "files": len(parts),
        "file_bytes": sum(len(p) for p in parts),
        "validate_s": round(validate_s, 3),
        "validate_rows_per_s": round(n / validate_s, 1),
        "commit_s": round(commit_s, 3),
        "commit_contacts_per_s": round(n / commit_s, 1),
        "flagged_contacts": flag_n,
        **events_result,
    }


async def flag_contacts(
    c: httpx.AsyncClient, account: str, kafka: str, list_id: str, n: int, timeout: float
) -> dict[str, Any]:
    """SuppressionChanged(added) for each unit of the first n contacts; time until n are flagged."""
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
        flag_s = await wait_flagged(c, list_id, n, timeout) - started
    finally:
        await producer.stop()
    return {
        "suppression_events": len(events),
        "suppression_publish_s": round(published_s, 3),
        "flagged_after_s": round(flag_s, 3),
        "suppression_events_per_s": round(len(events) / flag_s, 1),
    }


async def run_local(n: int, timeout: float, event_contacts: int) -> dict[str, Any]:
    """Own stack and service (as bench/run.py starts them), a fresh account; everything stopped after."""
    import os
    from pathlib import Path

    from dialguard.events.topics import TOPICS
    from dialguard.messaging.admin import ensure_topics
    from dialguard.platform.auth import mint_token
    from dialguard.testing.helpers import SECRET
    from dialguard.testing.local_stack import LocalStack
    from dialguard.testing.services import ServiceProcess, provision_all, service_env

    repo = Path(__file__).resolve().parent.parent
    stack = LocalStack(repo / ".local" / f"bench-cl-{os.getpid()}")
    await asyncio.to_thread(stack.start)
    service: ServiceProcess | None = None
    try:
        await ensure_topics(stack.kafka_bootstrap, TOPICS)
        dsns = await provision_all(stack.postgres_admin_url)
        env = service_env(
            kafka=stack.kafka_bootstrap,
            database_url=dsns["contact-list"],
            redis_url=stack.redis_url,
            secret=SECRET,
        )
        service = ServiceProcess("contact-list", env, repo / ".local" / "bench-logs")
        await service.start(timeout=180)
        token = mint_token(
            secret=SECRET, account_id=f"bench-{uuid.uuid4().hex[:8]}", roles=["OUTBOUND_MANAGER"]
        )
        return await run(service.base_url, token, stack.kafka_bootstrap, n, timeout, event_contacts)
    finally:
        if service is not None:
            await service.stop()
        await asyncio.to_thread(stack.destroy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8002", help="contact-list service base URL")
    parser.add_argument("--token", default=None, help="OUTBOUND_MANAGER token of the account to use")
    parser.add_argument(
        "--local",
        action="store_true",
        help="start an own stack (broker, Postgres, Redis) and contact-list; --url/--token/--kafka ignored",
    )
    parser.add_argument(
        "--event-contacts",
        type=int,
        default=100_000,
        help="contacts flagged in the events phase (3 SuppressionChanged each; 0 skips it)",
    )
    parser.add_argument("--kafka", default="127.0.0.1:9092", help="broker bootstrap servers")
    parser.add_argument("--n", type=int, default=2000, help="contacts in the generated file")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each phase")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if args.local:
        result = asyncio.run(run_local(args.n, args.timeout, args.event_contacts))
    elif args.token is None:
        parser.error("--token is required unless --local")
    else:
        result = asyncio.run(run(args.url, args.token, args.kafka, args.n, args.timeout, args.event_contacts))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n"
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
