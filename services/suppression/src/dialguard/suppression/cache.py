"""The check path's cache port: a bloom-style filter that may say 'maybe' or 'no', or 'not ready'."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class SuppressionCache(Protocol):
    """Bits are added before the DB commit; a None lookup means 'ask Postgres for everything'."""

    async def add(self, account_id: str, keys: Sequence[bytes]) -> None: ...

    async def lookup(self, account_id: str, keys: Sequence[bytes]) -> list[bool] | None: ...

    async def status(self) -> dict[str, Any]: ...


class NoCache:
    """Postgres only (cache disabled): every lookup is 'not ready'."""

    async def add(self, account_id: str, keys: Sequence[bytes]) -> None:
        return None

    async def lookup(self, account_id: str, keys: Sequence[bytes]) -> list[bool] | None:
        return None

    async def status(self) -> dict[str, Any]:
        return {"ok": True, "mode": "disabled"}
