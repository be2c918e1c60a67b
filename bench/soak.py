"""make soak: all four services under a steady, bounded mixed load; memory and consumer lag plotted.

Load (loopback only, fixed rates): LeadStopped and LeadUnstopped events, single checks and 1,000-id
batch checks against suppression, lead searches against lead-action; every SuppressionChanged
fans out to contact-list, lead-action and outbound-sync. Every SAMPLE_S seconds: resident memory of
each service process and each service's consumer lag (its dialguard_consumer_lag gauge). Writes bench/results/soak.csv and soak.png and prints a verdict: memory slope over the
second half (MB/min) and lag at the end. SOAK_MINUTES (default 30), SOAK_EVENT_RATE (default 100/s).
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from dialguard.events.envelope import Envelope  # noqa: E402
from dialguard.events.topics import LEADS_STOPPED, TOPICS  # noqa: E402
from dialguard.messaging.admin import ensure_topics  # noqa: E402
from dialguard.testing.helpers import SECRET, auth  # noqa: E402
from dialguard.testing.local_stack import LocalStack  # noqa: E402
from dialguard.testing.services import ServiceProcess, provision_all, service_env  # noqa: E402

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
EVENT_RATE = float(os.environ.get("SOAK_EVENT_RATE", "100"))
SAMPLE_S = 10.0
SERVICES = ("suppression", "contact-list", "lead-action", "outbound-sync")
ACCOUNT = "soak"


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), from /proc."""
    total, stack, seen = 0, [pid], set()
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        stack.extend(children.get(p, []))
    return total / 1024


async def service_lag(client: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, float]:
    """Per service: messages its consumers are behind (the dialguard_consumer_lag gauge ops watch)."""
    lag: dict[str, float] = {}
    for service, url in urls.items():
        text = (await client.get(f"{url}/metrics")).text
        lag[service] = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("dialguard_consumer_lag{")
        )
    return lag


