"""An instance with two HTTP workers consumes in one of them, and the other takes over when it dies."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from dialguard.events import Envelope
from dialguard.events.topics import LEADS_STOPPED
from dialguard.platform.consumer_slots import slot_paths
from dialguard.testing.fixtures import StartService
from dialguard.testing.helpers import auth, wait_for


def lock_holders(path: Path) -> set[int]:
    """PIDs holding a flock on path, from /proc/locks (FLOCK lines end in major:minor:inode)."""
    inode = path.stat().st_ino
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and "->" not in fields and fields[-3].endswith(f":{inode}"):
            holders.add(int(fields[-4]))
    return holders


def worker_pids(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(c) for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()}


async def stop_and_check(
    client: httpx.AsyncClient, producer: AIOKafkaProducer, account: str, phone: str
) -> None:
    envelope = Envelope(
        event_type="LeadStopped",
        account_id=account,
        producer="test",
        payload={"identifier": {"type": "phone", "value": phone}, "source": "end_user_message"},
    )
    await producer.send_and_wait(LEADS_STOPPED, envelope.to_bytes(), key=f"{account}:phone:{phone}".encode())

    async def suppressed() -> bool:
        r = await client.post(
            "/v1/check",
            json={"identifiers": [{"type": "phone", "value": phone}]},
            headers=auth(account, ["DIALER"]),
        )
        return bool(r.status_code == 200 and r.json()["results"][0]["suppressed"])

    await wait_for(suppressed, timeout=45)


async def test_one_worker_consumes_and_another_takes_over_when_it_is_killed(
    start_service: StartService, infra: object
) -> None:
    sup = await start_service("suppression", HTTP_WORKERS="2")
    assert sup.proc is not None
    [slot] = slot_paths("suppression", sup.port, 1)
    account = f"slots-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)  # type: ignore[attr-defined]
    await producer.start()
    try:
        async with httpx.AsyncClient(base_url=sup.base_url, timeout=10) as client:
            await stop_and_check(client, producer, account, "12672345001")
            workers = await wait_for(lambda: _two_workers(sup.proc.pid))  # type: ignore[union-attr]
            [consumer] = lock_holders(slot)
            assert consumer in workers, "the slot is held by one of the instance's workers"

            os.kill(consumer, signal.SIGKILL)
            await stop_and_check(client, producer, account, "12672345002")
            [successor] = lock_holders(slot)
            assert successor != consumer
            assert successor in workers | worker_pids(sup.proc.pid)
    finally:
        await producer.stop()


async def _two_workers(master: int) -> set[int] | None:
    pids = worker_pids(master)
    return pids if len(pids) == 2 else None
