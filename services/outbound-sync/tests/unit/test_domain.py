"""Pure delivery rules: templates, masking, TM request shape, retry classification and backoff."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime

from dialguard.outbound_sync.domain import (
    backoff_seconds,
    classify,
    idempotency_key,
    mask_headers,
    merge_headers,
    parse_retry_after,
    render_template,
    tm_body,
    tm_url,
    unknown_placeholders,
    valid_url,
)

ENTRY = {
    "entry_id": "e-1",
    "stoplist_id": "s-1",
    "identifier": {"type": "phone", "value": "4520123456"},
    "channel": None,
    "sender": None,
    "reason": 'said "stop"',
    "added_at": "2026-11-23T10:00:00.000Z",
    "expires_at": None,
}


def test_unknown_placeholders_are_named() -> None:
    assert unknown_placeholders("{{identifier.value}} {{ channel }} {{phone}} {{x.y}}") == ["phone", "x.y"]
    assert unknown_placeholders('{"v": "{{identifier.value}}"}') == []


def test_json_template_escapes_values_and_renders_null_as_empty() -> None:
    body = render_template(
        '{"v": "{{identifier.value}}", "r": "{{reason}}", "c": "{{channel}}"}', ENTRY, json_escape=True
    )
    assert json.loads(body) == {"v": "4520123456", "r": 'said "stop"', "c": ""}
    assert render_template("n={{identifier.value}}&r={{reason}}", ENTRY, json_escape=False) == (
        'n=4520123456&r=said "stop"'
    )


def test_urls_must_be_absolute_http() -> None:
    assert valid_url("https://dnc.example.com/api?x=1") is None
    assert valid_url("http://127.0.0.1:9100/x") is None
    assert valid_url("ftp://example.com/x") is not None
    assert valid_url("example.com/x") is not None
    assert valid_url("http:///nohost") is not None
    assert valid_url("http://example.com:99999/") is not None


def test_secret_headers_are_masked_and_kept_when_echoed() -> None:
    shown = mask_headers({"Authorization": "Bearer abcdefghijklmnop", "X-Api-Key": "short", "Accept": "json"})
    assert shown == {"Authorization": "Bear…***", "X-Api-Key": "…***", "Accept": "json"}
    stored = {"Authorization": "Bearer abcdefghijklmnop"}
    assert merge_headers({"Authorization": "Bear…***", "Accept": "x"}, stored) == {
        "Authorization": "Bearer abcdefghijklmnop",
        "Accept": "x",
    }


def test_tm_request_shape() -> None:
    assert (
        tm_url("http://h:9100/outbound{system}", "03", "Sales DK")
        == "http://h:9100/outbound03/projects/Sales%20DK/dnc"
    )
    assert tm_body(ENTRY, 30) == {"phone": "4520123456", "expires_at": "2026-12-23T10:00:00.000Z"}
    email = {
        **ENTRY,
        "identifier": {"type": "email", "value": "a@b.dk"},
        "expires_at": "2027-01-01T00:00:00.000Z",
    }
    assert tm_body(email, None) == {"email": "a@b.dk", "expires_at": "2027-01-01T00:00:00.000Z"}


def test_idempotency_key_is_stable_per_target_and_entry() -> None:
    target = uuid.uuid4()
    assert idempotency_key(target, "e-1") == idempotency_key(target, "e-1")
    assert idempotency_key(target, "e-1") != idempotency_key(uuid.uuid4(), "e-1")


def test_idempotency_key_is_the_uuid5_already_sent_keys_used() -> None:
    namespace = uuid.UUID("6f1d5b0e-6a53-4c44-9b0d-3f3f0b6c7a21")
    for entry_id in ("e-1", str(uuid.uuid4()), "æøå-ünïcode", ""):
        target = uuid.uuid4()
        assert idempotency_key(target, entry_id) == str(uuid.uuid5(namespace, f"{target}:{entry_id}"))


def test_retry_classification() -> None:
    assert classify(201, None).status == "delivered"
    assert classify(503, None).status == "retry"
    limited = classify(429, "7")
    assert (limited.status, limited.retry_after_s) == ("retry", 7.0)
    assert classify(400, None).status == "failed"
    assert classify(404, None).status == "failed"
    now = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 23 Nov 2026 10:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("soon") is None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    first = backoff_seconds(1, base=1.0, cap=60.0, rng=rng)
    assert 0.5 <= first <= 1.0
    fourth = backoff_seconds(4, base=1.0, cap=60.0, rng=rng)
    assert 4.0 <= fourth <= 8.0
    assert backoff_seconds(30, base=1.0, cap=60.0, rng=rng) <= 60.0
