"""The JSON envelope every message carries (CONTRACT §5), and its (de)serialisation."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    """Timezone-aware now, so every timestamp we emit is unambiguous UTC."""
    return datetime.now(UTC)


class Envelope(BaseModel):
    """One event on the wire: identity, type, tenancy and tracing around a typed payload."""

    model_config = ConfigDict(extra="allow")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Idempotency key of the event")
    event_type: str = Field(description="Payload type, e.g. LeadStopped")
    schema_version: int = Field(default=1, ge=1)
    occurred_at: datetime = Field(default_factory=utcnow)
    account_id: str = Field(min_length=1, max_length=256)
    correlation_id: str | None = None
    producer: str = Field(min_length=1)
    payload: dict[str, Any] = Field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """Serialise with millisecond UTC timestamps ending in Z, as the contract shows."""
        data = {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "occurred_at": format_time(self.occurred_at),
            "account_id": self.account_id,
            "correlation_id": self.correlation_id,
            "producer": self.producer,
            "payload": self.payload,
        }
        if self.model_extra:
            data.update(self.model_extra)
        return orjson.dumps(data, default=_json_default)

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Envelope:
        """Parse and validate; raises ValueError (orjson/pydantic) on anything malformed."""
        return cls.model_validate_json(raw)


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a Z suffix."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    # isoformat truncates to milliseconds and always writes a 4-digit year: the first 23 characters
    # are YYYY-MM-DDTHH:MM:SS.mmm (half the cost of strftime, on every event and entry we emit).
    return value.isoformat(timespec="milliseconds")[:23] + "Z"


def new_event_ids(n: int) -> list[uuid.UUID]:
    """n random (version 4) ids from one urandom read: uuid4() makes a getrandom syscall per id."""
    raw = os.urandom(16 * n)
    return [uuid.UUID(bytes=raw[i : i + 16], version=4) for i in range(0, 16 * n, 16)]


def envelope_bytes(
    *,
    event_id: uuid.UUID,
    event_type: str,
    occurred_at: str,
    account_id: str,
    producer: str,
    payload: dict[str, Any],
    correlation_id: str | None = None,
    schema_version: int = 1,
) -> bytes:
    """Envelope(...).to_bytes() without building the model, for events our own code assembles in bulk
    (the model's validation and defaults cost more than the rest of an import row); the same bytes."""
    return orjson.dumps(
        {
            "event_id": str(event_id),
            "event_type": event_type,
            "schema_version": schema_version,
            "occurred_at": occurred_at,
            "account_id": account_id,
            "correlation_id": correlation_id,
            "producer": producer,
            "payload": payload,
        },
        default=_json_default,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """orjson with the envelope's conventions for datetimes and UUIDs."""
    return orjson.dumps(value, default=_json_default)
