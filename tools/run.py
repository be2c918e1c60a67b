"""make run: the local stack without Docker, the four services, a fake Outbound server and an SMTP sink,
their URLs and an admin token; Ctrl-C stops all. Where everything listens is also written to .local/run.json
(read by tools/demo.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from dev_secret import dev_secret

from dialguard.platform.auth import mint_token
from dialguard.testing.bring_up import bring_up
from dialguard.testing.services import ServiceProcess

REPO = Path(__file__).resolve().parents[1]
PORTS = {"suppression": 8001, "contact-list": 8002, "lead-action": 8003, "outbound-sync": 8004}
LOGS = REPO / ".local" / "logs"
STATE_FILE = REPO / ".local" / "run.json"
MAIL_DIR = REPO / ".local" / "mail"


class Helper:
    """A development stand-in (fake Outbound server, SMTP sink) as a child process in its own session."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = LOGS / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        # Own session: the terminal's Ctrl-C reaches only run.py, which then stops helpers in order.
        self.proc = subprocess.Popen(
            [sys.executable, *self.argv], stdout=log, stderr=log, start_new_session=True
        )

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.to_thread(self.proc.wait, 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def wait_until(helper: Helper, probe: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Poll an async probe until it answers True; fail with the helper's log if it exits or never answers."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if helper.exited():
            break
        with contextlib.suppress(OSError, httpx.HTTPError):
            if await probe():
                return
        await asyncio.sleep(0.2)
    tail = helper.log_path.read_text(errors="replace")[-2000:] if helper.log_path.exists() else ""
    raise RuntimeError(f"{helper.name} did not start (port in use?):\n{tail}")


async def start_fake_outbound(port: int) -> tuple[Helper, str]:
    """tools/fake_outbound.py: the Outbound TM servers outbound-sync delivers to."""
    helper = Helper("fake-outbound", [str(REPO / "tools" / "fake_outbound.py"), "--port", str(port)])
    helper.start()
    base = f"http://127.0.0.1:{port}"

    async def answers() -> bool:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(f"{base}/_requests")).status_code == 200

    await wait_until(helper, answers)
    return helper, base


async def start_smtp_sink(port: int) -> Helper:
    """tools/smtp_sink.py: lead-action's EMAIL_LEADS mails land in .local/mail instead of anyone's inbox."""
    helper = Helper(
        "smtp-sink", [str(REPO / "tools" / "smtp_sink.py"), "--port", str(port), "--dir", str(MAIL_DIR)]
    )
    helper.start()

    async def greets() -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return (await asyncio.wait_for(reader.readline(), 2.0)).startswith(b"220")
        finally:
            writer.close()

    await wait_until(helper, greets)
    return helper


def write_state(state: dict[str, object]) -> None:
    """.local/run.json: where the running system listens (no secret in it), for tools/demo.py and scripts."""
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(state, indent=2) + "\n")


async def main() -> int:
    """Bring everything up in order, print where it listens, wait for a signal, stop in reverse order."""
    secret = os.environ.get("AUTH_JWT_SECRET") or dev_secret()
    print("starting broker, PostgreSQL and Redis (those not named by the environment) ...", flush=True)
    handle = await bring_up()
    services: list[ServiceProcess] = []
    helpers: list[Helper] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        # Stand-ins for the external systems, unless the environment names real ones.
        fake_url: str | None = None
        tm_template = os.environ.get("OUTBOUND_TM_URL_TEMPLATE")
        if not tm_template:
            fake, fake_url = await start_fake_outbound(int(os.environ.get("FAKE_OUTBOUND_PORT", "9100")))
            helpers.append(fake)
            tm_template = f"{fake_url}/outbound{{system}}"
        smtp_host = os.environ.get("SMTP_HOST")
        smtp_port = os.environ.get("SMTP_PORT", "25")
        sink: Helper | None = None
        if not smtp_host:
            smtp_host, smtp_port = "127.0.0.1", os.environ.get("SMTP_SINK_PORT", "1025")
            sink = await start_smtp_sink(int(smtp_port))
            helpers.append(sink)
        extra_env = {
            "outbound-sync": {"OUTBOUND_TM_URL_TEMPLATE": tm_template},
            "lead-action": {"SMTP_HOST": smtp_host, "SMTP_PORT": smtp_port},
        }
        for service, port in PORTS.items():
            env = {
                **handle.service_env(service),
                **extra_env.get(service, {}),
                "AUTH_JWT_SECRET": secret,
                "HTTP_PORT": str(int(os.environ.get(f"{service.upper().replace('-', '_')}_PORT", port))),
                "KAFKA_SESSION_TIMEOUT_MS": os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "3000"),
                "KAFKA_HEARTBEAT_INTERVAL_MS": os.environ.get("KAFKA_HEARTBEAT_INTERVAL_MS", "300"),
                "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
            }
            proc = ServiceProcess(service, env, REPO / ".local" / "logs")
            services.append(proc)
        await asyncio.gather(*(p.start(timeout=120) for p in services))
        token = mint_token(
            secret=secret, account_id="acme", roles=["OUTBOUND_MANAGER", "DIALER", "OPS"], sub="admin"
        )
        print("\ndialguard is running:")
        print(f"  broker      {handle.kafka_bootstrap}")
        print(f"  postgres    {handle.postgres_admin_url}")
        print(f"  redis       {handle.redis_url}")
        for p in services:
            print(f"  {p.service:<13} {p.base_url}   docs {p.base_url}/docs   logs {p.log_path}")
        if fake_url is not None:
            print(f"  fake Outbound {fake_url}   outbound-sync delivers TM targets to {tm_template}")
            print(f"                requests it received: curl {fake_url}/_requests")
        else:
            print(f"  Outbound TM   {tm_template}  (from $OUTBOUND_TM_URL_TEMPLATE)")
        if sink is not None:
            print(f"  SMTP sink     {smtp_host}:{smtp_port}   lead-action mails are written to {MAIL_DIR}")
        else:
            print(f"  SMTP          {smtp_host}:{smtp_port}  (from $SMTP_HOST)")
        write_state(
            {
                "services": {p.service: p.base_url for p in services},
                "kafka_bootstrap": handle.kafka_bootstrap,
                "fake_outbound_url": fake_url,
                "outbound_tm_url_template": tm_template,
                "smtp": f"{smtp_host}:{smtp_port}",
                "mail_dir": str(MAIL_DIR) if sink is not None else None,
                "secret": "env AUTH_JWT_SECRET"
                if os.environ.get("AUTH_JWT_SECRET")
                else ".local/dev-jwt-secret",
            }
        )
        print(f"\nadmin token (account acme, 24 h):\n  {token}\n")
        print(f'try: curl -H "Authorization: Bearer $TOKEN" {services[0].base_url}/v1/stoplists')
        print("drive flows (1) and (3) across the services: make demo   (state in .local/run.json)")
        print("Ctrl-C stops everything this command started.", flush=True)
        await stop.wait()
    finally:
        print("\nstopping ...", flush=True)
        STATE_FILE.unlink(missing_ok=True)
        for p in reversed(services):
            await p.stop()
        for h in reversed(helpers):
            await h.stop()
        await handle.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
