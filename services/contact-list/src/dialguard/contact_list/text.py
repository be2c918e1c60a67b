"""Request strings Postgres can store: no NUL character and valid UTF-8 (a lone surrogate from JSON is
not), refused as a 422 naming the field instead of failing as a 500 at insert time."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def storable(value: str) -> str:
    """The value unchanged, or ValueError saying why Postgres would refuse it."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid UTF-8 text") from exc
    return value


Text = Annotated[str, AfterValidator(storable)]
