"""Lead rows from a JSON body or a CSV file: each row normalized or reported with its index and reason."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from dialguard.files.tabular import open_table
from dialguard.identifiers import InvalidIdentifier, normalize_phone

MAX_JSON_LEADS = 10_000
MAX_FIELDS = 100
MAX_TEXT = 256
REPORTED_ERRORS = 1000
_HEADER_NORMAL = re.compile(r"[^a-z0-9]")
# Header spellings accepted per lead attribute (compared lower-case without separators).
HEADER_ALIASES: dict[str, str] = {
    "phone": "phone",
    "phonenumber": "phone",
    "leadphone": "phone",
    "number": "phone",
    "externalid": "external_id",
    "leadexternalid": "external_id",
    "id": "external_id",
    "firstname": "first_name",
    "lastname": "last_name",
    "timezone": "timezone",
    "tz": "timezone",
}


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


@dataclass
class ParsedLeads:
    """Good rows ready for one set-based insert, and the bad rows' reports."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0

    def reject(self, report: dict[str, Any]) -> None:
        self.rejected += 1
        if len(self.errors) < REPORTED_ERRORS:
            self.errors.append(report)


def _text(value: Any, name: str, *, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _RowError(name, "required", "missing_field")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _RowError(name, "must be a string", "invalid_field")
    text = str(value).strip()
    if len(text) > MAX_TEXT:
        raise _RowError(name, f"at most {MAX_TEXT} characters", "invalid_field")
    return text


class _RowError(ValueError):
    def __init__(self, field_name: str, reason: str, code: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason
        self.code = code


def _lead(raw: dict[str, Any], *, region: str, phone_format: str | None) -> dict[str, Any]:
    phone_raw = _text(raw.get("phone"), "phone", required=True)
    assert phone_raw is not None
    try:
        phone = normalize_phone(
            phone_raw,
            region=str(raw.get("region") or region),
            phone_format=raw.get("phone_format") or phone_format,  # type: ignore[arg-type]
        )
    except InvalidIdentifier as exc:
        raise _RowError("phone", exc.reason, exc.code) from exc
    timezone = _text(raw.get("timezone"), "timezone")
    if timezone is not None and timezone not in _zones():
        raise _RowError("timezone", "not an IANA time zone name (e.g. America/New_York)", "invalid_timezone")
    fields = raw.get("fields")
    fields = {} if fields is None else fields
    if not isinstance(fields, dict) or len(fields) > MAX_FIELDS:
        raise _RowError("fields", f"an object of at most {MAX_FIELDS} keys", "invalid_field")
    for key, value in fields.items():
        if len(str(key)) > MAX_TEXT or (
            value is not None and not isinstance(value, str | int | float | bool)
        ):
            raise _RowError(f"fields.{key}", "values must be scalars", "invalid_field")
    return {
        "phone": phone,
        "external_id": _text(raw.get("external_id"), "external_id", required=True),
        "first_name": _text(raw.get("first_name"), "first_name"),
        "last_name": _text(raw.get("last_name"), "last_name"),
        "timezone": timezone,
        "fields": fields,
    }


def parse_json_leads(leads: Iterable[Any], *, region: str, phone_format: str | None) -> ParsedLeads:
    """Rows of `{"leads": [...]}`; a bad row is reported by its 0-based index, never fails the request."""
    out = ParsedLeads()
    for index, raw in enumerate(leads):
        if not isinstance(raw, dict):
            out.reject({"index": index, "field": None, "code": "invalid_row", "reason": "must be an object"})
            continue
        try:
            out.rows.append(_lead(raw, region=region, phone_format=phone_format))
        except _RowError as exc:
            out.reject({"index": index, "field": exc.field, "code": exc.code, "reason": exc.reason})
    return out


def header_map(header: list[str]) -> dict[int, str]:
    """Column index -> lead attribute; other columns become `fields` under their header."""
    mapping: dict[int, str] = {}
    for i, name in enumerate(header):
        attribute = HEADER_ALIASES.get(_HEADER_NORMAL.sub("", name.lower()))
        if attribute is not None and attribute not in mapping.values():
            mapping[i] = attribute
    return mapping


def parse_csv_leads(path: str, kind: Any, *, region: str, phone_format: str | None) -> ParsedLeads:
    """Rows of an uploaded file with a header row (runs in a worker thread: the readers are blocking)."""
    table = open_table(path, kind, has_header=True)
    header = table.header or []
    mapping = header_map(header)
    out = ParsedLeads()
    if "phone" not in mapping.values():
        out.reject(
            {
                "index": None,
                "row": table.header_row,
                "field": "phone",
                "code": "missing_column",
                "reason": f"no phone column in header {header}",
            }
        )
        return out
    for index, row in enumerate(table.rows()):
        number, cells = row
        if row.errors:
            err = row.errors[0]
            out.reject(
                {
                    "index": index,
                    "row": number,
                    "field": header[err.column - 1] if 0 < err.column <= len(header) else None,
                    "code": err.code,
                    "reason": err.message,
                }
            )
            continue
        raw: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for i, cell in enumerate(cells):
            attribute = mapping.get(i)
            if attribute is not None:
                raw[attribute] = cell
            elif i < len(header) and header[i].strip() and cell != "":
                with contextlib.suppress(Exception):
                    extra[header[i].strip()[:MAX_TEXT]] = cell
        raw["fields"] = extra
        try:
            out.rows.append(_lead(raw, region=region, phone_format=phone_format))
        except _RowError as exc:
            out.reject(
                {"index": index, "row": number, "field": exc.field, "code": exc.code, "reason": exc.reason}
            )
    return out
