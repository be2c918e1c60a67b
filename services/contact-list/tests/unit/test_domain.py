"""Pure rules: column plans, row validation, duplicate fingerprints, lifecycle, schedules."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from dialguard.contact_list.domain import (
    HeaderError,
    ListSpec,
    RowError,
    after_call,
    check_header,
    fast_email,
    next_run,
    normalize_timezone,
    parse_row,
    plan_columns,
    same_columns,
)
from dialguard.identifiers import InvalidIdentifier, normalize_identifier
from dialguard.identifiers.normalize import normalize_email

TELEPHONY = ListSpec("telephony", "voice", None, None)


def test_plan_maps_units_timezone_priority_and_fields() -> None:
    plan = plan_columns(
        ["Phone", "First name", "Mobile 2", "E-Mail", "WhatsApp", "Timezone", "Priority", "City"], TELEPHONY
    )
    assert [(u.index, u.type, u.channel) for u in plan.units] == [
        (0, "phone", "voice"),
        (2, "phone", "voice"),
        (3, "email", "email"),
        (4, "client_id", "whatsapp"),
    ]
    assert (plan.timezone_index, plan.priority_index) == (5, 6)
    assert plan.field_columns == ((1, "First name"), (7, "City"))


def test_text_list_first_column_is_the_channels_client_id() -> None:
    assert plan_columns(["client"], ListSpec("text", "email", None, None)).units[0].type == "email"
    assert plan_columns(["client"], ListSpec("text", "viber", None, None)).units[0].type == "client_id"
    assert plan_columns(["client"], ListSpec("text", "sms", None, None)).units[0].type == "phone"


def test_unique_and_name_columns_must_exist() -> None:
    plan = plan_columns(["phone", "ID", "Full Name"], ListSpec("telephony", None, "id", "full_name"))
    assert (plan.unique_index, plan.name_index, plan.field_columns) == (1, 2, ())
    with pytest.raises(HeaderError) as err:
        plan_columns(["phone", "name"], ListSpec("telephony", None, "customer_id", None))
    assert err.value.code == "column_not_found"


@pytest.mark.parametrize(
    "header",
    [["12671234567", "Ann"], ["phone", "ann@example.com"], ["", "name"], ["42", "x"]],
)
def test_a_data_row_is_not_a_header(header: list[str]) -> None:
    with pytest.raises(HeaderError) as err:
        check_header(header)
    assert err.value.code == "missing_header"


def test_duplicate_column_names_are_refused() -> None:
    with pytest.raises(HeaderError) as err:
        check_header(["phone", "City", "city"])
    assert err.value.code == "duplicate_columns"


def test_same_columns_ignores_case_and_punctuation_only() -> None:
    assert same_columns(["Phone", "First Name"], ["phone", "first_name"])
    assert not same_columns(["phone", "city"], ["phone", "town"])
    assert not same_columns(["phone", "city"], ["city", "phone"])


def test_parse_row_normalizes_units_and_keeps_fields() -> None:
    plan = plan_columns(
        ["phone", "name", "email", "tz", "priority"], ListSpec("telephony", None, None, "name")
    )
    row = parse_row(
        ["+1 (267) 234-5678", " Ann ", "Ann@Example.COM", "Europe/Berlin", "3"], plan, region="US"
    )
    assert row.name == "Ann"
    assert row.timezone == "Europe/Berlin"
    assert row.units == [
        {"type": "phone", "value": "12672345678", "channel": "voice", "priority": 3},
        {"type": "email", "value": "ann@example.com", "channel": "email", "priority": 2},
    ]
    assert row.fields == {}


def test_wrong_phone_names_the_column_and_reason() -> None:
    plan = plan_columns(["phone"], TELEPHONY)
    with pytest.raises(RowError) as err:
        parse_row(["12345"], plan, region="US")
    assert err.value.code == "invalid_phone"
    assert "'phone'" in err.value.reason


@pytest.mark.parametrize(
    ("cells", "code"),
    [([""], "missing_phone"), (["12672345678", "Mars/Olympus"], "invalid_timezone")],
)
def test_row_errors(cells: list[str], code: str) -> None:
    plan = plan_columns(["phone", "timezone"], TELEPHONY)
    with pytest.raises(RowError) as err:
        parse_row(cells, plan, region="US")
    assert err.value.code == code


def test_fingerprint_equal_only_for_identical_rows() -> None:
    plan = plan_columns(["phone", "city"], TELEPHONY)
    a = parse_row(["12672345678", "Boston"], plan, region="US")
    same = parse_row(["+1 267 234 5678", " Boston "], plan, region="US")
    other = parse_row(["12672345678", "Chicago"], plan, region="US")
    assert a.row_hash == same.row_hash
    assert a.row_hash != other.row_hash


def _call(**kw: object) -> tuple[str, int]:
    args: dict[str, object] = {
        "base_status": "planning",
        "attempts": 0,
        "reached_channels": [],
        "unit_channels": ["voice"],
        "reached": False,
        "channel": "voice",
        "close_when_all_reached": False,
        "max_attempts": 3,
        **kw,
    }
    out = after_call(**args)  # type: ignore[arg-type]
    return out.base_status, out.attempts


def test_lifecycle_after_calls() -> None:
    assert _call() == ("planning", 1)
    assert _call(attempts=2) == ("attempted", 3)
    assert _call(reached=True) == ("closed", 1)
    assert _call(reached=True, unit_channels=["voice", "email"], close_when_all_reached=True) == ("open", 1)
    assert _call(
        reached=True,
        channel="email",
        reached_channels=["voice"],
        unit_channels=["voice", "email"],
        close_when_all_reached=True,
    ) == ("closed", 1)
    assert _call(base_status="closed", attempts=4) == ("closed", 4)


def test_cron_schedule() -> None:
    start = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    assert next_run("0 0 * * *", start) == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="cron"):
        next_run("every day", start)


@pytest.mark.parametrize("raw", ["Europe/Berlin", "UTC", "UTC+3", "+03:00", "GMT-11"])
def test_timezones_accepted(raw: str) -> None:
    assert normalize_timezone(raw) == raw


@pytest.mark.parametrize("raw", ["Mars/Olympus", "+25:00", "EST5EDT-ish"])
def test_timezones_refused(raw: str) -> None:
    with pytest.raises(RowError):
        normalize_timezone(raw)


def test_a_later_column_named_for_the_unit_is_the_primary_one() -> None:
    # The NovaTalks sample: id,email,full_name,debt for an email list.
    spec = ListSpec("text", "email", "id", "full_name")
    plan = plan_columns(["id", "email", "full_name", "debt"], spec)
    assert [(u.index, u.type) for u in plan.units] == [(1, "email")]
    row = parse_row(["1", "StoNadya@ukr.net", "nadya", "75.25"], plan, region="US")
    assert (row.external_id, row.name, row.fields) == ("1", "nadya", {"debt": "75.25"})
    assert row.units[0]["value"] == "stonadya@ukr.net"
    # A telephony file with the name first; without any phone-named column the first column is the phone.
    assert plan_columns(["name", "phone"], TELEPHONY).units[0].index == 1
    assert plan_columns(["customer", "notes"], TELEPHONY).units[0].index == 0


@pytest.mark.parametrize(
    "raw",
    [
        "A.B@Example.COM",
        " x@example.com ",
        "a+b@sub.example.co.uk",
        "a@münchen.de",
        "ä@example.com",
        "a..b@example.com",
        ".a@example.com",
        "a@localhost",
        "a@-b.com",
        "a@example.invalid",
        '"q"@example.com',
        "a@[1.2.3.4]",
        "@example.com",
        "a@",
        "Bob <a@b.com>",
        "a@exa_mple.com",
        "x" * 65 + "@example.com",
        "x" * 64 + "@" + ".".join(["d" * 60] * 4) + ".com",
    ],
)
def test_fast_email_answers_as_the_full_validator(raw: str) -> None:
    def outcome(fn: Callable[[str], str]) -> str:
        try:
            return fn(raw)
        except InvalidIdentifier as exc:
            return f"error: {exc.reason}"

    assert outcome(fast_email) == outcome(normalize_email)


@pytest.mark.parametrize("region", ["US", "CA", "GB"])
def test_phone_units_answer_as_normalize_identifier(region: str) -> None:
    # parse_row's canonical-NANP shortcut against the full normalizer: same value, same refusal.
    plan = plan_columns(["phone"], TELEPHONY)
    rng = random.Random(7)
    values = [f"1{rng.randrange(10**10):010d}" for _ in range(3000)]
    values += ["12672345678", "12002345678", "12671234567", "2672345678", "+12672345678", "1267234567"]
    for raw in values:
        try:
            expected: tuple[str, str] = ("ok", normalize_identifier("phone", raw, region=region).value)
        except InvalidIdentifier as exc:
            expected = (exc.code, f"column 'phone': {exc.reason}")
        try:
            got: tuple[str, str] = ("ok", parse_row([raw], plan, region=region).units[0]["value"])
        except RowError as exc:
            got = (exc.code, exc.reason)
        assert got == expected, raw
