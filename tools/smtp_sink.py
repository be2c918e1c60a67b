"""A local SMTP sink for development: accepts every mail, writes it to a directory, prints who got what.

Run:  python tools/smtp_sink.py --port 1025 --dir .local/mail
Each message is saved as <dir>/<UTC time>-<n>.eml (the raw RFC 5322 text, headers included), so the
EMAIL_LEADS link in it can be opened or curled. Nothing is ever relayed anywhere.
"""

from __future__ import annotations

import os
import sys

# A script's own directory must not shadow the stdlib (a tools/token.py once broke `import asyncio`).
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    del sys.path[0]

import argparse
import asyncio
import email
import email.policy
import itertools
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

DEFAULT_DIR = Path(__file__).resolve().parents[1] / ".local" / "mail"


class SinkHandler:
    """aiosmtpd handler: every DATA command becomes one .eml file and one printed line."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.directory / f"{stamp}-{next(self._numbers):04d}.eml"
        path.write_bytes(raw)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        print(
            f"[smtp-sink] mail from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}: "
            f"{message.get('Subject', '(no subject)')!r} -> {path}",
            flush=True,
        )
        return "250 OK: stored"


def start(host: str, port: int, directory: Path) -> Controller:
    """Start the sink in a background thread (aiosmtpd's controller); call .stop() to end it."""
    controller = Controller(SinkHandler(directory), hostname=host, port=port)
    controller.start()
    return controller


async def _serve(args: argparse.Namespace) -> None:
    controller = start(args.host, args.port, args.dir)
    print(f"[smtp-sink] listening on {args.host}:{args.port}, mails into {args.dir}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help="where mails are written (default %(default)s)"
    )
    asyncio.run(_serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
