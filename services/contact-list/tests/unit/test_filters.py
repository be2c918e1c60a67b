"""The filter model: aliases clients use, and refusal of criteria it does not know."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dialguard.contact_list.filters import ContactFilter


def test_aliases_and_a_single_status() -> None:
    flt = ContactFilter.model_validate({"channel_type": "voice", "status": "callable", "type": "phone"})
    assert (flt.channel, flt.statuses, flt.unit_type) == ("voice", ["callable"], "phone")


def test_stored_form_reads_back_the_same() -> None:
    flt = ContactFilter.model_validate({"channel": "email", "fields": {"city": "Boston"}})
    assert ContactFilter.model_validate(flt.model_dump(exclude_none=True)) == flt


@pytest.mark.parametrize("body", [{"colour": "red"}, {"status": "gone"}, {"channel": "fax"}])
def test_unknown_criteria_and_values_are_refused(body: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ContactFilter.model_validate(body)
