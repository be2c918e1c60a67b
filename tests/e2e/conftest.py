"""The whole system on the real stack: four service processes, the fake Outbound server, a watching dialer."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from dialguard.testing.fixtures import REPO, StartService
from dialguard.testing.services import free_port

from .system import System, TopicWatch

WATCHED_TOPICS = (
    "suppression.changes.v1",
    "leads.stopped.v1",
    "contacts.imported.v1",
    "leads.moved.v1",
    "imports.completed.v1",
)


@pytest.fixture(scope="session")
def fake_outbound_url() -> Iterator[str]:
    """tools/fake_outbound.py as its own process, once per session (the external Outbound TM servers)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "fake_outbound.py"), "--port", str(port)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
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


@pytest.fixture
async def watch(infra: Any) -> AsyncIterator[TopicWatch]:
    """A plain aiokafka consumer (what a dialer runs) positioned at the end of every watched topic."""
    w = TopicWatch(infra.kafka_bootstrap, WATCHED_TOPICS)
    await w.start()
    yield w
    await w.stop()


@pytest.fixture
async def system(
    infra: Any, start_service: StartService, fake_outbound_url: str, watch: TopicWatch
) -> AsyncIterator[System]:
    """All four services as separate processes (own database, own consumer groups) and one fresh account."""
    sup, cl, la, osync = await asyncio.gather(
        start_service("suppression"),
        start_service("contact-list"),
        start_service("lead-action", RATE_LIMIT_ACTIONS="1000/10", RATE_LIMIT_SEARCHES="1000/10"),
        start_service(
            "outbound-sync",
            OUTBOUND_TM_URL_TEMPLATE=f"{fake_outbound_url}/outbound{{system}}",
        ),
    )
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()
    clients = {
        name: httpx.AsyncClient(base_url=proc.base_url, timeout=30.0)
        for name, proc in (
            ("suppression", sup),
            ("contact-list", cl),
            ("lead-action", la),
            ("outbound-sync", osync),
        )
    }
    fake = httpx.AsyncClient(base_url=fake_outbound_url, timeout=10.0)
    world = System(
        account=f"e2e-{uuid.uuid4().hex[:8]}",
        suppression=clients["suppression"],
        contact_list=clients["contact-list"],
        lead_action=clients["lead-action"],
        outbound_sync=clients["outbound-sync"],
        fake=fake,
        producer=producer,
        watch=watch,
    )
    try:
        yield world
    finally:
        await producer.stop()
        for client in (*clients.values(), fake):
            await client.aclose()
