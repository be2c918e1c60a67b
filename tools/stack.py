"""`python tools/stack.py up`: broker, Postgres and Redis in the foreground for development, no Docker."""

from __future__ import annotations

import os
import sys

# A script's own directory must not shadow the stdlib (a tools/token.py once broke `import asyncio`).
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    del sys.path[0]

import argparse
import asyncio
import signal
import time
from pathlib import Path

from dialguard.testing.bring_up import DEFAULT_BASE, ENV_NAMES, StackHandle, bring_up
from dialguard.testing.local_stack import StackError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up",
        help="start the stack, provision service roles, create topics; Ctrl-C stops it",
        description=(
            "Components named by KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL (admin) or REDIS_URL "
            "are used as they are instead of being started."
        ),
    )
    up.add_argument("--base", type=Path, default=DEFAULT_BASE, help="state directory (default %(default)s)")
    up.add_argument("--kafka-port", type=int, default=9092)
    up.add_argument("--pg-port", type=int, default=5432)
    up.add_argument("--redis-port", type=int, default=6379)
    return parser


def _describe(handle: StackHandle, seconds: float) -> str:
    def origin(component: str) -> str:
        return "started here" if component in handle.started else f"from ${ENV_NAMES[component]}"

    lines = [
        f"stack ready in {seconds:.1f}s (state in {handle.base_dir})",
        f"  broker    {handle.kafka_bootstrap}  ({origin('broker')}; local Tansu keeps data in memory only)",
        f"  postgres  {handle.postgres_admin_url}  ({origin('postgres')}, admin)",
        f"  redis     {handle.redis_url}  ({origin('redis')})",
        "  service DATABASE_URLs:",
        *(f"    {service:<14}{dsn}" for service, dsn in handle.service_dsns.items()),
    ]
    if handle.stack is not None:
        lines.append(f"  logs in {handle.stack.logs_dir}")
    lines.append("Ctrl-C stops everything started here.")
    return "\n".join(lines)


async def _up(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    began = time.monotonic()
    try:
        handle = await bring_up(
            args.base, kafka_port=args.kafka_port, postgres_port=args.pg_port, redis_port=args.redis_port
        )
    except asyncio.CancelledError:
        return 130
    try:
        print(_describe(handle, time.monotonic() - began), flush=True)
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        print("stopping…", flush=True)
    finally:
        await handle.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_up(args))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
