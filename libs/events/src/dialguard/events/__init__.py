"""Event envelope, payloads and topics of CONTRACT §5."""

from dialguard.events.envelope import Envelope, dumps, format_time, utcnow
from dialguard.events.payloads import PAYLOADS

__all__ = ["PAYLOADS", "Envelope", "dumps", "format_time", "utcnow"]
