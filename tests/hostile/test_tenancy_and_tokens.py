"""Tokens that must not work (forged, expired, alg=none, other secret) and another account's objects (404).

Bugs this suite found are fixed: a non-ASCII signature on lead-action's signed download link was a 500
(now 403 invalid_signature), and POST /v1/check with an unknown region was a 500 (now 422).
"""

from __future__ import annotations

import base64
import io
import re
import time
import uuid
from typing import Any

import httpx
import jwt
import orjson
import pytest

from dialguard.testing.helpers import SECRET, auth, wait_for
from dialguard.testing.services import ServiceProcess

from .api import PHONE, create_everything, manager
from .conftest import SERVICES

# A protected read on every service (the token is checked before anything else).
PROBES = {
    "suppression": "/v1/stoplists",
    "contact-list": "/v1/contact-lists",
    "lead-action": "/v1/admin/accounts/{account}/dialGroups",
    "outbound-sync": "/v1/targets",
}
ROLES = ["OUTBOUND_MANAGER", "OPS"]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def _claims(account: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "mallory", "account_id": account, "roles": ROLES, "iat": now, "exp": now + 600} | over


def bad_tokens(account: str) -> dict[str, str]:
    """Every way a token can be wrong; none may authenticate."""
    good = jwt.encode(_claims(account), SECRET, algorithm="HS256")
    head, body, sig = good.split(".")
    forged_body = _b64(_claims(account, roles=["OUTBOUND_MANAGER", "OPS", "ADMIN"]))
    return {
        "other secret": jwt.encode(_claims(account), "not-the-secret-0123456789abcdef", algorithm="HS256"),
        "expired": jwt.encode(_claims(account, exp=int(time.time()) - 60), SECRET, algorithm="HS256"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(account))}.",
        "alg none, signature kept": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{body}.{sig}",
        "payload swapped, old signature": f"{head}.{forged_body}.{sig}",
        "HS512 with the secret": jwt.encode(_claims(account), SECRET, algorithm="HS512"),
        "no exp": jwt.encode({k: v for k, v in _claims(account).items() if k != "exp"}, SECRET),
        "no account_id": jwt.encode({k: v for k, v in _claims(account).items() if k != "account_id"}, SECRET),
        "truncated": good[:-5],
        "garbage": "a.b.c",
        "empty": "",
        "unicode": "tökén.☃.💥",
    }


@pytest.mark.parametrize("service", SERVICES)
async def test_bad_tokens_get_401(services: dict[str, ServiceProcess], service: str, account: str) -> None:
    path = PROBES[service].format(account=account)
    wrong = []
    async with httpx.AsyncClient(base_url=services[service].base_url) as c:
        assert (await c.get(path, headers=auth(account, ROLES))).status_code == 200
        for name, token in bad_tokens(account).items():
            for raw in (f"Bearer {token}", f"bearer {token}", token, f"Basic {token}"):
                header = raw.strip().encode("latin-1", "replace")
                r = await c.get(path, headers={b"Authorization": header} if header else {})
                if r.status_code != 401 or r.json()["error"]["code"] in ("", None):
                    wrong.append(f"{name} as {header[:12]!r}: {r.status_code} {r.text[:120]}")
    assert not wrong, f"{service} accepted or mis-answered bad tokens:\n" + "\n".join(wrong)


def _body(method: str, path: str, victim: dict[str, str]) -> dict[str, Any]:
    """A request body valid in shape for each write route, so only ownership can refuse it."""
    if method == "GET" or method == "DELETE":
        return {}
    csv = {"file": ("x.csv", io.BytesIO(b"phone\n12672345672\n"), "text/csv")}
    rules: list[tuple[str, dict[str, Any]]] = [
        (
            r"/campaignLeads/actions$",
            {
                "params": {"leadAction": "PAUSE_LEADS", "confirm": "true"},
                "json": {"campaignLeadSearchCriteria": {"campaignId": victim["campaignId"]}},
            },
        ),
        (r"/entries:delete$", {"json": {"entry_ids": [victim["entry_id"]]}}),
        (r"/entries$", {"json": {"identifier": {"type": "phone", "value": "12672345673"}}}),
        (r"/imports:analyze$", {"files": csv}),
        (r"/truncate-password$", {"json": {"password": "hunter2-hunter2"}}),
        (r"/truncate$", {"json": {"password": "hunter2-hunter2"}}),
        (r"/contact-lists/\{list_id\}/imports$", {"files": csv, "data": {"consent_confirmed": "true"}}),
        (r"/(commit|cancel)$", {}),
        (r"/targets$", {"json": {"type": "TM", "system": "01", "project": "p"}}),
        (r"/targets/\{target_id\}$", {"json": {"project": "p2"}}),
        (r"/deliveries/.*:retry$", {}),
        (r"/leads$", {"json": {"leads": [{"phone": "12672345674", "external_id": "m-1"}]}}),
        (r"/(campaigns|lists)$", {"json": {"name": "mallory"}}),
    ]
    for pattern, body in rules:
        if re.search(pattern, path):
            return body
    return {"json": {"name": "mallory"}}


