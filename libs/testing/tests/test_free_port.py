"""free_port never hands out the same port twice in one process."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from opencouch.testing import servers


def test_a_port_the_kernel_gives_again_is_not_handed_out_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The kernel may give a port again once its probe closed: a stack once got the same port
    # for its emulator and its web app, and every test of the module failed.
    offered = iter([49_001, 49_001, 49_002])

    class Probe:
        def __init__(self) -> None:
            self.port = next(offered)

        def __enter__(self) -> Probe:
            return self

        def __exit__(self, *_: Any) -> None:
            pass

        def bind(self, _: Any) -> None:
            pass

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(servers, "_GIVEN_PORTS", set())
    monkeypatch.setattr(socket, "socket", Probe)
    assert [servers.free_port(), servers.free_port()] == [49_001, 49_002]


def test_real_ports_are_free_and_distinct() -> None:
    ports = [servers.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # nothing listens there
