"""pytest fixtures giving every test a real broker, Postgres and Redis (see dialguard.testing.infra)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dialguard.events.topics import TOPICS
from dialguard.messaging.admin import ensure_topics
from dialguard.testing.infra import Infra, acquire_infra
from dialguard.testing.local_stack import LocalStack

# The service-process fixtures (database, dsns, start_service) build on `infra`.
pytest_plugins = ["dialguard.testing.fixtures"]

FreshStack = Callable[..., Awaitable[LocalStack]]
KEEP_ENV = "DIALGUARD_KEEP_TEST_STACK"
_SUMMARY = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def infra(request: pytest.FixtureRequest) -> Iterator[Infra]:
    """One set of servers for the whole session; local files stay when a test failed (logs to read)."""
    local = Path(request.config.rootpath) / ".local"
    _reclaim_old_sessions(local)
    session_infra = acquire_infra(local / f"test-{os.getpid()}")
    yield session_infra
    keep = request.session.testsfailed > 0 or bool(os.environ.get(KEEP_ENV))
    session_infra.close(keep_files=keep)
    summary = f"servers: {session_infra.source}"
    if session_infra.stack is not None and keep:
        summary += f"; their logs are kept in {session_infra.stack.logs_dir}"
    request.config.stash[_SUMMARY] = summary


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say where the servers came from (env, docker or local), and where to read their logs."""
    summary = config.stash.get(_SUMMARY, None)
    if summary:
        terminalreporter.write_line(f"dialguard {summary}")


def _reclaim_old_sessions(local: Path, keep: int = 2) -> None:
    """Failed sessions keep their files for reading; only the newest few, or /tmp fills with old clusters."""
    old = sorted(local.glob("test-[0-9]*"), key=lambda p: p.stat().st_mtime, reverse=True)[keep:]
    for base_dir in old:
        LocalStack.reclaim(base_dir)


@pytest.fixture
def fresh_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshStack]:
    """Factory of private LocalStacks a test may stop and start (outage tests); all destroyed after it."""
    stacks: list[LocalStack] = []

    async def make(**ports: Any) -> LocalStack:
        stack = LocalStack(tmp_path_factory.mktemp("stack"), **ports)
        stacks.append(stack)
        await asyncio.to_thread(stack.start)
        await ensure_topics(stack.kafka_bootstrap, TOPICS)
        return stack

    yield make
    for stack in stacks:
        stack.destroy()
