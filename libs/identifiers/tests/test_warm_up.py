"""Start-up builds the default region's phone rules, so no request pays for compiling them."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
from dialguard.identifiers import normalize, warm_phone_rules
assert 1 not in normalize._VALIDITY and 44 not in normalize._VALIDITY
warm_phone_rules("us")
assert 1 in normalize._VALIDITY and 44 not in normalize._VALIDITY
warm_phone_rules("GB")
assert 44 in normalize._VALIDITY
warm_phone_rules("ZZ")  # unknown region: nothing to build, no error
print("ok")
"""


def test_warm_up_builds_the_rules_of_the_regions_country_code_only() -> None:
    # a fresh interpreter: this test session's other tests have long filled the rules
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
