"""EMAIL_LEADS: a formula-safe CSV of the matching leads in a ZIP, a signed 24 h link, and the mail."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import zipfile
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import asyncpg

from dialguard.events.envelope import format_time
from dialguard.files.export import safe_cell
from dialguard.lead_action import repository as repo
from dialguard.lead_action.config import Settings
from dialguard.lead_action.domain import Criteria

EXPORT_HEADER = (
    "lead_id",
    "campaign_id",
    "list_id",
    "external_id",
    "phone",
    "first_name",
    "last_name",
    "timezone",
    "status",
    "pass_count",
    "next_dial_at",
    "agent_disposition",
    "system_disposition",
    "suppressed",
    "suppression_causes",
    "callback_at",
    "reserved_agent_id",
    "fields",
)
PAGE = 5000


def _row(r: Any) -> list[str]:
    values = [
        r["id"],
        r["campaign_id"],
        r["list_id"],
        r["external_id"],
        r["phone"],
        r["first_name"],
        r["last_name"],
        r["timezone"],
        r["status"],
        r["pass_count"],
        format_time(r["next_dial_at"]) if r["next_dial_at"] else None,
        r["agent_disposition"],
        r["system_disposition"],
        r["suppressed"],
        "|".join(r["suppression_causes"]),
        format_time(r["callback_at"]) if r["callback_at"] else None,
        r["reserved_agent_id"],
        ";".join(f"{k}={v}" for k, v in sorted((r["fields"] or {}).items())),
    ]
    return [safe_cell(v) for v in values]


async def build_zip(
    conn: asyncpg.Connection, *, account_id: str, criteria: Criteria, max_rows: int, name: str
) -> tuple[bytes, int]:
    """Page through the match by id (flat memory per page) into one deflated CSV member."""
    buffer = io.BytesIO()
    count = 0
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open(name, "w") as member,
        io.TextIOWrapper(member, encoding="utf-8", newline="") as text,
    ):
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(EXPORT_HEADER)
        after = 0
        while count < max_rows:
            rows = await repo.search_leads(
                conn,
                account_id=account_id,
                criteria=criteria,
                after=after,
                limit=min(PAGE, max_rows - count),
            )
            if not rows:
                break
            writer.writerows(_row(r) for r in rows)
            count += len(rows)
            after = rows[-1]["id"]
    return buffer.getvalue(), count


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"lead-export-link:" + secret.encode()).digest()


def sign(secret: str, *, account_id: str, export_id: str, expires: int) -> str:
    """HMAC over who, what and until when: a link cannot be moved to another export or extended."""
    message = f"{account_id}:{export_id}:{expires}".encode()
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def verify(secret: str, *, account_id: str, export_id: str, expires: int, signature: str, now: float) -> bool:
    """Valid signature and not yet expired."""
    expected = sign(secret, account_id=account_id, export_id=export_id, expires=expires)
    # compare_digest refuses non-ASCII str (TypeError): compare UTF-8 bytes, so any text is just "wrong".
    return (
        hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogatepass")) and now < expires
    )


def download_url(settings: Settings, *, account_id: str, export_id: str, expires: int) -> str:
    signature = sign(settings.AUTH_JWT_SECRET, account_id=account_id, export_id=export_id, expires=expires)
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return (
        f"{base}/v1/admin/accounts/{account_id}/leadExports/{export_id}"
        f"?expires={expires}&signature={signature}"
    )


async def send_link(
    settings: Settings, *, recipients: tuple[str, ...], url: str, count: int, expires_at: datetime, actor: str
) -> None:
    """One message to all recipients; raises aiosmtplib errors to the caller."""
    message = EmailMessage()
    message["From"] = settings.SMTP_FROM
    message["To"] = ", ".join(recipients)
    message["Subject"] = f"Lead export ready ({count} leads)"
    message.set_content(
        f"{actor} exported {count} leads.\n\n"
        f"Download the ZIP (valid until {format_time(expires_at)}):\n{url}\n"
    )
    await aiosmtplib.send(
        message,
        hostname=settings.SMTP_HOST,
        port=settings.SMTP_PORT,
        username=settings.SMTP_USERNAME,
        password=settings.SMTP_PASSWORD,
        start_tls=settings.SMTP_STARTTLS,
        timeout=settings.SMTP_TIMEOUT_SECONDS,
    )
