"""Prints a signed token: make token ACCOUNT=acme ROLES=OUTBOUND_MANAGER,DIALER."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dev_secret import dev_secret

from dialguard.platform.auth import mint_token


def main() -> None:
    """Sign with AUTH_JWT_SECRET, or the dev secret `make run` generated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--account", default="acme")
    parser.add_argument("--roles", default="OUTBOUND_MANAGER")
    parser.add_argument("--sub", default="dev")
    parser.add_argument("--ttl", type=int, default=86_400)
    args = parser.parse_args()
    secret = os.environ.get("AUTH_JWT_SECRET") or dev_secret()
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    print(mint_token(secret=secret, account_id=args.account, roles=roles, sub=args.sub, ttl_seconds=args.ttl))


if __name__ == "__main__":
    main()
