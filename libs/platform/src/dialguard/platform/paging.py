"""Opaque keyset cursors for `?limit=&cursor=` pages (CONTRACT §3)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson

from dialguard.platform.errors import ApiError

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def encode_cursor(values: list[Any]) -> str:
    """The last row's sort key, url-safe."""
    return base64.urlsafe_b64encode(orjson.dumps(values, default=str)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    """Inverse of encode_cursor; a tampered cursor is a 422 naming the parameter."""
    if not cursor:
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise ApiError(
            422, "validation_error", "invalid cursor", [{"field": "cursor", "reason": "malformed"}]
        ) from exc
    if not isinstance(value, list):
        raise ApiError(
            422, "validation_error", "invalid cursor", [{"field": "cursor", "reason": "malformed"}]
        )
    return value


def decode_cursor_key(cursor: str | None, *parsers: Callable[[Any], Any]) -> tuple[Any, ...] | None:
    """The cursor's sort key, each part read by its parser (e.g. datetime.fromisoformat, uuid.UUID);
    a cursor of the wrong shape is the same 422 as a tampered one, never a 500."""
    values = decode_cursor(cursor)
    if values is None:
        return None
    try:
        if len(values) != len(parsers):
            raise ValueError("wrong number of parts")
        return tuple(parse(v) for parse, v in zip(parsers, values, strict=True))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ApiError(
            422, "validation_error", "invalid cursor", [{"field": "cursor", "reason": "malformed"}]
        ) from exc
