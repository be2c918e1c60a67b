"""Objects of one account on every service, created through the public APIs (for cross-account probes)."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from typing import Any

import httpx

from dialguard.testing.helpers import auth, wait_for
from dialguard.testing.services import ServiceProcess

PHONE = "12672345678"


def manager(account: str) -> dict[str, str]:
    return auth(account, ["OUTBOUND_MANAGER", "OPS"])


async def ok(response: Any, *statuses: int) -> dict[str, Any]:
    """The JSON body of a response that must have one of the statuses."""
    r = await response
    assert r.status_code in (statuses or (200, 201, 202)), (
        f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    )
    return dict(r.json()) if r.content else {}


@dataclass
class Objects:
    """Ids of one account's objects by the path-parameter names the services use."""

    account: str
    ids: dict[str, str] = field(default_factory=dict)


async def create_everything(services: dict[str, ServiceProcess], account: str) -> Objects:
    """A stoplist with an entry and an import, a contact list with an import, a dial group down to a
    lead, and an outbound target: one of every object a path names."""
    h = manager(account)
    objs = Objects(account)
    urls = {name: p.base_url for name, p in services.items()}
    async with httpx.AsyncClient(timeout=30.0) as c:
        sup = urls["suppression"]
        sl = await ok(c.post(f"{sup}/v1/stoplists", json={"name": "victim"}, headers=h))
        objs.ids["stoplist_id"] = sl["id"]
        body = {"identifier": {"type": "phone", "value": PHONE}}
        entry = await ok(c.post(f"{sup}/v1/stoplists/{sl['id']}/entries", json=body, headers=h))
        objs.ids["entry_id"] = entry["id"]
        files = {"file": ("p.csv", io.BytesIO(b"phone\n12672345679\n"), "text/csv")}
        imp = await ok(c.post(f"{sup}/v1/imports", data={"stoplist_ids": sl["id"]}, files=files, headers=h))
        objs.ids["suppression_import_id"] = imp["import_id"]

        cl = urls["contact-list"]
        lst = await ok(c.post(f"{cl}/v1/contact-lists", json={"name": "victim", "source": "file"}, headers=h))
        objs.ids["list_id"] = lst["id"]
        files = {"file": ("c.csv", io.BytesIO(b"name,phone\nAda,12672345670\n"), "text/csv")}
        cimp = await ok(
            c.post(
                f"{cl}/v1/contact-lists/{lst['id']}/imports",
                data={"consent_confirmed": "true"},
                files=files,
                headers=h,
            )
        )
        objs.ids["contact_import_id"] = cimp["import_id"]

        la = f"{urls['lead-action']}/v1/admin/accounts/{account}"
        dg = await ok(c.post(f"{la}/dialGroups", json={"name": "victim"}, headers=h))
        objs.ids["dialGroupId"] = str(dg["id"])
        camp = await ok(c.post(f"{la}/dialGroups/{dg['id']}/campaigns", json={"name": "victim"}, headers=h))
        objs.ids["campaignId"] = str(camp["id"])
        lst2 = await ok(c.post(f"{la}/campaigns/{camp['id']}/lists", json={"name": "victim"}, headers=h))
        objs.ids["listId"] = str(lst2["id"])
        leads = {"leads": [{"phone": "12672345671", "external_id": "victim-1", "first_name": "Ada"}]}
        await ok(c.post(f"{la}/campaigns/{camp['id']}/lists/{lst2['id']}/leads", json=leads, headers=h))

        async def lead_id() -> str | None:
            r = await c.get(f"{la}/lists/{lst2['id']}/leads", headers=h)
            items = r.json().get("items", []) if r.status_code == 200 else []
            return str(items[0]["id"]) if items else None

        objs.ids["leadId"] = await wait_for(lead_id, timeout=30)

        osync = urls["outbound-sync"]
        target = {"type": "TM", "system": "01", "project": "victim"}
        tgt = await ok(c.post(f"{osync}/v1/stoplists/{sl['id']}/targets", json=target, headers=h))
        objs.ids["target_id"] = tgt["id"]
    await asyncio.sleep(0)
    return objs
