"""The per-target circuit breaker: opens after consecutive transient failures, one probe closes it."""

from __future__ import annotations

import time

from dialguard.outbound_sync.delivery import Breaker


def test_breaker_opens_after_threshold_and_a_probe_decides() -> None:
    breaker = Breaker(threshold=3, cooldown_s=0.05)
    for _ in range(2):
        breaker.record(success=False, transient_failure=True)
    assert breaker.allows()
    breaker.record(success=False, transient_failure=False)  # a 4xx says nothing about the target's health
    assert breaker.allows()
    for _ in range(5):  # the rest of the round that opened it does not stretch the cool-down
        breaker.record(success=False, transient_failure=True)
    assert not breaker.allows()
    assert breaker.opened_for == 0.05
    time.sleep(0.06)
    assert breaker.allows()
    assert breaker.probing
    breaker.record(success=False, transient_failure=True)  # the probe failed: open again, for longer
    assert not breaker.allows()
    assert breaker.opened_for == 0.1
    time.sleep(0.11)
    breaker.record(success=True, transient_failure=False)
    assert breaker.allows()
    assert not breaker.probing
