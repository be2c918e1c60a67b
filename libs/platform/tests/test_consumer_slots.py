"""Consumer slots: exclusive per instance, released by the holder, taken over by a waiting worker."""

from __future__ import annotations

import asyncio
import uuid

from dialguard.platform.consumer_slots import ConsumerSlot


def _service() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_one_slot_is_held_by_one_worker_at_a_time() -> None:
    service = _service()
    first, second = ConsumerSlot(service, 8001, 1), ConsumerSlot(service, 8001, 1)
    assert first.claim()
    assert not second.claim()
    first.release()
    assert second.claim()
    second.release()


def test_instances_on_other_ports_and_extra_slots_do_not_compete() -> None:
    service = _service()
    a, b, c = ConsumerSlot(service, 8001, 2), ConsumerSlot(service, 8001, 2), ConsumerSlot(service, 8001, 2)
    other_instance = ConsumerSlot(service, 8002, 1)
    assert a.claim()
    assert b.claim()
    assert not c.claim()
    assert other_instance.claim()
    for slot in (a, b, other_instance):
        slot.release()


async def test_a_waiting_worker_starts_consuming_once_the_holder_lets_go() -> None:
    service = _service()
    holder, waiter = ConsumerSlot(service, 8001, 1), ConsumerSlot(service, 8001, 1)
    assert holder.claim()
    started = asyncio.Event()

    async def start() -> None:
        started.set()

    task = asyncio.create_task(waiter.wait_and_run(start, poll_s=0.01))
    await asyncio.sleep(0.1)
    assert not started.is_set()
    holder.release()
    await asyncio.wait_for(task, 2)
    assert started.is_set()
    assert waiter.held
    waiter.release()
