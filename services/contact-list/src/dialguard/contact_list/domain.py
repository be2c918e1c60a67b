"""Pure rules of contact lists: how a file's columns become units and fields, row validation, duplicates
and the contact lifecycle. No I/O."""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

import orjson
from croniter import croniter

from dialguard.identifiers import (
    Identifier,
    InvalidIdentifier,
    canonical_nanp,
    canonical_nanp_region,
    normalize_identifier,
)
from dialguard.identifiers.normalize import PhoneFormat, normalize_email

STATUSES: Final = ("callable", "planning", "open", "attempted", "flagged", "closed")
KINDS: Final = ("telephony", "text")
# The client id a text list's first column holds, by the list's channel (Tovie: "the ID format depends
# on the particular channel").
TEXT_ID_TYPE: Final = {
    "email": "email",
    "sms": "phone",
    "whatsapp": "client_id",
    "viber": "client_id",
    "messenger": "client_id",
}
_PHONE_HEADERS: Final = frozenset(
    {
        "phone",
        "mobile",
        "tel",
        "telephone",
        "cell",
        "msisdn",
        "phone_number",
        "mobile_phone",
        "work_phone",
        "home_phone",
        "cell_phone",
        "number",
    }
)
_EMAIL_HEADERS: Final = frozenset({"email", "e_mail", "mail", "email_address"})
_MESSENGER_HEADERS: Final = {
    "whatsapp": "whatsapp",
    "viber": "viber",
    "telegram": "messenger",
    "messenger": "messenger",
}
_TIMEZONE_HEADERS: Final = frozenset({"timezone", "time_zone", "tz"})
_PRIORITY_HEADERS: Final = frozenset({"priority", "phone_priority"})
_SEPARATORS = re.compile(r"[^a-z0-9]+")
_DATA_LIKE = re.compile(r"^(?:[+(]?\d[\d\s().\-/]{3,}|[^@\s]+@[^@\s]+\.[^@\s]+|-?\d+(?:[.,]\d+)?)$")
_UTC_OFFSET = re.compile(r"^(?:UTC|GMT)?[+-](?:0?\d|1[0-4])(?::?[0-5]\d)?$")


class HeaderError(ValueError):
    """The file's header cannot be used for this list (missing, duplicated or changed columns)."""

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []


class RowError(ValueError):
    """One row that fails validation: reported in the error CSV with its row number and reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ListSpec:
    """The list settings that decide how a file is read."""

    kind: str
    channel: str | None
    unique_id_column: str | None
    name_column: str | None


@dataclass(frozen=True, slots=True)
class UnitColumn:
    index: int
    header: str
    type: str
    channel: str | None


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """Which column is what: the units (first column first), ids, name, timezone, priority and fields."""

    header: tuple[str, ...]
    units: tuple[UnitColumn, ...]
    unique_index: int | None
    name_index: int | None
    timezone_index: int | None
    priority_index: int | None
    field_columns: tuple[tuple[int, str], ...]


@dataclass(slots=True)
class ParsedRow:
    """A valid row: the contact it describes and its fingerprint for duplicate detection."""

    external_id: str | None
    name: str | None
    fields: dict[str, str]
    timezone: str | None
    units: list[dict[str, Any]] = field(default_factory=list)
    row_hash: str = ""


def header_key(label: str) -> str:
    """Case- and punctuation-blind form of a column name: `E-Mail ` and `e_mail` are the same column."""
    return _SEPARATORS.sub("_", label.strip().lower()).strip("_")


def _base(key: str) -> str:
    """`phone2` / `email_3` name the same kind of column as `phone` / `email`."""
    return re.sub(r"_?\d+$", "", key)


def primary_unit(spec: ListSpec) -> tuple[str, str | None]:
    """The type and channel of the first column: a phone for telephony, the channel's client id for text."""
    if spec.kind == "telephony":
        return "phone", spec.channel or "voice"
    if spec.channel is None:
        raise ValueError("a text list needs a channel")
    return TEXT_ID_TYPE.get(spec.channel, "client_id"), spec.channel


def _phone_channel(spec: ListSpec) -> str:
    return spec.channel if spec.channel in ("voice", "sms", "whatsapp", "viber") else "voice"


