"""Run by test_wheel.py with the Python of a fresh virtual environment that holds only the
emulator's wheel (and its dependencies from PyPI): what an outsider would do with it."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import pkgutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

KEY = "sk-outsider-key"
# A tool of our own invention: the emulator knows nothing about it but its schema.
MARBLES: dict[str, Any] = {
    "type": "function",
    "name": "count_marbles",
    "description": "Count the marbles of one colour in a jar.",
    "parameters": {
        "type": "object",
        "properties": {
            "colour": {"type": "string", "enum": ["red", "green", "blue"]},
            "jar": {"type": "integer", "minimum": 1, "maximum": 3},
        },
        "required": ["colour", "jar"],
        "additionalProperties": False,
    },
}


def only_the_wheel_is_here() -> None:
    for name in ("opencouch.contracts", "opencouch.runtime", "opencouch.testing"):
        assert importlib.util.find_spec(name) is None, f"{name} should not be installed"
    import opencouch.realtime_emulator as package

    assert Path(package.__file__ or "").resolve().is_relative_to(Path(sys.prefix).resolve())
    # Every module, the pytest plugin and test helpers included, imports with what the wheel
    # declares.
    for module in pkgutil.walk_packages(package.__path__, "opencouch.realtime_emulator."):
        if module.name != "opencouch.realtime_emulator.__main__":
            importlib.import_module(module.name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert server.poll() is None, "the emulator exited"
        assert time.monotonic() < deadline, "the emulator did not become healthy"
        time.sleep(0.2)


async def talk(base_url: str) -> None:
    server_side = AsyncOpenAI(api_key=KEY, base_url=base_url)
    secret = await server_side.realtime.client_secrets.create(
        session={"type": "realtime", "model": "gpt-realtime", "tools": [MARBLES]}  # type: ignore[arg-type]
    )
    assert secret.value.startswith("ek_"), secret.value

    browser_side = AsyncOpenAI(api_key=secret.value, base_url=base_url)
    async with browser_side.realtime.connect(model="gpt-realtime") as connection:
        created = await connection.recv()
        assert created.type == "session.created", created.type
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "How many blue marbles are left?"}],
            }
        )
        await connection.response.create()
        call = None
        async for event in connection:
            if event.type == "response.function_call_arguments.done":
                call = event
            if event.type == "response.done":
                break
        assert call is not None, "the emulator called no tool"
        assert call.name == "count_marbles", call.name
        arguments = json.loads(call.arguments)
        assert arguments["colour"] == "blue", arguments
        assert 1 <= arguments["jar"] <= 3, arguments

        await connection.conversation.item.create(
            item={
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": json.dumps({"count": 7}),
            }
        )
        await connection.response.create()
        async for event in connection:
            if event.type == "response.done":
                assert event.response.status == "completed", event.response
                assert event.response.output
                assert event.response.output[0].type == "message"
                break

    # A structured output, as a service summarising something would ask for one.
    counted = await server_side.responses.create(
        model="gpt-4.1-mini",
        input="Count the blue marbles in jar 2.",
        text={"format": {"type": "json_schema", "name": "Count", "strict": True,
                         "schema": MARBLES["parameters"]}},
    )  # fmt: skip
    value = json.loads(counted.output_text)
    assert value["colour"] == "blue", value
    assert 1 <= value["jar"] <= 3, value


def main() -> None:
    only_the_wheel_is_here()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = Path(sys.executable).parent / "opencouch-realtime-emulator"
    server = subprocess.Popen([str(command), "--port", str(port), "--api-key", KEY])
    try:
        wait_healthy(url, server)
        asyncio.run(talk(f"{url}/v1"))
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0, "the emulator did not stop cleanly"
    print("outsider: ok")


if __name__ == "__main__":
    main()