async def events(bootstrap: str, stop: asyncio.Event, counts: dict[str, int]) -> None:
    """LeadStopped for a fresh phone, and every tenth an unstop of an earlier one, at EVENT_RATE."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        started, i = time.perf_counter(), 0
        while not stop.is_set():
            phone = f"1267{2000000 + i % 8000000:07d}"
            kind = "LeadUnstopped" if i % 10 == 9 else "LeadStopped"
            if kind == "LeadUnstopped":
                phone = f"1267{2000000 + (i - 5) % 8000000:07d}"
            env = Envelope(
                event_type=kind,
                account_id=ACCOUNT,
                producer="soak",
                payload={"identifier": {"type": "phone", "value": phone}},
            )
            await producer.send(LEADS_STOPPED, env.to_bytes(), key=f"{ACCOUNT}:phone:{phone}".encode())
            counts["events"] += 1
            i += 1
            delay = started + i / EVENT_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        await producer.stop()


async def http_load(urls: dict[str, str], stop: asyncio.Event, counts: dict[str, int]) -> None:
    """Single checks at 50/s, a 1,000-id batch check and a lead search every second."""
    dialer, manager = auth(ACCOUNT, ["DIALER"]), auth(ACCOUNT, ["OUTBOUND_MANAGER"])
    batch = {"identifiers": [{"type": "phone", "value": f"1267{3000000 + k:07d}"} for k in range(1000)]}
    async with httpx.AsyncClient(timeout=30) as c:
        tick = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            for k in range(50):
                value = f"1267{2000000 + (tick * 50 + k) % 100000:07d}"
                r = await c.get(
                    f"{urls['suppression']}/v1/check",
                    params={"type": "phone", "value": value},
                    headers=dialer,
                )
                counts["errors"] += r.status_code != 200
            r = await c.post(f"{urls['suppression']}/v1/check", json=batch, headers=dialer)
            counts["errors"] += r.status_code != 200
            r = await c.post(
                f"{urls['lead-action']}/v1/admin/accounts/{ACCOUNT}/campaignLeads/search",
                json={"campaignLeadSearchCriteria": {"leadPhoneNumbers": ["12672000001"]}},
                headers=manager,
            )
            counts["errors"] += r.status_code != 200
            counts["requests"] += 52
            tick += 1
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)))


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["t_s"] / 60 for r in rows]
    fig, (mem, lag) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for s in SERVICES:
        mem.plot(minutes, [r[f"rss_{s}"] for r in rows], label=s)
    mem.set_ylabel("resident memory, MB")
    mem.legend(loc="upper left")
    mem.set_title(f"soak: {EVENT_RATE:.0f} events/s + 52 HTTP req/s for {MINUTES:.0f} min")
    groups = sorted({k for r in rows for k in r if k.startswith("lag_")})
    for g in groups:
        lag.plot(minutes, [r.get(g, 0) for r in rows], label=g[4:])
    lag.set_ylabel("consumer lag, messages")
    lag.set_xlabel("minutes")
    lag.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def slope_mb_per_min(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 60


async def main() -> None:
    results = HERE / "results"
    results.mkdir(parents=True, exist_ok=True)
    stack = LocalStack(REPO / ".local" / f"soak-{os.getpid()}")
    await asyncio.to_thread(stack.start)
    procs: list[ServiceProcess] = []
    try:
        await ensure_topics(stack.kafka_bootstrap, TOPICS)
        dsns = await provision_all(stack.postgres_admin_url)
        for s in SERVICES:
            env = service_env(
                kafka=stack.kafka_bootstrap, database_url=dsns[s], redis_url=stack.redis_url, secret=SECRET
            )
            proc = ServiceProcess(s, env, REPO / ".local" / "soak-logs")
            await proc.start(timeout=180)
            procs.append(proc)
        urls = {p.service: p.base_url for p in procs}
        stop = asyncio.Event()
        counts = {"events": 0, "requests": 0, "errors": 0}
        load = [
            asyncio.create_task(events(stack.kafka_bootstrap, stop, counts)),
            asyncio.create_task(http_load(urls, stop, counts)),
        ]
        rows: list[dict[str, Any]] = []
        probe = httpx.AsyncClient(timeout=10)
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < MINUTES * 60:
            await asyncio.sleep(SAMPLE_S)
            row: dict[str, Any] = {"t_s": round(time.perf_counter() - started, 1), **counts}
            for p in procs:
                row[f"rss_{p.service}"] = round(rss_mb(p.proc.pid), 1) if p.proc else 0.0
            row.update({f"lag_{s}": n for s, n in (await service_lag(probe, urls)).items()})
            rows.append(row)
            print(row, flush=True)
            del elapsed
        stop.set()
        await asyncio.gather(*load, return_exceptions=True)
        await asyncio.sleep(SAMPLE_S)  # let consumers drain, then one last lag reading
        final_lag = await service_lag(probe, urls)
        fields = sorted({k for r in rows for k in r}, key=lambda k: (k != "t_s", k))
        with (results / "soak.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        plot(rows, results / "soak.png")
        half = [r for r in rows if r["t_s"] >= rows[-1]["t_s"] / 2]
        print(
            f"\nsoak {MINUTES:.0f} min: {counts['events']} events, {counts['requests']} requests, {counts['errors']} errors"
        )
        print("| service | RSS start MB | RSS end MB | slope, 2nd half (MB/min) |")
        print("|---|---|---|---|")
        for s in SERVICES:
            ys = [r[f"rss_{s}"] for r in half]
            slope = slope_mb_per_min([r["t_s"] for r in half], ys)
            print(f"| {s} | {rows[0][f'rss_{s}']} | {rows[-1][f'rss_{s}']} | {slope:+.2f} |")
        print(f"lag after drain: {final_lag}")
        print(f"written: {results / 'soak.csv'}, {results / 'soak.png'}")
        await probe.aclose()
    finally:
        for p in procs:
            await p.stop()
        stack.destroy()


if __name__ == "__main__":
    asyncio.run(main())
