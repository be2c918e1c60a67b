"""Real-stack fixtures of outbound-sync: the fake Outbound server, a SuppressionChanged publisher, the service."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from dialguard.events import Envelope
from dialguard.events.topics import SUPPRESSION_CHANGES
from dialguard.testing.services import free_port

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="session")
def fake_outbound_url() -> Iterator[str]:
    """tools/fake_outbound.py as its own process, once per session."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "fake_outbound.py"), "--port", str(port)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/_requests", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("fake Outbound server did not start")
        time.sleep(0.1)
    yield base
    proc.terminate()
    proc.wait(10)


@dataclass
class Fake:
    """The fake Outbound server as a test drives it."""

    client: httpx.AsyncClient
    base_url: str

    async def requests(self, path_prefix: str = "") -> list[dict[str, Any]]:
        r = await self.client.get("/_requests", params={"path_prefix": path_prefix})
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    async def behave(self, **rule: Any) -> None:
        (await self.client.post("/_behaviour", json=rule)).raise_for_status()

    async def reset(self) -> None:
        await self.client.delete("/_behaviour")
        await self.client.delete("/_requests")


@pytest.fixture
async def fake(fake_outbound_url: str) -> AsyncIterator[Fake]:
    """A clean fake server per test (rules and recorded requests cleared before and after)."""
    async with httpx.AsyncClient(base_url=fake_outbound_url, timeout=10) as client:
        f = Fake(client, fake_outbound_url)
        await f.reset()
        yield f
        await f.reset()


@pytest.fixture
async def publish(infra: Any) -> AsyncIterator[Any]:
    """Publish SuppressionChanged envelopes as suppression would (key account:type:value)."""
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()

    async def send(env: Envelope) -> None:
        ident = env.payload["entry"]["identifier"]
        key = f"{env.account_id}:{ident['type']}:{ident['value']}".encode()
        await producer.send_and_wait(
            SUPPRESSION_CHANGES, env.to_bytes(), key=key, headers=[("event_type", b"SuppressionChanged")]
        )

    yield send
    await producer.stop()
