"""make bench: plumbing (outbox -> broker -> inbox) and the check API against the peer, same data, same run.

Starts its own local stack on free ports, the services it measures, and the peer (../shared/peer)
on its own ports; prints a table and writes bench/results/latest.json. BENCH_N sets the number of
stoplist entries (default 1,000,000; the issue's 10,000,000 needs ~10 minutes more of loading),
BENCH_SKIP_PEER=1 skips the peer. Then each service's own bench script (bench/bench_*.py, each says
what it measures): contact-list (BENCH_CONTACTS rows, default BENCH_N), lead-action (BENCH_LEADS
leads, default BENCH_N), outbound-sync (BENCH_DELIVERIES, default 5,000); BENCH_SKIP_SERVICES=1 skips them.
BENCH_IMPORT_ROWS (default 100,000, at most BENCH_N) sets the suppression import's size: a million-row
import also leaves a million SuppressionChanged events for the later services to catch up on first.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER = REPO.parent / "shared" / "peer"
sys.path.insert(0, str(HERE))

from bench_lead_stop import lead_stop_latency  # noqa: E402
from bench_plumbing import latency, throughput  # noqa: E402

from dialguard.events.topics import CONTACTS_IMPORTED, SUPPRESSION_CHANGES, TOPICS  # noqa: E402
from dialguard.messaging.admin import ensure_topics  # noqa: E402
from dialguard.platform.auth import mint_token  # noqa: E402
from dialguard.testing.helpers import SECRET, auth  # noqa: E402
from dialguard.testing.local_stack import LocalStack  # noqa: E402
from dialguard.testing.services import ServiceProcess, provision_all, service_env  # noqa: E402

N = int(os.environ.get("BENCH_N", "1000000"))
DATA = HERE / "data"
RESULTS = HERE / "results"


def sh(cmd: list[str], **kw: Any) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


async def load_entries(dsn: str, csv_path: Path, account: str = "acme") -> tuple[str, float]:
    """Setup, not the measured path: COPY the phones into one stoplist of the account."""
    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    try:
        stoplist_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO stoplists (id, account_id, name, record_count) VALUES ($1, $2, 'bench', $3)",
            stoplist_id,
            account,
            N,
        )
        phones = [line.strip() for line in csv_path.read_text().splitlines()[1:] if line.strip()]
        ids = [uuid.uuid4() for _ in phones]
        await conn.copy_records_to_table(
            "entries",
            records=[
                (i, account, stoplist_id, "phone", p, "import") for i, p in zip(ids, phones, strict=True)
            ],
            columns=["id", "account_id", "stoplist_id", "id_type", "value", "source"],
        )
        # As the peer's load.py does: statistics and the visibility map (index-only scans), which
        # autovacuum would otherwise set a while after a bulk load.
        await conn.execute("VACUUM (ANALYZE) entries")
    finally:
        await conn.close()
    return str(stoplist_id), time.perf_counter() - started


async def wait_cache_ready(base_url: str, account: str = "acme", timeout: float = 600) -> float:
    """Ask once (a cold filter schedules its rebuild), then wait until the filter answers."""

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as c:
        await c.get(
            "/v1/check", params={"type": "phone", "value": "12672345678"}, headers=auth(account, ["DIALER"])
        )
    return started


async def bench_checks(base_url: str, label: str, out: Path, pids: dict[str, int]) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(PEER / "bench_check.py"),
        "--base-url",
        base_url,
        "--secret",
        SECRET,
        "--account",
        "acme",
        "--present-file",
        str(DATA / "phones_present.txt"),
        "--absent-file",
        str(DATA / "phones_absent.txt"),
        "--batch-new-conn",
        "1",
        "--label",
        label,
        "--out",
        str(out),
    ]
    for name, pid in pids.items():
        cmd += ["--cpu-watch", f"{name}={pid}"]
    line = sh(cmd).strip().splitlines()[-1]
    return dict(json.loads(line))


def summary(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "batch_ids_per_s": run["batch"]["ids_per_s"],
        "batch_p99_ms": run["batch"]["req_latency"]["p99_ms"],
        "single_p50_ms": run["single_fixed_rate"]["latency_from_intended"]["p50_ms"],
        "single_p99_ms": run["single_fixed_rate"]["latency_from_intended"]["p99_ms"],
        "correct": run["correctness"]["ok"],
    }


async def import_rate(base_url: str, rows: int = 100_000) -> dict[str, Any]:
    """Import a CSV through the public API and time it to `completed`."""
    path = DATA / f"import-{rows}.csv"
    src = (DATA / "phones-000.csv").read_text().splitlines()
    path.write_text("\n".join(src[: rows + 1]) + "\n")
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as c:
        sl = (
            await c.post(
                "/v1/stoplists", json={"name": f"import-{uuid.uuid4().hex[:6]}"}, headers=auth("imp")
            )
        ).json()
        started = time.perf_counter()
        r = await c.post(
            "/v1/imports",
            files={"file": (path.name, path.read_bytes(), "text/csv")},
            data={"stoplist_ids": sl["id"], "mapping": '{"phone": "identifier"}'},
            headers=auth("imp"),
        )
        import_id = r.json()["import_id"]
        while True:
            st = (await c.get(f"/v1/imports/{import_id}", headers=auth("imp"))).json()
            if st["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.2)
    wall = time.perf_counter() - started
    return {
        "rows": rows,
        "status": st["status"],
        "seconds": round(wall, 2),
        "rows_per_s": round(rows / wall),
        "imported": st["counts"]["imported"],
    }


async def wait_group_drained(bootstrap: str, group: str, topic: str, timeout: float = 600) -> str:
    """Setup: wait until a consumer group has committed up to the end of a topic; says how it went."""
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        while time.perf_counter() - started < timeout:
            ends = await consumer.end_offsets(tps)
            committed = [(await consumer.committed(tp)) or 0 for tp in tps]
            if all(c >= ends[tp] for c, tp in zip(committed, tps, strict=True)):
                return f"caught up with {topic} in {time.perf_counter() - started:.1f} s"
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
    return f"STILL BEHIND on {topic} after {timeout:.0f} s: its figures include applying that backlog"


def mint(roles: list[str], account: str) -> str:
    return mint_token(secret=SECRET, account_id=account, roles=roles)


def service_bench(script: str, args: list[str]) -> dict[str, Any]:
    """Run one service's bench script (its own module documents what it measures) and keep its JSON."""
    out = RESULTS / f"{Path(script).stem}.json"
    out.unlink(missing_ok=True)
    print(f"{script} {' '.join(a for a in args if len(a) < 40)} ...", flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / script),
            *args,
            *(["--out", str(out)] if "contact_list" not in script else []),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-4000:], flush=True)
        return {"error": f"exit {done.returncode}", "stderr_tail": done.stderr[-500:]}
    text = out.read_text() if out.exists() else done.stdout[done.stdout.find("{") :]
    result = dict(json.loads(text))
    result["bench_wall_s"] = round(time.perf_counter() - started, 1)
    print(script, json.dumps(result)[:600], flush=True)
    return result


