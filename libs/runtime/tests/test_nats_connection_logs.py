"""What a service logs about its NATS connection: enough to see an outage, not a line a second.

nats-py retries every second and reported every failure, so a service waiting for NATS wrote a
warning each second for as long as the outage lasted, without saying which server it waited
for; losing and regaining the connection were not logged at all.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from opencouch.runtime.messaging import ConnectionReport, nats_connection
from opencouch.testing.infra import PrivateNats

LOGGER = "opencouch.runtime.messaging"


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, object]]]:
    return [
        (record.getMessage(), {k: getattr(record, k) for k in ("failures",) if hasattr(record, k)})
        for record in caplog.records
        if record.name == LOGGER
    ]


async def test_repeated_failures_are_logged_at_growing_intervals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    report = ConnectionReport("nats://someone:secret@nats.internal:4222")
    for _ in range(70):
        await report.error(ConnectionRefusedError())
    counts = [fields["failures"] for message, fields in _lines(caplog)]
    assert counts == [1, 2, 4, 8, 16, 32, 64]
    assert all(message == "nats unreachable" for message, _ in _lines(caplog))
    record = caplog.records[0]
    assert record.server == "nats://nats.internal:4222"  # type: ignore[attr-defined]

    caplog.clear()
    report.connected()
    await report.error(ConnectionRefusedError())  # counted afresh once connected
    assert _lines(caplog) == [
        ("nats connected", {"failures": 70}),
        ("nats unreachable", {"failures": 1}),
    ]


async def test_a_service_connection_logs_its_outages_once_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Real NATS that comes up late, is killed, and comes back; then a clean close."""
    caplog.set_level(logging.INFO, LOGGER)
    server = PrivateNats(tmp_path)
    started = asyncio.get_running_loop().call_later(3.5, server.start)
    try:
        async with nats_connection(server.url, "test") as nc:
            assert nc.is_connected
            waiting = _lines(caplog)
            assert [message for message, _ in waiting][-1] == "nats connected"
            # About four retries, a second apart: logged at the 1st, 2nd and 4th only.
            assert 2 <= len(waiting) - 1 <= 3, waiting
            caplog.clear()

            server.kill()
            for _ in range(100):
                if not nc.is_connected:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.5)
            server.start()
            # nats-py reports the connection back (is_connected) before its PING/PONG flush,
            # and calls back only after it: wait for the line, not the flag.
            for _ in range(200):
                if "nats connected" in [message for message, _ in _lines(caplog)]:
                    break
                await asyncio.sleep(0.05)
            assert nc.is_connected
            messages = [message for message, _ in _lines(caplog)]
            assert messages.count("nats disconnected") == 1, messages
            assert messages[-1] == "nats connected", messages
            assert messages.count("nats unreachable") <= 2, messages
            caplog.clear()
        # The service's own close is not an outage.
        assert "nats disconnected" not in [message for message, _ in _lines(caplog)]
    finally:
        started.cancel()
        server.stop()
