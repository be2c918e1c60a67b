"""The envelope's wire form is CONTRACT §5's: fields, millisecond UTC timestamps, strict parsing."""

from __future__ import annotations

import orjson
import pytest

from dialguard.events import Envelope
from dialguard.events.payloads import PAYLOADS, SuppressionChanged
from dialguard.events.schemas import all_schemas


def test_wire_form_has_every_contract_field() -> None:
    env = Envelope(event_type="LeadStopped", account_id="acme", producer="upstream", payload={"a": 1})
    data = orjson.loads(env.to_bytes())
    assert set(data) == {
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "account_id",
        "correlation_id",
        "producer",
        "payload",
    }
    assert data["occurred_at"].endswith("Z")
    assert len(data["occurred_at"]) == 24
    assert Envelope.from_bytes(env.to_bytes()).event_id == env.event_id


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[]",
        b'{"event_type": "X"}',
        b'{"event_id": "nope", "event_type": "X", "account_id": "a", "producer": "p"}',
    ],
)
def test_malformed_envelopes_raise(raw: bytes) -> None:
    with pytest.raises(ValueError):
        Envelope.from_bytes(raw)


def test_suppression_changed_requires_entry_and_flag() -> None:
    with pytest.raises(ValueError):
        SuppressionChanged.model_validate({"op": "added"})


def test_every_payload_exports_a_schema() -> None:
    schemas = all_schemas()
    assert set(PAYLOADS) <= set(schemas)
    assert schemas["Envelope"]["required"]  # type: ignore[index]


def test_format_time_is_utc_milliseconds_with_z() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from dialguard.events.envelope import format_time

    assert format_time(datetime(2026, 11, 23, 10, 0, 0, 123999, tzinfo=UTC)) == "2026-11-23T10:00:00.123Z"
    assert format_time(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"  # naive = UTC
    plus2 = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=plus2)) == "2026-01-02T01:04:05.000Z"
    assert format_time(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00.000Z"


def test_envelope_bytes_equal_the_models_bytes() -> None:
    from datetime import UTC, datetime

    from dialguard.events import Envelope, envelope_bytes, format_time, new_event_ids

    ids = new_event_ids(3)
    assert len(set(ids)) == 3
    assert all(i.version == 4 for i in ids)
    when = datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC)
    payload = {"op": "added", "entry": {"entry_id": "e1", "channel": None}, "suppressed": True}
    model = Envelope(
        event_id=ids[0],
        event_type="SuppressionChanged",
        occurred_at=when,
        account_id="acme",
        producer="suppression",
        correlation_id="c-1",
        payload=payload,
    )
    fast = envelope_bytes(
        event_id=ids[0],
        event_type="SuppressionChanged",
        occurred_at=format_time(when),
        account_id="acme",
        producer="suppression",
        correlation_id="c-1",
        payload=payload,
    )
    assert fast == model.to_bytes()
    assert Envelope.from_bytes(fast) == model
