"""Per-token rate limits, and EMAIL_LEADS end to end: SMTP sink, signed link, ZIP, tampered links refused."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
import zipfile
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from dialguard.lead_action.exports import sign
from dialguard.platform.auth import mint_token
from dialguard.testing.helpers import SECRET, auth, wait_for
from dialguard.testing.services import free_port


async def test_rate_limits_per_token_answer_429_with_retry_after(make_harness: Any) -> None:
    h = await make_harness(RATE_LIMIT_ACTIONS="2/10", RATE_LIMIT_SEARCHES="2/10")
    _, camp, lst = await h.campaign()
    await h.add_leads(lst, ["12672345678"])
    body = {"campaignLeadSearchCriteria": {"campaignId": camp}}
    url = f"{h.base}/campaignLeads/actions?leadAction=DIALER_REFRESH"
    manager = auth(h.account)
    assert [(await h.client.put(url, json=body, headers=manager)).status_code for _ in range(2)] == [200, 200]
    over = await h.client.put(url, json=body, headers=manager)
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(over.headers["Retry-After"]) <= 10
    # The same client with a freshly minted token keeps its budget; another client has its own.
    again = mint_token(secret=SECRET, account_id=h.account, roles=["OUTBOUND_MANAGER"], ttl_seconds=999)
    assert (
        await h.client.put(url, json=body, headers={"Authorization": f"Bearer {again}"})
    ).status_code == 429
    other = mint_token(secret=SECRET, account_id=h.account, roles=["OUTBOUND_MANAGER"], sub="another-client")
    assert (
        await h.client.put(url, json=body, headers={"Authorization": f"Bearer {other}"})
    ).status_code == 200

    search = f"{h.base}/campaignLeads/search"
    viewer = auth(h.account, ["VIEWER"])
    assert [(await h.client.post(search, json=body, headers=viewer)).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    # Reads of the hierarchy are not limited.
    for _ in range(5):
        assert (await h.client.get(f"{h.base}/dialGroups", headers=viewer)).status_code == 200


class _Sink:
    """Collects every message the SMTP server receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        message["X-Rcpt"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


async def test_email_leads_mails_a_signed_link_to_a_formula_safe_zip(make_harness: Any) -> None:
    sink = _Sink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    await asyncio.to_thread(controller.start)
    http_port = free_port()
    try:
        h = await make_harness(
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp_port),
            HTTP_PORT=str(http_port),
            PUBLIC_BASE_URL=f"http://127.0.0.1:{http_port}",
        )
        _, camp, lst = await h.campaign()
        r = await h.client.post(
            f"{h.base}/lists/{lst}/leads",
            json={
                "leads": [
                    {"phone": "12672345678", "external_id": "a", "first_name": '=HYPERLINK("x")'},
                    {"phone": "12672345679", "external_id": "b", "first_name": "Bea"},
                ]
            },
            headers=h.headers(),
        )
        assert r.status_code == 201
        result = await h.act(
            "EMAIL_LEADS", {"campaignId": camp}, {"EMAIL_ADDRESSES": "ops@example.com, Boss@Example.com"}
        )
        assert (result["affected"], result["email_sent"]) == (2, True)

        async def mailed() -> bool:
            return bool(sink.messages)

        await wait_for(mailed)
        mail = sink.messages[0]
        assert set(mail["X-Rcpt"].split(",")) == {"ops@example.com", "boss@example.com"}
        text = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
        link = re.search(r"https?://\S+", text)
        assert link is not None
        url = link.group(0)
        assert url.startswith(f"http://127.0.0.1:{http_port}/v1/admin/accounts/{h.account}/leadExports/")

        async with httpx.AsyncClient() as plain:  # the link is the credential: no token needed
            got = await plain.get(url)
            assert got.status_code == 200, got.text
            assert got.headers["content-type"] == "application/zip"
            with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
                (name,) = archive.namelist()
                rows = list(csv.reader(io.StringIO(archive.read(name).decode())))
            assert rows[0][:5] == ["lead_id", "campaign_id", "list_id", "external_id", "phone"]
            assert [(row[4], row[5]) for row in rows[1:]] == [
                ("12672345678", '\'=HYPERLINK("x")'),
                ("12672345679", "Bea"),
            ]

            tampered = re.sub(
                r"signature=([0-9a-f])", lambda m: "signature=" + ("0" if m.group(1) != "0" else "1"), url
            )
            refused = await plain.get(tampered)
            assert (refused.status_code, refused.json()["error"]["code"]) == (403, "invalid_signature")
            longer = re.sub(r"expires=(\d+)", lambda m: f"expires={int(m.group(1)) + 3600}", url)
            assert (await plain.get(longer)).status_code == 403
            export_id = url.split("/leadExports/")[1].split("?")[0]
            past = int(time.time()) - 10
            stale = (
                f"http://127.0.0.1:{http_port}/v1/admin/accounts/{h.account}/leadExports/{export_id}"
                f"?expires={past}&signature={sign(SECRET, account_id=h.account, export_id=export_id, expires=past)}"
            )
            expired = await plain.get(stale)
            assert (expired.status_code, expired.json()["error"]["code"]) == (403, "link_expired")
    finally:
        await asyncio.to_thread(controller.stop)
