"""Strings that Postgres cannot store are refused at the edge (422), never at insert time (500)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dialguard.contact_list.api import ContactListIn
from dialguard.contact_list.filters import ContactFilter


@pytest.mark.parametrize("name", ["a\x00b", "\ud800"])
def test_unstorable_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        ContactListIn(name=name)


def test_unstorable_filter_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        ContactFilter.model_validate({"fields": {"city": "x\x00"}})
    assert ContactFilter.model_validate({"fields": {"city": "Zürich"}}).fields == {"city": "Zürich"}
