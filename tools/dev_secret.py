"""The development JWT secret: generated once per checkout into .local/, shared by make run and make token."""

from __future__ import annotations

import secrets
from pathlib import Path

SECRET_FILE = Path(__file__).resolve().parents[1] / ".local" / "dev-jwt-secret"


def dev_secret() -> str:
    """Read the checkout's dev secret, creating it (0600) on first use."""
    if SECRET_FILE.exists():
        return SECRET_FILE.read_text().strip()
    SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    SECRET_FILE.write_text(value)
    SECRET_FILE.chmod(0o600)
    return value
