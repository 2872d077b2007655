"""How every HTTP service is served (``server_config``): the client address is the peer's,
whatever ``X-Forwarded-For`` says, and the server does not advertise itself."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from opencouch.runtime.http import server_config
from opencouch.testing.servers import free_port, served_in_thread


async def client_address(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = scope["client"][0].encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def served() -> Iterator[str]:
    config = server_config(client_address, host="127.0.0.1", port=free_port())
    config.lifespan = "off"
    with served_in_thread(config) as url:
        yield url


def test_a_local_peer_cannot_choose_its_address_with_forwarded_for(served: str) -> None:
    # uvicorn's default trusts X-Forwarded-For from 127.0.0.1: any local process could pick
    # the address a per-client limit counts. Only the gateway's own setting may trust it.
    reply = httpx.get(served, headers={"X-Forwarded-For": "203.0.113.9"})
    assert reply.text == "127.0.0.1"


def test_the_server_does_not_advertise_itself(served: str) -> None:
    reply = httpx.get(served)
    assert "server" not in reply.headers
    assert "date" in reply.headers