def _fill(service: str, path: str, victim: dict[str, str], own_account: str) -> str | None:
    names = re.findall(r"\{(\w+)\}", path)
    values = dict(victim)
    values["accountId"] = own_account
    values["import_id"] = victim["suppression_import_id" if service == "suppression" else "contact_import_id"]
    if any(n not in values for n in names):
        return None  # an object the victim has none of (exports, deliveries): nothing to attack
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def _import_done(c: httpx.AsyncClient, base: str, import_id: str, account: str) -> Any:
    async def done() -> bool:
        r = await c.get(f"{base}/v1/imports/{import_id}", headers=manager(account))
        return r.status_code == 200 and r.json()["status"] in ("completed", "failed", "cancelled")

    return done


def _unowned(template: str) -> bool:
    """outbound-sync learns stoplists only from events, so CONTRACT §6 lets a target name any stoplist id;
    its /stoplists/{id}/targets collection is the caller's own targets (checked separately below)."""
    return template.startswith("/v1/stoplists/{stoplist_id}/targets") and "{target_id}" not in template


async def test_every_object_route_hides_other_accounts_objects(
    services: dict[str, ServiceProcess], account: str
) -> None:
    victim = await create_everything(services, account)
    mallory = f"mallory-{uuid.uuid4().hex[:6]}"
    leaks: list[str] = []
    probed = 0
    async with httpx.AsyncClient(timeout=30.0) as c:
        sup = services["suppression"].base_url
        entries_url = f"{sup}/v1/stoplists/{victim.ids['stoplist_id']}/entries"

        async def victim_entries() -> list[str]:
            await wait_for(_import_done(c, sup, victim.ids["suppression_import_id"], account), timeout=30)
            r = await c.get(entries_url, headers=manager(account))
            return sorted(e["id"] for e in r.json()["items"])

        before = await victim_entries()
        for service in SERVICES:
            base = services[service].base_url
            spec = (await c.get(f"{base}/openapi.json")).json()
            for template, item in spec["paths"].items():
                for method in item:
                    if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                        continue
                    # Both the attacker's own account and the victim's in lead-action's account path.
                    for own in {mallory, account} if "{accountId}" in template else {mallory}:
                        path = _fill(service, template, victim.ids, own)
                        objects = set(re.findall(r"\{(\w+)\}", template)) - {"accountId"}
                        if path is None or not (objects or own == account) or _unowned(template):
                            continue
                        probed += 1
                        body = {"params": {"confirm": "true"}} | _body(method.upper(), template, victim.ids)
                        r = await c.request(method.upper(), f"{base}{path}", headers=manager(mallory), **body)
                        if r.status_code != 404:
                            leaks.append(f"{service} {method.upper()} {path}: {r.status_code} {r.text[:150]}")
        assert probed > 30, f"only {probed} object routes probed"
        assert not leaks, "another account's object answered other than 404:\n" + "\n".join(leaks)

        # The victim still has everything, unchanged.
        h = manager(account)
        assert await victim_entries() == before
        assert victim.ids["entry_id"] in before
        r = await c.get(
            f"{services['outbound-sync'].base_url}/v1/targets/{victim.ids['target_id']}", headers=h
        )
        assert r.status_code == 200
        osync = f"{services['outbound-sync'].base_url}/v1/stoplists/{victim.ids['stoplist_id']}/targets"
        theirs = (await c.get(osync, headers=manager(mallory))).json()["items"]
        assert victim.ids["target_id"] not in [t["id"] for t in theirs]
        # Lists and checks are scoped too: mallory sees none of it.
        assert (await c.get(f"{sup}/v1/stoplists", headers=manager(mallory))).json()["items"] == []
        check = await c.get(
            f"{sup}/v1/check", params={"type": "phone", "value": PHONE}, headers=manager(mallory)
        )
        assert check.json()["suppressed"] is False
        la = f"{services['lead-action'].base_url}/v1/admin/accounts/{mallory}"
        found = await c.post(
            f"{la}/campaignLeads/search",
            json={"campaignLeadSearchCriteria": {"campaignId": victim.ids["campaignId"]}},
            headers=manager(mallory),
        )
        assert found.status_code in (200, 404), found.text
        if found.status_code == 200:
            assert found.json()["items"] == []


async def test_signed_export_link_with_a_non_ascii_signature_is_refused(
    services: dict[str, ServiceProcess], account: str
) -> None:
    """The export link's signature is its credential: a forged one is 403, whatever characters it has."""
    url = f"{services['lead-action'].base_url}/v1/admin/accounts/{account}/leadExports/{uuid.uuid4()}"
    async with httpx.AsyncClient() as c:
        ascii_forged = await c.get(url, params={"expires": 4102444800, "signature": "0" * 64})
        assert ascii_forged.status_code == 403, ascii_forged.text
        forged = await c.get(url, params={"expires": 4102444800, "signature": "é" * 64})
        assert forged.status_code == 403, f"{forged.status_code} {forged.text}"
        assert forged.json()["error"]["code"] == "invalid_signature"
