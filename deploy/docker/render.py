"""Writes services/<name>/Dockerfile from the pattern in deploy/docker/Dockerfile.

    python deploy/docker/render.py          # (re)write the four files
    python deploy/docker/render.py --check  # exit 1 if any is missing or out of date

Each rendered file is the pattern with SERVICE/PKG defaults set, EXPOSE of the contract port and an
exec-form CMD naming the module, so `docker compose build` (context `.`, dockerfile
services/<name>/Dockerfile) needs no build args.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATTERN = ROOT / "deploy" / "docker" / "Dockerfile"
# service -> (module under dialguard., HTTP port of CONTRACT §1)
SERVICES: dict[str, tuple[str, int]] = {
    "suppression": ("suppression", 8001),
    "contact-list": ("contact_list", 8002),
    "lead-action": ("lead_action", 8003),
    "outbound-sync": ("outbound_sync", 8004),
}


def _sub(pattern: str, replacement: str, text: str, count: int) -> str:
    new, n = re.subn(pattern, lambda _m: replacement, text, flags=re.MULTILINE)
    if n != count:
        raise SystemExit(f"render: {pattern!r} matched {n} times in {PATTERN}, expected {count}")
    return new


def render(service: str) -> str:
    """The Dockerfile of one service."""
    pkg, port = SERVICES[service]
    text = PATTERN.read_text()
    header = (
        f"# dialguard {service} image. GENERATED from deploy/docker/Dockerfile by deploy/docker/render.py:\n"
        "# edit the pattern and re-run the script, not this file. Build from the repository root:\n"
        f"#   docker build -f services/{service}/Dockerfile -t dialguard/{service} .\n"
    )
    # The pattern's comment block after the syntax line becomes the generated-file header.
    text = _sub(r"^(# syntax=.*\n)(?:#.*\n)+", "", text, 1)
    text = "# syntax=docker/dockerfile:1\n" + header + text
    text = _sub(r"^ARG SERVICE$", f"ARG SERVICE={service}", text, 2)
    text = _sub(r"^ARG PKG$", f"ARG PKG={pkg}", text, 2)
    text = _sub(
        r"^# The exec form cannot expand.*\n(?:#.*\n)*CMD .*\n",
        f'EXPOSE {port}\nCMD ["python", "-m", "dialguard.{pkg}"]\n',
        text,
        1,
    )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="verify instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for service in SERVICES:
        target = ROOT / "services" / service / "Dockerfile"
        wanted = render(service)
        if target.exists() and target.read_text() == wanted:
            continue
        if args.check:
            stale.append(str(target.relative_to(ROOT)))
        else:
            target.write_text(wanted)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("out of date (run python deploy/docker/render.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
