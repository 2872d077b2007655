"""Pure ASGI middleware: a body-size limit enforced before the body is read, security headers.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: no extra task per request on the hot
path. Starlette's own ``RequestBodyLimitMiddleware`` answers in plain text and overrides the
app's reply; this one keeps the house error body, so every refusal is machine-readable.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencouch.contracts.common import ErrorCode
from opencouch.runtime.errors import ServiceError

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# Replies carry tokens, client secrets and private context: never cached anywhere.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _BodyTooLargeError(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse a request body over ``max_bytes`` with 413, by its length or while it streams."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self._max:
                await _too_large(send, self._max)
                return
            # The server reads no more than the declared length: nothing left to count.
            await self._app(scope, receive, send)
            return
        seen = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._max:
                    refused = True
                    raise _BodyTooLargeError
            return message

        async def refusing_send(message: Message) -> None:
            # The app may turn the interrupted read into its own error reply: send ours instead.
            if not refused:
                await send(message)
            elif message["type"] == "http.response.start":
                await _too_large(send, self._max)

        try:
            await self._app(scope, limited_receive, refusing_send)
        except _BodyTooLargeError:
            await _too_large(send, self._max)


async def _too_large(send: Send, limit: int) -> None:
    error = ServiceError(ErrorCode.PAYLOAD_TOO_LARGE, f"The request body is over {limit} bytes.")
    body = json.dumps(error.response().model_dump(mode="json")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


_EVERY_REPLY = _raw(SECURITY_HEADERS)
_API_REPLY = _raw({**SECURITY_HEADERS, **NO_STORE})


class SecurityHeadersMiddleware:
    """Security headers on every response; ``no-store`` on every API reply. Each replaces a
    header of the same name the app set."""

    def __init__(self, app: ASGIApp, api_prefix: str) -> None:
        self._app = app
        self._api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        added = (
            _API_REPLY if str(scope.get("path", "")).startswith(self._api_prefix) else _EVERY_REPLY
        )
        replaced = {name for name, _ in added}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() not in replaced
                ]
                message["headers"] = kept + added
            await send(message)

        await self._app(scope, receive, send_with_headers)
