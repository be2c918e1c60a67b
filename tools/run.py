"""make run: the local stack without Docker, the four services, their URLs and an admin token; Ctrl-C stops all."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dev_secret import dev_secret

from dialguard.platform.auth import mint_token
from dialguard.testing.bring_up import bring_up
from dialguard.testing.services import ServiceProcess

REPO = Path(__file__).resolve().parents[1]
PORTS = {"suppression": 8001, "contact-list": 8002, "lead-action": 8003, "outbound-sync": 8004}


async def main() -> int:
    """Bring everything up in order, print where it listens, wait for a signal, stop in reverse order."""
    secret = os.environ.get("AUTH_JWT_SECRET") or dev_secret()
    print("starting broker, PostgreSQL and Redis (those not named by the environment) ...", flush=True)
    handle = await bring_up()
    services: list[ServiceProcess] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for service, port in PORTS.items():
            env = {
                **handle.service_env(service),
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
        print(f"\nadmin token (account acme, 24 h):\n  {token}\n")
        print(f'try: curl -H "Authorization: Bearer $TOKEN" {services[0].base_url}/v1/stoplists')
        print("Ctrl-C stops everything this command started.", flush=True)
        await stop.wait()
    finally:
        print("\nstopping ...", flush=True)
        for p in reversed(services):
            await p.stop()
        await handle.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
