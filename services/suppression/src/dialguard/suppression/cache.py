"""The check path's cache port: a bloom-style filter that may say 'maybe' or 'no', or 'not ready'."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

Keys: TypeAlias = Sequence[bytes] | npt.NDArray[np.bytes_]
Mask: TypeAlias = npt.NDArray[np.bool_]


class SuppressionCache(Protocol):
    """Bits are added before the DB commit; a None lookup means 'ask Postgres for everything'."""

    async def add(self, account_id: str, keys: Sequence[bytes]) -> None: ...

    async def lookup(self, account_id: str, keys: Keys) -> Mask | None: ...

    async def status(self) -> dict[str, Any]: ...


class NoCache:
    """Postgres only (cache disabled): every lookup is 'not ready'."""

    async def add(self, account_id: str, keys: Sequence[bytes]) -> None:
        return None

    async def lookup(self, account_id: str, keys: Keys) -> Mask | None:
        return None

    async def status(self) -> dict[str, Any]:
        return {"ok": True, "mode": "disabled"}
