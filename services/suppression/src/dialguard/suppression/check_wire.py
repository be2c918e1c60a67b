"""The batch check's wire format, decoded and encoded by msgspec straight from and to typed structs.

At 10,000 identifiers per request, building and walking 10,000 dicts (orjson) cost more than the
cache lookup itself; msgspec validates the shape in C while decoding and encodes the results
without per-item dicts. A body msgspec rejects is re-read by `explain` only to name the field in
the contract's 422, so the error path stays as specific as the rest of the service.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import orjson

from dialguard.identifiers import IdentifierType
from dialguard.platform.errors import ApiError
from dialguard.suppression.checks import ID_TYPES

MAX_CHECK_IDS = 10_000
MAX_VALUE_LEN = 512


def invalid(field: str, reason: str) -> ApiError:
    """422 naming the field, as every other route of the service answers bad input."""
    return ApiError(422, "validation_error", f"invalid input: {field}", [{"field": field, "reason": reason}])


class CheckIdentifier(msgspec.Struct, gc=False):
    """One identifier as the dialer sent it (echoed back in its result)."""

    type: IdentifierType
    value: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_VALUE_LEN)]


class CheckRequest(msgspec.Struct):
    """POST /v1/check; the optional scope fields are validated by check_http with the GET route's rules."""

    identifiers: Annotated[list[CheckIdentifier], msgspec.Meta(max_length=MAX_CHECK_IDS)]
    channel: Any = None
    sender: Any = None
    region: Any = None
    stoplist_ids: Any = None


class CheckError(msgspec.Struct, gc=False):
    """Why one identifier could not be read (the batch is still answered)."""

    code: str
    message: str


class CheckResult(msgspec.Struct, gc=False, omit_defaults=True):
    """One answer, in request order."""

    identifier: CheckIdentifier
    suppressed: bool
    error: CheckError | None = None


class CheckAnswer(msgspec.Struct, gc=False):
    results: list[CheckResult]


_DECODER = msgspec.json.Decoder(CheckRequest)
_ENCODER = msgspec.json.Encoder()


def decode_request(raw: bytes) -> CheckRequest:
    """The request, or a 422 naming the first field that is wrong."""
    try:
        return _DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise explain(raw, exc) from exc


def explain(raw: bytes, exc: msgspec.DecodeError) -> ApiError:
    """Name the offending field the way the rest of the API does (msgspec's paths and wording differ)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as bad:
        return invalid("body", f"not JSON: {bad}")
    if not isinstance(data, dict):
        return invalid("body", "must be an object")
    ids = data.get("identifiers")
    if not isinstance(ids, list):
        return invalid("identifiers", "required list")
    if len(ids) > MAX_CHECK_IDS:
        return invalid("identifiers", f"at most {MAX_CHECK_IDS} identifiers per request")
    for i, item in enumerate(ids):
        if not isinstance(item, dict) or item.get("type") not in ID_TYPES:
            return invalid(f"identifiers.{i}.type", f"one of {sorted(ID_TYPES)}")
        value = item.get("value")
        if not isinstance(value, str) or not 0 < len(value) <= MAX_VALUE_LEN:
            return invalid(f"identifiers.{i}.value", f"string of 1-{MAX_VALUE_LEN} characters")
    return invalid("body", str(exc))


def encode_answer(results: list[CheckResult]) -> bytes:
    return _ENCODER.encode(CheckAnswer(results))
