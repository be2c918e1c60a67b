"""Pure rules: criteria, action parameters, the rate limiter, upload rows, export link signatures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialguard.lead_action.domain import (
    ALL_STATES_MASK,
    STATE_BITS,
    Criteria,
    ParamError,
    chunks,
    is_dnc_disposition,
    parse_criteria,
    parse_emails,
    parse_move,
    parse_schedule,
)
from dialguard.lead_action.exports import sign, verify
from dialguard.lead_action.ratelimit import RateLimiter, parse_rate
from dialguard.lead_action.repository import criteria_parts, criteria_where
from dialguard.lead_action.uploads import header_map, parse_json_leads


def _field(exc: pytest.ExceptionInfo[ParamError]) -> str:
    return exc.value.field


def test_empty_lists_filter_nothing_and_ids_accept_numbers_or_strings() -> None:
    c = parse_criteria(
        {
            "campaignId": "3",
            "campaignIds": [3, "3"],
            "listIds": [],
            "leadStates": ["ready"],
            "leadTimezones": None,
        },
        region="US",
    )
    assert c.campaign_ids == (3,)
    assert c.list_ids is None
    assert c.lead_states == ("READY",)
    assert c.single_campaign == 3
    assert parse_criteria({}, region="US").is_empty


def test_contradictory_or_unknown_criteria_name_the_field() -> None:
    with pytest.raises(ParamError) as exc:
        parse_criteria({"campaignId": 1, "campaignIds": [2]}, region="US")
    assert _field(exc) == "campaignLeadSearchCriteria.campaignIds"
    with pytest.raises(ParamError) as exc:
        parse_criteria({"physicalStates": ["FLYING"]}, region="US")
    assert _field(exc) == "campaignLeadSearchCriteria.physicalStates.0"
    with pytest.raises(ParamError) as exc:
        parse_criteria({"leadIds": ["x"]}, region="US")
    assert _field(exc) == "campaignLeadSearchCriteria.leadIds.0"


def test_phone_criteria_match_every_reading() -> None:
    c = parse_criteria({"leadPhoneNumbers": ["+1 (267) 234-5678", "2672345678"]}, region="US")
    assert c.phones is not None
    assert c.phones[0] == "12672345678"  # other candidate readings may follow; stored phones are valid ones
    assert c.phones.count("12672345678") == 1


def test_criteria_where_is_parameterised_with_only_given_criteria() -> None:
    where, args = criteria_where("acme", Criteria(lead_states=("READY",), timezones=("UTC",)), start=3)
    assert where == "account_id = $3 AND status = ANY($4::text[]) AND timezone = ANY($5::text[])"
    assert args == ["acme", ["READY"], ["UTC"]]


def test_campaign_and_list_criteria_find_leads_through_their_origin_lists() -> None:
    where, args, placements = criteria_parts("acme", Criteria(campaign_ids=(1,), list_ids=(7, 8)), start=2)
    assert where == "account_id = $2 AND campaign_id = ANY($3::bigint[]) AND list_id = ANY($4::bigint[])"
    assert args == ["acme", [1], [7, 8]]
    assert placements == (
        "p.account_id = $2 AND p.campaign_id = ANY($3::bigint[]) AND p.list_id = ANY($4::bigint[])"
    )
    full, _ = criteria_where("acme", Criteria(campaign_ids=(1,), list_ids=(7, 8)), start=2)
    assert full.startswith(f"{where} AND origin_list_id = ANY(ARRAY(")
    assert f"FROM lead_placements p WHERE {placements}))" in full
    assert criteria_parts("acme", Criteria(lead_ids=(5,)))[2] is None


def test_state_mask_keeps_every_status_a_match_can_have() -> None:
    ready, callback, paused = STATE_BITS["READY"], STATE_BITS["CALLBACK"], STATE_BITS["PAUSED"]
    assert Criteria().state_mask == ALL_STATES_MASK
    assert Criteria(lead_states=("PAUSED", "READY")).state_mask == paused | ready
    assert Criteria(physical_states=("DIALABLE",)).state_mask == ready | callback
    not_dialable = Criteria(physical_states=("NOT_DIALABLE",)).state_mask
    assert not_dialable == ALL_STATES_MASK & ~(ready | callback)
    assert Criteria(physical_states=("SUPPRESSED",)).state_mask == ALL_STATES_MASK
    assert Criteria(lead_states=("READY", "PAUSED"), physical_states=("DIALABLE",)).state_mask == ready
    assert Criteria(lead_states=("PAUSED",), physical_states=("DIALABLE",)).state_mask == 0


def test_move_params() -> None:
    move = parse_move(
        {"CAMPAIGN_ID": 9, "LIST_ID": "0", "LIST_NAME": "new", "CREATE_COPY_SETTING": "transition"}
    )
    assert (move.campaign_id, move.list_id, move.list_name, move.mode, move.duplicate_action) == (
        9,
        None,
        "new",
        "transition",
        "MOVE",
    )
    assert parse_move({"CAMPAIGN_ID": "9", "LIST_ID": 4, "CREATE_COPY_SETTING": True}).mode == "copy"
    for params, field in (
        ({}, "CAMPAIGN_ID"),
        ({"CAMPAIGN_ID": 9}, "LIST_NAME"),
        ({"CAMPAIGN_ID": 9, "LIST_ID": 2, "DUPLICATE_ACTION_SETTING": "MERGE"}, "DUPLICATE_ACTION_SETTING"),
        ({"CAMPAIGN_ID": "nine", "LIST_ID": 2}, "CAMPAIGN_ID"),
    ):
        with pytest.raises(ParamError) as exc:
            parse_move(params)
        assert _field(exc) == f"leadActionParams.paramMap.{field}"


def test_schedule_params_need_exactly_one_of_time_or_cancel() -> None:
    s = parse_schedule({"CALLBACK_AT": "2030-01-01T12:00:00+01:00", "AGENT_ID": "a7"}, with_agent=True)
    assert (s.cancel, s.callback_at, s.agent_id) == (False, datetime(2030, 1, 1, 11, tzinfo=UTC), "a7")
    assert parse_schedule({"CANCEL": "TRUE"}, with_agent=True).cancel
    for params in (
        {},
        {"CANCEL": "true", "CALLBACK_AT": "2030-01-01T00:00:00Z"},
        {"CALLBACK_AT": "2030-01-01T00:00:00"},
    ):
        with pytest.raises(ParamError):
            parse_schedule(params, with_agent=False)


def test_emails_and_dnc_dispositions() -> None:
    assert parse_emails({"EMAIL_ADDRESSES": " A@Example.com; b@example.com,a@example.com"}) == (
        "a@example.com",
        "b@example.com",
    )
    with pytest.raises(ParamError):
        parse_emails({"EMAIL_ADDRESSES": "nobody"})
    assert is_dnc_disposition(" dnc ", frozenset({"DNC"}))
    assert not is_dnc_disposition("SALE", frozenset({"DNC"}))


def test_chunks_hold_at_most_a_thousand_ids() -> None:
    assert [len(c) for c in chunks(list(range(2500)))] == [1000, 1000, 500]
    assert chunks([]) == [[]]


def test_rate_limiter_slides_per_key() -> None:
    assert parse_rate(" 2 / 10 ") == (2, 10.0)
    limiter = RateLimiter(2, 10.0)
    assert limiter.retry_after("t", now=0.0) is None
    assert limiter.retry_after("t", now=1.0) is None
    assert limiter.retry_after("t", now=2.0) == pytest.approx(8.0)
    assert limiter.retry_after("other", now=2.0) is None
    assert limiter.retry_after("t", now=10.5) is None


def test_json_rows_report_index_field_and_reason() -> None:
    parsed = parse_json_leads(
        [
            {"phone": "2672345678", "external_id": 7},
            "x",
            {"phone": "+44 20 7946 0958", "external_id": "b", "fields": []},
        ],
        region="US",
        phone_format=None,
    )
    assert parsed.rows[0]["phone"] == "12672345678"
    assert parsed.rows[0]["external_id"] == "7"
    assert [(e["index"], e["field"]) for e in parsed.errors] == [(1, None), (2, "fields")]


def test_csv_headers_map_by_name() -> None:
    assert header_map(["Phone Number", "External-ID", "first name", "Plan", "TZ"]) == {
        0: "phone",
        1: "external_id",
        2: "first_name",
        4: "timezone",
    }


def test_export_links_are_bound_to_account_export_and_expiry() -> None:
    sig = sign("secret-123", account_id="acme", export_id="e1", expires=2000)
    assert verify("secret-123", account_id="acme", export_id="e1", expires=2000, signature=sig, now=1000)
    assert not verify("secret-123", account_id="acme", export_id="e1", expires=2000, signature=sig, now=2001)
    assert not verify("secret-123", account_id="other", export_id="e1", expires=2000, signature=sig, now=1000)
    assert not verify("secret-123", account_id="acme", export_id="e1", expires=3000, signature=sig, now=1000)