def check_header(header: Sequence[str]) -> None:
    """A header row is required: names, not data; non-empty and unique (HeaderError otherwise)."""
    labels = [h.strip() for h in header]
    data = [h for h in labels if h and _DATA_LIKE.match(h)]
    if data or not labels or not labels[0]:
        example = data[0] if data else ""
        raise HeaderError(
            "missing_header",
            "the first row must be a header row with column names"
            + (f"; it holds data ({example!r})" if example else "; its first cell is empty"),
            [{"field": "file", "row": 1, "reason": "missing header row"}],
        )
    seen: dict[str, str] = {}
    for label in labels:
        if not label:
            continue
        key = header_key(label)
        if key in seen:
            raise HeaderError(
                "duplicate_columns",
                f"column {label!r} appears twice in the header",
                [{"field": "file", "column": label}],
            )
        seen[key] = label


def same_columns(expected: Sequence[str], got: Sequence[str]) -> bool:
    """Later uploads must have the first file's columns (names compared case- and punctuation-blind)."""
    return [header_key(h) for h in expected] == [header_key(h) for h in got]


def plan_columns(header: Sequence[str], spec: ListSpec) -> ColumnPlan:
    """Map a header to units and fields for this list; HeaderError when a named column is absent."""
    check_header(header)
    keys = [header_key(h) for h in header]
    first_type, first_channel = primary_unit(spec)
    primary = primary_index(keys, first_type)
    units = [UnitColumn(primary, header[primary], first_type, first_channel)]
    unique_index = _named(spec.unique_id_column, keys, "unique_id_column")
    name_index = _named(spec.name_column, keys, "name_column")
    timezone_index = priority_index = None
    fields: list[tuple[int, str]] = []
    for i, key in enumerate(keys):
        if i in (primary, unique_index, name_index) or not key:
            continue
        base = _base(key)
        if key in _TIMEZONE_HEADERS and timezone_index is None:
            timezone_index = i
        elif key in _PRIORITY_HEADERS and priority_index is None:
            priority_index = i
        elif key in _PHONE_HEADERS or base in _PHONE_HEADERS:
            units.append(UnitColumn(i, header[i], "phone", _phone_channel(spec)))
        elif key in _EMAIL_HEADERS or base in _EMAIL_HEADERS:
            units.append(UnitColumn(i, header[i], "email", "email"))
        elif base in _MESSENGER_HEADERS:
            units.append(UnitColumn(i, header[i], "client_id", _MESSENGER_HEADERS[base]))
        else:
            fields.append((i, header[i].strip()))
    return ColumnPlan(
        tuple(header), tuple(units), unique_index, name_index, timezone_index, priority_index, tuple(fields)
    )


def _names(key: str, hints: frozenset[str]) -> bool:
    return key in hints or _base(key) in hints


def primary_index(keys: Sequence[str], unit_type: str) -> int:
    """The first column holds the list's unit (Tovie); when the first column is plainly something else and
    a later one is named for the unit (`id,email,…` for an email list), that column is used instead."""
    hints = {"phone": _PHONE_HEADERS, "email": _EMAIL_HEADERS}.get(unit_type)
    if hints is None or _names(keys[0], hints):
        return 0
    return next((i for i, key in enumerate(keys) if _names(key, hints)), 0)


def _named(column: str | None, keys: list[str], setting: str) -> int | None:
    if not column:
        return None
    key = header_key(column)
    if key not in keys:
        raise HeaderError(
            "column_not_found",
            f"{setting} {column!r} is not a column of the file",
            [{"field": setting, "reason": "not in the header"}],
        )
    return keys.index(key)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def normalize_timezone(raw: str) -> str | None:
    """An IANA zone (Europe/Berlin) or a UTC offset (+03:00); RowError otherwise."""
    text = raw.strip()
    if not text:
        return None
    if text in _zones() or _UTC_OFFSET.match(text.upper()):
        return text
    raise RowError("invalid_timezone", f"unknown timezone {text!r}: use an IANA name or a UTC offset")


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")


@lru_cache(maxsize=65_536)
def _email_domain(domain: str) -> str | None:
    """The normalized domain as normalize_email gives it, or None when it refuses it; files repeat domains."""
    try:
        return normalize_email(f"a@{domain}").rpartition("@")[2]
    except InvalidIdentifier:
        return None


def fast_email(raw: str) -> str:
    """normalize_email's result, with the domain checked once per distinct domain: a plain ASCII dot-atom
    local part of at most 64 characters needs no more than lower-casing (the validator's own rules for it),
    so only the domain goes through email_validator. Anything else, or a refusal, takes the full path."""
    text = raw.strip()
    local, at, domain = text.rpartition("@")
    if at and len(local) <= 64 and local.isascii() and _DOT_ATOM.fullmatch(local):
        normalized = _email_domain(domain)
        if normalized is not None and len(local) + 1 + len(normalized) <= 254:
            return f"{local.lower()}@{normalized}"
    return normalize_email(raw)


