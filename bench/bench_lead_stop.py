"""LeadStopped published → the check API answers suppressed: latency at a fixed event rate.

Events go to leads.stopped.v1 at `rate`/s on an open-loop schedule (latency counts from the
intended send time, so a stall cannot hide itself). One poller asks POST /v1/check for every
phone still outstanding every `poll_ms` and records when each first answers suppressed; the
figures therefore include up to one poll interval, which is reported alongside.

A warm-up second at the same rate, for the same account and other phones, runs first and is not
counted: it takes the one-off costs a service that has been up for a while has already paid (the
account's default stoplist and first filter, each pooled connection's prepared statements).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from dialguard.events.envelope import Envelope
from dialguard.events.topics import LEADS_STOPPED
from dialguard.testing.helpers import auth


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] * 1000, 2) if s else float("nan")


async def _stop_and_watch(
    client: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    *,
    account: str,
    phones: list[str],
    rate: int,
    poll_ms: float,
) -> list[float]:
    """Publish one LeadStopped per phone at `rate`/s; seconds from each intended send to its first suppressed answer."""
    headers = auth(account, ["DIALER"])
    sent: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        while not (done.is_set() and not sent):
            if sent:
                r = await client.post(
                    "/v1/check",
                    json={"identifiers": [{"type": "phone", "value": p} for p in list(sent)]},
                    headers=headers,
                )
                r.raise_for_status()
                now = time.perf_counter()
                for result in r.json()["results"]:
                    phone = result["identifier"]["value"]
                    if result["suppressed"] and phone in sent:
                        latencies.append(now - sent.pop(phone))
            await asyncio.sleep(poll_ms / 1000)

    poller = asyncio.create_task(poll())
    started = time.perf_counter()
    futures = []
    try:
        for i, phone in enumerate(phones):
            intended = started + i / rate
            delay = intended - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            envelope = Envelope(
                event_type="LeadStopped",
                account_id=account,
                producer="bench",
                payload={"identifier": {"type": "phone", "value": phone}, "source": "end_user_message"},
            )
            sent[phone] = intended
            futures.append(
                await producer.send(
                    LEADS_STOPPED, envelope.to_bytes(), key=f"{account}:phone:{phone}".encode()
                )
            )
        await asyncio.gather(*futures)
        done.set()
        await asyncio.wait_for(poller, timeout=120)
    finally:
        poller.cancel()
    return latencies


async def lead_stop_latency(
    base_url: str, bootstrap: str, *, rate: int = 500, seconds: int = 10, poll_ms: float = 5.0
) -> dict[str, Any]:
    """p50/p99 from a LeadStopped event's intended send time to the first suppressed check answer."""
    account = f"lead-stop-{uuid.uuid4().hex[:8]}"
    n = rate * seconds
    phones = [f"1267234{i:04d}" for i in range(n)]  # distinct valid US numbers (n ≤ 10,000)
    warm_up = [f"1267235{i:04d}" for i in range(rate)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            kw: dict[str, Any] = {"account": account, "rate": rate, "poll_ms": poll_ms}
            await _stop_and_watch(client, producer, phones=warm_up, **kw)
            latencies = await _stop_and_watch(client, producer, phones=phones, **kw)
    finally:
        await producer.stop()
    return {
        "events": n,
        "warm_up_events": len(warm_up),
        "rate_per_s": rate,
        "answered": len(latencies),
        "poll_interval_ms": poll_ms,
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
        "max_ms": _pct(latencies, 100),
    }
