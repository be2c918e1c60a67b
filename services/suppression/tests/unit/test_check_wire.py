"""The batch check's decoding, error naming, encoding and canonical-phone detection (no I/O)."""

from __future__ import annotations

import orjson
import pytest

from dialguard.platform.errors import ApiError
from dialguard.suppression.check_wire import (
    MAX_CHECK_IDS,
    CheckError,
    CheckIdentifier,
    CheckResult,
    decode_request,
    encode_answer,
)
from dialguard.suppression.checks import batch_keys, canonical_nanp_phones


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (b"{}", "identifiers"),
        (b'{"identifiers": {}}', "identifiers"),
        (b'{"identifiers": [1]}', "identifiers.0.type"),
        (b'{"identifiers": [{"type": "phone"}]}', "identifiers.0.value"),
        (b'{"identifiers": [{"type": "phone", "value": ""}]}', "identifiers.0.value"),
        (b'{"identifiers": [{"type": "phone", "value": 5}]}', "identifiers.0.value"),
        (
            b'{"identifiers": [{"type": "phone", "value": "x"}, {"type": "fax", "value": "1"}]}',
            "identifiers.1.type",
        ),
        (orjson.dumps({"identifiers": [{"type": "email", "value": "a" * 513}]}), "identifiers.0.value"),
        (
            orjson.dumps({"identifiers": [{"type": "phone", "value": "1"}] * (MAX_CHECK_IDS + 1)}),
            "identifiers",
        ),
    ],
)
def test_a_bad_body_is_a_422_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(ApiError) as caught:
        decode_request(body)
    assert caught.value.status == 422
    assert caught.value.details == [{"field": field, "reason": caught.value.details[0]["reason"]}]


def test_scope_fields_are_passed_through_for_the_route_to_validate() -> None:
    req = decode_request(b'{"identifiers": [{"type": "phone", "value": "x", "extra": 1}], "channel": 7}')
    assert req.identifiers == [CheckIdentifier("phone", "x")]
    assert req.channel == 7


def test_answer_is_the_contract_shape_with_error_only_where_there_is_one() -> None:
    results = [
        CheckResult(CheckIdentifier("phone", "12672345600"), True),
        CheckResult(CheckIdentifier("email", "nope"), False, CheckError("invalid_email", "no @")),
    ]
    assert orjson.loads(encode_answer(results)) == {
        "results": [
            {"identifier": {"type": "phone", "value": "12672345600"}, "suppressed": True},
            {
                "identifier": {"type": "email", "value": "nope"},
                "suppressed": False,
                "error": {"code": "invalid_email", "message": "no @"},
            },
        ]
    }


def _phones(*values: str) -> list[CheckIdentifier]:
    return [CheckIdentifier("phone", v) for v in values]


@pytest.mark.parametrize(
    "items",
    [
        [],
        _phones("12672345600", "2672345600"),  # ten digits: may read two ways
        _phones("12672345600", "126723456001", "1267234560"),  # lengths 11 + 12 + 10: total still 33
        _phones("12672345600", "22672345600"),  # eleven digits not starting with 1
        _phones("12672345600", "1267234560\u0661"),  # an Arabic-Indic digit is a digit, not ASCII
        _phones("12672345600", "+12672345601"),
        [*_phones("12672345600"), CheckIdentifier("email", "a@b.co")],
    ],
)
def test_only_all_canonical_nanp_batches_take_the_vectorised_path(items: list[CheckIdentifier]) -> None:
    assert canonical_nanp_phones(items, region="US") is None


def test_canonical_batch_reads_the_same_on_both_paths() -> None:
    items = _phones("12672345600", "18005550100", "12672345600")
    assert canonical_nanp_phones(items, region="US") == ["12672345600", "18005550100", "12672345600"]
    assert canonical_nanp_phones(items, region="GB") is None  # outside NANP, '1…' is not canonical
    keys, errors = batch_keys(items, region="US")
    assert not errors
    assert keys == [("phone:12672345600",), ("phone:18005550100",), ("phone:12672345600",)]
