"""A lane that ended while Postgres was away: its outcomes and unsent rows are settled once it is back."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dialguard.outbound_sync import delivery
from dialguard.outbound_sync.config import Settings
from dialguard.outbound_sync.delivery import DeliveryWorker


class FlakyPool:
    """acquire() fails while `down`, like a pool whose server restarts."""

    def __init__(self) -> None:
        self.down = True

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        if self.down:
            raise ConnectionRefusedError("postgres is restarting")
        yield self

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield


async def test_outcomes_and_unsent_rows_wait_for_postgres_then_settle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded: list[tuple[uuid.UUID, list[dict[str, Any]]]] = []
    released: list[list[uuid.UUID]] = []

    async def record_results(
        conn: Any, *, target_id: uuid.UUID, owner: str, results: list[dict[str, Any]]
    ) -> None:
        recorded.append((target_id, list(results)))

    async def release_rows(conn: Any, *, ids: list[uuid.UUID], owner: str) -> int:
        released.append(list(ids))
        return len(ids)

    monkeypatch.setattr(delivery.repo, "record_results", record_results)
    monkeypatch.setattr(delivery.repo, "release_rows", release_rows)
    pool = FlakyPool()
    worker = DeliveryWorker(pool=pool, settings=Settings())  # type: ignore[arg-type]
    target, sent, unsent = uuid.uuid4(), {"id": uuid.uuid4(), "status": "delivered"}, uuid.uuid4()

    worker._keep_leftovers(target, [sent], [unsent])
    with pytest.raises(ConnectionRefusedError):
        await worker._settle_leftovers()
    assert recorded == []
    assert released == []

    pool.down = False
    await worker._settle_leftovers()
    assert recorded == [(target, [sent])]
    assert released == [[unsent]]
    await worker._settle_leftovers()  # settled once, not again
    assert len(recorded) == 1
