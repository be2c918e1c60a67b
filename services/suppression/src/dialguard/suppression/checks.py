"""The check use case: bloom cache says 'no' or 'maybe'; every 'maybe' (and every answer while the cache
is not ready) is confirmed in Postgres, so the answer is exact."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dialguard.identifiers import (
    IDENTIFIER_TYPES,
    InvalidIdentifier,
    canonical_nanp_region,
    identifier_readings,
    phone_candidates,
)
from dialguard.suppression import repository as repo
from dialguard.suppression.handlers import Suppression


@dataclass(slots=True)
class CheckItem:
    """One requested identifier with its normalized readings (two for an ambiguous phone)."""

    raw: dict[str, Any]
    readings: list[tuple[str, str]] = field(default_factory=list)
    error: InvalidIdentifier | None = None
    matches: list[dict[str, Any]] = field(default_factory=list)


def prepare(raw_items: Sequence[dict[str, Any]], *, region: str) -> list[CheckItem]:
    """Normalize every identifier (valid readings only: a single check reports them); an invalid one is
    answered per item, never failing the call."""
    items: list[CheckItem] = []
    for raw in raw_items:
        item = CheckItem(raw=raw)
        try:
            item.readings = [
                (r.type, r.value) for r in identifier_readings(raw["type"], raw["value"], region=region)
            ]
        except InvalidIdentifier as exc:
            item.error = exc
        items.append(item)
    return items


ID_TYPES = frozenset(IDENTIFIER_TYPES)


class BadItem(ValueError):
    """A batch item that is not an identifier object at all (a 422 for the whole request)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def batch_keys(
    raw_items: Sequence[Any], *, region: str
) -> tuple[list[tuple[str, ...]], dict[int, InvalidIdentifier]]:
    """Each item's lookup keys ('type:value', two for an ambiguous phone) and the items that cannot be read.

    One pass that also checks each item's shape (BadItem). Phones take their candidate readings
    without libphonenumber's validity test (phone_candidates says why that is exact), and
    canonical NANP digits skip even that call: at 10,000 ids per request, per-item calls and
    objects cost more than the lookup.
    """
    fast = canonical_nanp_region(region)
    keys: list[tuple[str, ...]] = []
    append = keys.append
    errors: dict[int, InvalidIdentifier] = {}
    for i, raw in enumerate(raw_items):
        if type(raw) is not dict or (id_type := raw.get("type")) not in ID_TYPES:
            raise BadItem(f"identifiers.{i}.type", f"one of {sorted(ID_TYPES)}")
        value = raw.get("value")
        if type(value) is not str or not 0 < len(value) <= 512:
            raise BadItem(f"identifiers.{i}.value", "string of 1-512 characters")
        try:
            if id_type == "phone":
                if fast and len(value) == 11 and value[0] == "1" and value.isascii() and value.isdigit():
                    append(("phone:" + value,))
                else:
                    append(tuple(["phone:" + v for v in phone_candidates(value, region=region)]))
            else:
                readings = identifier_readings(id_type, value, region=region)
                append(tuple([f"{r.type}:{r.value}" for r in readings]))
        except InvalidIdentifier as exc:
            append(())
            errors[i] = exc
    return keys, errors


async def _maybe_by_type(svc: Suppression, account_id: str, keys: Sequence[str]) -> dict[str, list[str]]:
    """Values per identifier type that the bloom cache cannot rule out (all of them while it is not ready)."""
    answer = await svc.cache.lookup(account_id, [k.encode() for k in keys]) if keys else None
    maybe = keys if answer is None else [k for k, hit in zip(keys, answer, strict=True) if hit]
    by_type: dict[str, list[str]] = defaultdict(list)
    for key in maybe:
        id_type, _, value = key.partition(":")
        by_type[id_type].append(value)
    return by_type


async def suppressed_keys(
    svc: Suppression,
    keys: Sequence[str],
    *,
    account_id: str,
    channel: str | None,
    sender: str | None,
    stoplist_ids: Sequence[uuid.UUID] | None,
) -> set[str]:
    """The keys with a live entry that applies: the bloom cache rules out most, Postgres confirms the rest."""
    by_type = await _maybe_by_type(svc, account_id, keys)
    found: set[str] = set()
    if by_type:
        async with svc.runtime.pool.acquire() as conn:
            for id_type, values in by_type.items():
                found.update(
                    await repo.matching_values(
                        conn,
                        account_id=account_id,
                        id_type=id_type,
                        values=values,
                        channel=channel,
                        sender=sender,
                        stoplist_ids=stoplist_ids,
                    )
                )
    return found


async def run_checks(
    svc: Suppression,
    items: list[CheckItem],
    *,
    account_id: str,
    channel: str | None,
    sender: str | None,
    stoplist_ids: Sequence[uuid.UUID] | None,
) -> list[CheckItem]:
    """Fill each item's matches; one cache round trip and one query per identifier type."""
    keys = list({f"{t}:{v}" for item in items for t, v in item.readings})  # cache_key, as text
    by_type = await _maybe_by_type(svc, account_id, keys)
    found: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    if by_type:
        async with svc.runtime.pool.acquire() as conn:
            for id_type, values in by_type.items():
                rows = await repo.matching_entries(
                    conn,
                    account_id=account_id,
                    id_type=id_type,
                    values=values,
                    channel=channel,
                    sender=sender,
                    stoplist_ids=stoplist_ids,
                )
                for r in rows:
                    found[(id_type, r["value"])].append(
                        {
                            "entry_id": str(r["id"]),
                            "stoplist_id": str(r["stoplist_id"]),
                            "identifier": {"type": id_type, "value": r["value"]},
                            "channel": r["channel"],
                            "sender": r["sender"],
                        }
                    )
    for item in items:
        for reading in item.readings:
            item.matches.extend(found.get(reading, ()))
    return items
