"""Faults under load across the whole system: after each, no accepted opt-out lost or doubled anywhere
(Postgres, check API, suppression.changes.v1, every lead with the phone, both outbound targets), every
consumer caught up, and no false negative from the check API while it lasted.

Fixed since the suite found it: while Postgres restarted, suppression answered 500 instead of 503 (the
platform now maps asyncpg connection, interface, internal-client and operator-intervention errors and
OSError to 503 + Retry-After, in every service and in the check fast path).

LONG FORM ONLY (probable cause found, see docs/hardening.md): `[broker stop/start]` used to lose a few
HTTP-acknowledged adds *from the topic* now and then: their outbox rows were gone and the check API
suppressed them, but their SuppressionChanged was not on suppression.changes.v1. Tansu's memory
storage acknowledges a produce to a partition the topic does not have; after a restart an early
metadata request auto-created topics with the broker's default partition count while the relay still
sent by key to the contract's count. The rig now pauses the services while it recreates the topics.
Losses of data Tansu held in memory before the restart are counted apart and do not fail the test.
Because the local broker's storage is memory (a restart is a new, empty broker), this case runs in the
long form (`make chaos`) and not in `make test`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from .cycle import run_cycle
from .rig import LONG, PLAN, SERVICES, Rig, Row

Fault = Callable[[Rig], Callable[[], Awaitable[None]]]


def _kill(name: str) -> Fault:
    return lambda rig: lambda: rig.kill_service(name)


FAULTS: dict[str, Fault] = {
    **{f"SIGKILL {name}": _kill(name) for name in SERVICES},
    "Postgres stop/start": lambda rig: rig.bounce_postgres,
    "Redis FLUSHALL": lambda rig: rig.flush_redis,
    "Redis restart": lambda rig: rig.bounce_redis,
    "slow outbound target": lambda rig: rig.slow_target,
}
if LONG:  # see the module docstring: open, intermittent, a property of Tansu's memory storage or the relay
    FAULTS["broker stop/start"] = lambda rig: rig.bounce_broker


def _verdict(row: Row) -> list[str]:
    problems = []
    if row.lost:
        problems.append(f"{row.lost} accepted opt-outs or call results lost ({dict(row.lost_where)})")
    if row.duplicated:
        problems.append(f"{row.duplicated} applied twice ({dict(row.duplicated_where)})")
    if row.false_negatives:
        problems.append(f"{row.false_negatives} phones answered 'not suppressed' after their opt-out held")
    if row.unstops_missing:
        problems.append(f"{row.unstops_missing} acked unstops not applied")
    behind = {name: lag for name, lag in row.lag.items() if lag != 0}
    if behind:
        problems.append(f"consumers not caught up (dialguard_consumer_lag, None = no /metrics): {behind}")
    return problems


@pytest.mark.timeout(900)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_keeps_every_opt_out(rig: Rig, fault: str) -> None:
    for n in range(PLAN.cycles):
        label = fault if PLAN.cycles == 1 else f"{fault} #{n + 1}"
        row = await run_cycle(rig, label, FAULTS[fault](rig))
        assert row.accepted > 0, "the load generator got nothing accepted: the cycle proves nothing"
        assert row.checks > row.check_errors, "no check was answered during the cycle"
        assert row.actions > 0, "no lead action was answered during the cycle"
        if fault == "slow outbound target":
            # Every request target A got while slow outlived outbound-sync's deadline and was sent again.
            assert row.redelivered > 0, f"{label}: target A never timed out, the fault did not bite; {row}"
        problems = _verdict(row)
        assert not problems, f"{label}: {'; '.join(problems)}; {row}"
        # An outage is "retry later" (503 + Retry-After, as /v1/check answers), never an internal error.
        assert not row.server_errors, (
            f"{label}: 5xx other than 503 during the fault: {dict(row.server_errors)}"
        )