@lru_cache(maxsize=64)
def _nanp_region(region: str) -> bool:
    try:
        return canonical_nanp_region(region)
    except InvalidIdentifier:
        return False  # the full path says why


def _identifier(unit_type: str, raw: str, region: str, phone_format: PhoneFormat | None) -> Identifier:
    if unit_type == "email":
        return Identifier("email", fast_email(raw))
    # A telephony file's common case, 1 + ten digits in a NANP region: valid means the value itself
    # (normalize_phone's answer for any phone_format, proven in the identifiers tests); a refusal
    # takes the full path below for its reason.
    if unit_type == "phone" and _nanp_region(region) and canonical_nanp(raw):
        return Identifier("phone", raw)
    return normalize_identifier(unit_type, raw, region=region, phone_format=phone_format)


def parse_row(
    cells: Sequence[str], plan: ColumnPlan, *, region: str, phone_format: PhoneFormat | None = None
) -> ParsedRow:
    """Validate and normalize one data row (RowError / InvalidIdentifier naming the column otherwise)."""
    width = len(plan.header)
    values = [(cells[i].strip() if i < len(cells) else "") for i in range(width)]
    normalized = list(values)
    units: list[dict[str, Any]] = []
    priority = 1
    if plan.priority_index is not None and values[plan.priority_index]:
        raw = values[plan.priority_index]
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise RowError("invalid_priority", f"priority must be 1-100, got {raw!r}")
        priority = int(raw)
    for position, unit in enumerate(plan.units):
        raw = values[unit.index]
        if not raw:
            if position == 0:
                raise RowError(f"missing_{unit.type}", f"the first column ({unit.header!r}) is empty")
            continue
        try:
            ident = _identifier(unit.type, raw, region, phone_format)
        except InvalidIdentifier as exc:
            raise RowError(exc.code, f"column {unit.header!r}: {exc.reason}") from exc
        normalized[unit.index] = ident.value
        units.append(
            {
                "type": ident.type,
                "value": ident.value,
                "channel": unit.channel,
                "priority": priority if position == 0 else len(units) + 1,
            }
        )
    timezone = normalize_timezone(values[plan.timezone_index]) if plan.timezone_index is not None else None
    external_id = values[plan.unique_index] if plan.unique_index is not None else None
    if plan.unique_index is not None:
        if not external_id:
            raise RowError(
                "missing_unique_id", f"the unique id column ({plan.header[plan.unique_index]!r}) is empty"
            )
        if plan.unique_index == plan.units[0].index:
            external_id = units[0]["value"]
    name = values[plan.name_index] or None if plan.name_index is not None else None
    return ParsedRow(
        external_id=external_id,
        name=name,
        fields={label: values[i] for i, label in plan.field_columns},
        timezone=timezone,
        units=units,
        row_hash=row_hash(normalized),
    )


def row_hash(normalized_cells: Sequence[str]) -> str:
    """Fingerprint of a row's every field (identifiers normalized): equal only for identical rows."""
    return hashlib.sha256(orjson.dumps(list(normalized_cells))).hexdigest()[:40]


# --- lifecycle ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallOutcome:
    base_status: str
    attempts: int
    reached_channels: tuple[str, ...]


def after_call(
    *,
    base_status: str,
    attempts: int,
    reached_channels: Sequence[str],
    unit_channels: Sequence[str],
    reached: bool,
    channel: str,
    close_when_all_reached: bool,
    max_attempts: int,
) -> CallOutcome:
    """NovaTalks: reached → closed (all channel types reached when the list says so, else open);
    not reached → attempted once max attempts are used up, otherwise still planned for another try."""
    if base_status == "closed":
        return CallOutcome(base_status, attempts, tuple(reached_channels))
    attempts += 1
    done = list(dict.fromkeys([*reached_channels, channel])) if reached else list(reached_channels)
    if reached:
        wanted = set(unit_channels) or {channel}
        status = "closed" if not close_when_all_reached or wanted <= set(done) else "open"
    elif base_status == "open":
        status = "attempted" if attempts >= max_attempts and not done else "open"
    else:
        status = "attempted" if attempts >= max_attempts else "planning"
    return CallOutcome(status, attempts, tuple(done))


def next_run(cron: str, after: datetime) -> datetime:
    """The next time an auto-add schedule fires after `after` (ValueError for a bad expression)."""
    if not croniter.is_valid(cron):
        raise ValueError(f"invalid cron expression {cron!r}")
    nxt: datetime = croniter(cron, after).get_next(datetime)
    return nxt