async def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"n": N, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"generating {N:,} phones with the peer's load.py ...", flush=True)
    if os.environ.get("BENCH_ONLY") != "plumbing":
        sh(
            [
                sys.executable,
                str(PEER / "load.py"),
                "--n",
                str(N),
                "--backend",
                "none",
                "--csv-out",
                str(DATA / "phones.csv"),
                "--csv-rows-per-file",
                str(max(N, 1)),
                "--sample-out",
                str(DATA / "phones_present.txt"),
                "--absent-out",
                str(DATA / "phones_absent.txt"),
            ]
        )
    stack = LocalStack(REPO / ".local" / f"bench-{os.getpid()}")
    await asyncio.to_thread(stack.start)
    procs: list[ServiceProcess] = []
    try:
        await ensure_topics(stack.kafka_bootstrap, TOPICS)
        dsns = await provision_all(stack.postgres_admin_url)

        async def start(service: str, **extra: Any) -> ServiceProcess:
            env = service_env(
                kafka=stack.kafka_bootstrap,
                database_url=dsns[service],
                redis_url=stack.redis_url,
                secret=SECRET,
                **extra,
            )
            proc = ServiceProcess(service, env, REPO / ".local" / "bench-logs")
            procs.append(proc)
            await proc.start(timeout=180)
            return proc

        # "Between two services": suppression's relay publishes, contact-list consumes. Suppression's
        # own ping consumer would be a second consumer of the same events on the same 2 cores.
        sup = await start("suppression", HTTP_WORKERS="2", PING_CONSUMER_ENABLED="false")
        await start("contact-list")
        print("plumbing: outbox -> broker -> inbox ...", flush=True)
        results["plumbing_throughput"] = await throughput(dsns["suppression"], dsns["contact-list"], n=50_000)
        results["plumbing_latency"] = await latency(
            dsns["suppression"], dsns["contact-list"], rate=1000, seconds=10
        )
        print(json.dumps(results["plumbing_throughput"]), json.dumps(results["plumbing_latency"]), flush=True)
        # contact-list would consume every SuppressionChanged of the LeadStopped run on the same two
        # cores, and the peer's checks run with nothing else up: it comes back for its own bench.
        contact_list = next(p for p in procs if p.service == "contact-list")
        await contact_list.stop()
        procs.remove(contact_list)

        if os.environ.get("BENCH_ONLY") == "plumbing":
            (RESULTS / "plumbing.json").write_text(json.dumps(results, indent=2))
            return
        print(f"loading {N:,} entries and warming the bloom cache ...", flush=True)
        _, load_s = await load_entries(dsns["suppression"], DATA / "phones-000.csv")
        results["load_seconds"] = round(load_s, 1)
        await wait_cache_ready(sup.base_url)
        await asyncio.sleep(max(5.0, N / 200_000))  # the rebuild runs in the background; give it time
        pids = {
            "server": sup.proc.pid if sup.proc else 0,
            "pg": int((stack.postgres_data_dir / "postmaster.pid").read_text().split()[0]),
        }
        out = RESULTS / "checks.jsonl"
        results["dialguard"] = summary(await bench_checks(sup.base_url, "dialguard", out, pids))
        print("dialguard", results["dialguard"], flush=True)
        print("LeadStopped -> check answers suppressed, 500 events/s ...", flush=True)
        results["lead_stopped_to_check"] = await lead_stop_latency(sup.base_url, stack.kafka_bootstrap)
        print("lead stop", results["lead_stopped_to_check"], flush=True)
        await sup.stop()
        procs.remove(sup)
        nocache = await start(
            "suppression", HTTP_WORKERS="2", CACHE_ENABLED="false", CONSUMER_GROUP_SUFFIX=".pg-only"
        )
        results["dialguard_postgres_only"] = summary(
            await bench_checks(nocache.base_url, "dialguard-pg-only", out, pids)
        )
        print("dialguard postgres-only", results["dialguard_postgres_only"], flush=True)
        results["import"] = await import_rate(
            nocache.base_url, int(os.environ.get("BENCH_IMPORT_ROWS", "100000"))
        )
        print("import", results["import"], flush=True)
        if os.environ.get("BENCH_SKIP_SERVICES") != "1":
            await nocache.stop()
            procs.remove(nocache)
            contact_list = await start("contact-list")
            # Setup: the SuppressionChanged events of the suppression benches (100,000 from the import)
            # are applied before contact-list's own clock starts.
            drained = await wait_group_drained(
                stack.kafka_bootstrap, "contact-list.suppression-changes", SUPPRESSION_CHANGES
            )
            print(f"contact-list {drained}", flush=True)
            results["contact_list"] = service_bench(
                "bench_contact_list.py",
                [
                    "--url",
                    contact_list.base_url,
                    "--token",
                    mint(["OUTBOUND_MANAGER"], "bench-cl"),
                    "--kafka",
                    stack.kafka_bootstrap,
                    "--n",
                    os.environ.get("BENCH_CONTACTS", str(N)),
                ],
            )
            await contact_list.stop()
            procs.remove(contact_list)
            lead_action = await start("lead-action")
            # Setup: a new lead-action starts at the beginning of every topic it consumes, and the benches
            # before it left ~400,000 SuppressionChanged and 100,000 ContactImported events there. Applied
            # while the search clock ran, they were its ~170 ms tail (alone: p99 under 10 ms).
            for group, topic in (
                ("lead-action.suppression", SUPPRESSION_CHANGES),
                ("lead-action.contacts", CONTACTS_IMPORTED),
            ):
                drained = await wait_group_drained(stack.kafka_bootstrap, group, topic)
                print(f"lead-action {drained}", flush=True)
            results["lead_action"] = service_bench(
                "bench_lead_action.py",
                [
                    "--dsn",
                    dsns["lead-action"],
                    "--base-url",
                    lead_action.base_url,
                    "--secret",
                    SECRET,
                    "--kafka",
                    stack.kafka_bootstrap,
                    "--n",
                    os.environ.get("BENCH_LEADS", str(N)),
                ],
            )
    finally:
        for p in procs:
            await p.stop()
        await asyncio.to_thread(stack.destroy)

    if os.environ.get("BENCH_SKIP_SERVICES") != "1" and os.environ.get("BENCH_ONLY") != "plumbing":
        results["outbound_sync"] = service_bench(
            "bench_outbound_sync.py", ["--n", os.environ.get("BENCH_DELIVERIES", "5000")]
        )

    if os.environ.get("BENCH_SKIP_PEER") != "1":
        print("peer (../shared/peer/run_peer.sh) ...", flush=True)
        peer_out = RESULTS / "peer.jsonl"
        peer_out.unlink(missing_ok=True)
        env = {
            **os.environ,
            "N": str(N),
            "VARIANTS": "postgres:2:digits:nc redis-set:2:digits:nc",
            "OUT": str(peer_out),
        }
        subprocess.run(["bash", str(PEER / "run_peer.sh")], check=True, env=env, capture_output=True)
        peers = [json.loads(line) for line in peer_out.read_text().splitlines() if '"batch"' in line]
        results["peer"] = {p["label"]: summary(p) for p in peers}
        best_batch = max(v["batch_ids_per_s"] for v in results["peer"].values())
        best_p99 = min(v["single_p99_ms"] for v in results["peer"].values())
        results["ratio_batch_vs_best_peer"] = round(results["dialguard"]["batch_ids_per_s"] / best_batch, 2)
        results["single_p99_vs_best_peer"] = round(results["dialguard"]["single_p99_ms"] / best_p99, 2)
    results["ratio_cache_vs_postgres_only"] = round(
        results["dialguard"]["batch_ids_per_s"] / results["dialguard_postgres_only"]["batch_ids_per_s"], 2
    )
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    print("\n| measure | value |\n|---|---|")
    for key in (
        "plumbing_throughput",
        "plumbing_latency",
        "dialguard",
        "dialguard_postgres_only",
        "peer",
        "import",
        "contact_list",
        "lead_action",
        "outbound_sync",
    ):
        print(f"| {key} | {json.dumps(results.get(key))} |")
    for key in ("ratio_batch_vs_best_peer", "single_p99_vs_best_peer", "ratio_cache_vs_postgres_only"):
        print(f"| {key} | {results.get(key)} |")
    print(f"\nwritten to {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    asyncio.run(main())
