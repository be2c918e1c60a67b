"""One private stack for the whole fault suite (faults break it on purpose); the table is written at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dialguard.testing.fixtures import REPO

from .rig import LONG, PLAN, Rig, table

RESULTS = REPO / "bench" / "results" / ("chaos-long.md" if LONG else "chaos.md")
_TABLE = pytest.StashKey[str]()


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> AsyncIterator[Rig]:
    """A LocalStack of its own (never the session's: the suite stops its broker, Postgres and Redis)."""
    r = Rig(tmp_path_factory.mktemp("chaos"), REPO / ".local" / "test-logs")
    try:
        await r.start()
        yield r
    finally:
        await r.close()
        if r.rows:
            text = table(r.rows)
            pytestconfig.stash[_TABLE] = text
            _write(text, r)


def _write(text: str, r: Rig) -> None:
    form = "long (CHAOS_LONG=1)" if LONG else "short (make test)"
    notes = [f"- {row.fault}: {'; '.join(row.notes)}" for row in r.rows if row.notes]
    body = [
        "# Fault suite results",
        "",
        f"Form: {form}; load {PLAN.event_rate:.0f} LeadStopped/LeadUnstopped per s, "
        f"{PLAN.call_rate:.0f} CallResults per s, one HTTP client adding entries and one running lead "
        f"actions; all four services, two fake outbound targets; fault held {PLAN.hold} s, "
        f"{PLAN.cycles} cycle(s) per fault. Written by `tests/chaos` "
        "(see docs/hardening.md for what each column means).",
        "",
        text,
        "",
        *notes,
    ]
    Path(RESULTS).write_text("\n".join(body).rstrip() + "\n")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the chaos table under the test results."""
    text = config.stash.get(_TABLE, None)
    if text:
        terminalreporter.write_sep("-", "chaos table")
        for line in text.splitlines():
            terminalreporter.write_line(line)
