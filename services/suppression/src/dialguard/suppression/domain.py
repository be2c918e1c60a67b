"""Pure suppression rules: entry identity, applicability to a check, event keys. No I/O."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class NewEntry(NamedTuple):
    """A normalized entry about to be added to a stoplist (a tuple: an import makes a million of them,
    and a frozen dataclass' __init__ cost a tenth of parsing a row)."""

    id_type: str
    value: str
    channel: str | None = None
    sender: str | None = None
    source: str = "api"
    reason: str | None = None
    expires_at: datetime | None = None


def event_key(account_id: str, id_type: str, value: str) -> str:
    """Partition key of CONTRACT §5: all changes of one identifier stay in order."""
    return f"{account_id}:{id_type}:{value}"


def cache_key(id_type: str, value: str) -> bytes:
    """Bloom membership key: channel and sender are confirmed in Postgres, so they are not part of it."""
    return f"{id_type}:{value}".encode()


def applies(
    entry_channel: str | None, entry_sender: str | None, check_channel: str | None, check_sender: str | None
) -> bool:
    """An entry applies when its channel/sender is null (all) or equal; an omitted check field means any."""
    channel_ok = entry_channel is None or check_channel is None or entry_channel == check_channel
    sender_ok = entry_sender is None or check_sender is None or entry_sender == check_sender
    return channel_ok and sender_ok


def covers_channel(removed_channel: str | None, other_channel: str | None) -> bool:
    """Whether another entry still suppresses some channel the removed one covered (fail-safe `suppressed`)."""
    return removed_channel is None or other_channel is None or removed_channel == other_channel
