"""Pure rules of outbound delivery: templates, header masking, TM requests, retry classification, backoff."""

from __future__ import annotations

import hashlib
import json
import random
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit

PLACEHOLDERS: Final = frozenset(
    {
        "entry_id",
        "stoplist_id",
        "identifier.type",
        "identifier.value",
        "channel",
        "sender",
        "reason",
        "expires_at",
    }
)
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
TM_FIELDS: Final = {"phone": "phone", "email": "email", "person_id": "person_id"}
METHODS: Final = ("POST", "PUT", "PATCH", "GET", "DELETE")
_SECRET_HEADER = re.compile(
    r"auth|token|secret|key|password|passwd|cookie|session|signature|credential", re.I
)
MASK_SUFFIX: Final = "…***"
_IDEMPOTENCY_NS: Final = uuid.UUID("6f1d5b0e-6a53-4c44-9b0d-3f3f0b6c7a21")
_IDEMPOTENCY_NS_BYTES: Final = _IDEMPOTENCY_NS.bytes


class UnsupportedIdentifier(ValueError):
    """The target cannot represent this identifier (a TM list has no client_id field)."""


def unknown_placeholders(template: str) -> list[str]:
    """Placeholders a template names that the contract does not define (422 at create time)."""
    return sorted({name for name in _PLACEHOLDER.findall(template) if name not in PLACEHOLDERS})


def looks_like_json(template: str | None, headers: dict[str, str]) -> bool:
    """Values rendered into a JSON body are JSON-escaped, so a quote in a reason cannot break it."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if content_type:
        return "json" in content_type.lower()
    return template is None or template.lstrip()[:1] in ("{", "[")


def render_template(template: str, entry: dict[str, Any], *, json_escape: bool) -> str:
    """Fill the placeholders from a SuppressionChanged entry; null becomes an empty string."""
    identifier = entry.get("identifier") or {}
    values: dict[str, Any] = {
        "entry_id": entry.get("entry_id"),
        "stoplist_id": entry.get("stoplist_id"),
        "identifier.type": identifier.get("type"),
        "identifier.value": identifier.get("value"),
        "channel": entry.get("channel"),
        "sender": entry.get("sender"),
        "reason": entry.get("reason"),
        "expires_at": entry.get("expires_at"),
    }

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        text = "" if value is None else str(value)
        return json.dumps(text)[1:-1] if json_escape else text

    return _PLACEHOLDER.sub(fill, template)


def valid_url(url: str) -> str | None:
    """Why a MANUAL url cannot be used, or None: only absolute http(s) URLs with a host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "scheme must be http or https"
    if not parts.hostname:
        return "URL has no host"
    try:
        _ = parts.port
    except ValueError:
        return "invalid port"
    if any(ch.isspace() for ch in url):
        return "URL contains whitespace"
    return None


def is_secret_header(name: str) -> bool:
    """Header names that carry credentials are never returned in full."""
    return name.lower() != "idempotency-key" and bool(_SECRET_HEADER.search(name))


def mask_value(value: str) -> str:
    """Show enough to recognise a secret, never enough to use it."""
    return (value[:4] if len(value) >= 12 else "") + MASK_SUFFIX


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers a GET may show."""
    return {k: mask_value(v) if is_secret_header(k) else v for k, v in headers.items()}


def merge_headers(new: dict[str, str], stored: dict[str, str]) -> dict[str, str]:
    """A PATCH that echoes a masked value keeps the stored secret instead of saving the mask."""
    merged: dict[str, str] = {}
    for name, value in new.items():
        if value.endswith(MASK_SUFFIX) and name in stored:
            merged[name] = stored[name]
        else:
            merged[name] = value
    return merged


def tm_url(template: str, system: str, project: str) -> str:
    """Where Outbound server NN takes a project's Do Not Call entries."""
    base = template.replace("{system}", system).rstrip("/")
    return f"{base}/projects/{quote(project, safe='')}/dnc"


def tm_expires_at(entry: dict[str, Any], expires_in_days: int | None) -> str | None:
    """The target's 'expires in days' counts from when the entry was added; else the entry's own expiry."""
    if expires_in_days:
        added = _parse_time(entry.get("added_at")) or datetime.now(UTC)
        return format_time(added + timedelta(days=expires_in_days))
    value = entry.get("expires_at")
    return str(value) if value else None


def tm_body(entry: dict[str, Any], expires_in_days: int | None) -> dict[str, Any]:
    """{phone | email | person_id: value, expires_at} as Outbound's DNC endpoint takes it."""
    identifier = entry.get("identifier") or {}
    field = TM_FIELDS.get(str(identifier.get("type")))
    if field is None:
        raise UnsupportedIdentifier(f"identifier type {identifier.get('type')!r} has no Outbound DNC field")
    return {field: identifier.get("value"), "expires_at": tm_expires_at(entry, expires_in_days)}


def idempotency_key(target_id: uuid.UUID, entry_id: str) -> str:
    """Stable per (entry, target): every retry, manual or automatic, carries the same key.

    uuid5(namespace, "target:entry") computed straight from SHA-1 (uuid.uuid5 took ~25 us, once per request).
    """
    digest = bytearray(
        hashlib.sha1(
            _IDEMPOTENCY_NS_BYTES + f"{target_id}:{entry_id}".encode(), usedforsecurity=False
        ).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def identifier_key(entry: dict[str, Any]) -> str:
    """Deliveries of one identifier to one target go out in order."""
    identifier = entry.get("identifier") or {}
    return f"{identifier.get('type')}:{identifier.get('value')}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt means for the delivery row."""

    status: str  # delivered | retry | failed
    error: str | None = None
    retry_after_s: float | None = None


def classify(status_code: int, retry_after: str | None, *, now: datetime | None = None) -> Outcome:
    """2xx delivered; 5xx, 408 and 429 retried (honouring Retry-After); any other status failed."""
    if 200 <= status_code < 300:
        return Outcome("delivered")
    if status_code >= 500 or status_code in (408, 429):
        return Outcome("retry", f"HTTP {status_code}", parse_retry_after(retry_after, now=now))
    return Outcome("failed", f"HTTP {status_code}")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_seconds(attempts: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter (half fixed, half random) so retries of many rows spread out."""
    ceiling = min(cap, base * 2.0 ** max(0, attempts - 1))
    jitter: float = (rng or random).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds and Z, as the events write times."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def canonical_stoplist_id(value: str) -> str:
    """Suppression publishes lower-case UUIDs; accept any spelling of one, other ids as they are."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value.strip()
