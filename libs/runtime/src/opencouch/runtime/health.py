"""Health of NATS services, which have no HTTP port: ping this very instance over NATS.

A service writes its nats.micro instance id to a file at start; the check sends
``$SRV.PING.<name>.<id>`` so it proves this process answers, not some other replica.

    python -m opencouch.runtime.health --name opencouch-tools --id-file /tmp/opencouch-tools.id
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import nats
import nats.errors


def write_id_file(path: Path, service_id: str) -> None:
    """Record this instance's id where the health check will look."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(service_id)
    tmp.replace(path)


async def ping(nats_url: str, name: str, id_file: Path, timeout: float = 2.0) -> bool:
    """Whether the instance recorded in ``id_file`` answers a ping."""
    try:
        service_id = (await asyncio.to_thread(id_file.read_text)).strip()
    except FileNotFoundError:
        return False
    try:
        nc = await nats.connect(nats_url, connect_timeout=timeout, max_reconnect_attempts=0)
    except (OSError, nats.errors.Error):
        return False
    try:
        await nc.request(f"$SRV.PING.{name}.{service_id}", b"", timeout=timeout)
        return True
    except nats.errors.Error:
        return False
    finally:
        await nc.close()


def service_nats_url(name: str) -> str:
    """The NATS server the service ``opencouch-<service>`` reads, as its settings do: its own
    ``<SERVICE>_NATS_URL`` first, then the shared ``NATS_URL`` (a check that read only the
    shared one pinged another server than the service's, and said so wrongly)."""
    service = name.removeprefix("opencouch-").upper().replace("-", "_")
    for variable in (f"{service}_NATS_URL", "NATS_URL"):
        if value := os.environ.get(variable):
            return value
    return "nats://127.0.0.1:4222"


def main() -> None:
    """Exit 0 when the service instance answers, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--id-file", required=True, type=Path)
    parser.add_argument("--nats-url", default=None, help="default: the service's own settings")
    args = parser.parse_args()
    nats_url = args.nats_url or service_nats_url(args.name)
    sys.exit(0 if asyncio.run(ping(nats_url, args.name, args.id_file)) else 1)


if __name__ == "__main__":
    main()
