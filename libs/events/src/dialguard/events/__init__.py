"""Event envelope, payloads and topics of CONTRACT §5."""

from dialguard.events.envelope import Envelope, dumps, envelope_bytes, format_time, new_event_ids, utcnow
from dialguard.events.payloads import PAYLOADS

__all__ = ["PAYLOADS", "Envelope", "dumps", "envelope_bytes", "format_time", "new_event_ids", "utcnow"]
