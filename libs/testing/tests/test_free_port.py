"""free_port hands out a port no other socket is given meanwhile, and never the same one twice."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

from opencouch.testing import servers


def test_a_port_the_kernel_gives_again_is_not_handed_out_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The kernel may give a port again once it is free: a stack once got the same port for its
    # emulator and its web app, and every test of the module failed.
    offered: Iterator[int] = iter([49_001, 49_001, 49_002])
    monkeypatch.setattr(servers, "_GIVEN_PORTS", set())
    monkeypatch.setattr(servers, "reserve", lambda host: next(offered))
    assert [servers.free_port(), servers.free_port()] == [49_001, 49_002]


def test_a_port_handed_out_is_refused_to_a_socket_that_does_not_ask_for_it_by_reuse() -> None:
    # A test's OTLP receiver, bound to port 0 after the stack's ports were chosen, once got the
    # port the tools service was told to serve /metrics on: the service logged the port as taken
    # and the test's scrape reached the receiver (501). The kernel hands a bind to port 0 only a
    # port such a bind could take, so a plain bind being refused is what keeps the port.
    port = servers.free_port()
    with socket.socket() as plain, pytest.raises(OSError, match="in use") as refused:
        plain.bind(("127.0.0.1", port))
    assert refused.value.errno == errno.EADDRINUSE


def test_a_server_binding_with_reuse_takes_the_port_at_once() -> None:
    # uvicorn, prometheus_client, nats-server and redis-server all bind with SO_REUSEADDR.
    ports = [servers.free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    for port in ports:
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen()
