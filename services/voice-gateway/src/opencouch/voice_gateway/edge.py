"""The gateway's edge: the one layer every HTTP request passes before FastAPI sees it.

It observes the request (timing by route, the server span: ``RequestObserver``),
refuses a body over the limit before it is read (413), answers CORS preflights and marks
replies for the web origins, and puts the security headers on every response (``no-store``
on every API reply). One layer with one ``send`` wrapper, rather than a middleware per
concern, each with its own call and its own wrapper around every message sent. Inside it, the
hot routes are served before FastAPI's own layers (``hot_routes``); whatever they do not take
goes on to FastAPI, and every response, either way, leaves through the same wrapper.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: no extra task per request. Starlette's
``RequestBodyLimitMiddleware`` answers in plain text and overrides the app's reply; the limit
here keeps the house error body, so every refusal is machine-readable. CORS is Starlette's
``CORSMiddleware``, used for its rules (which origin, which preflight, which headers) rather
than as a layer of its own; a preflight it refuses gets the house error body too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencouch.contracts.common import ErrorCode
from opencouch.runtime.errors import ServiceError
from opencouch.runtime.http import Observed, RequestObserver

SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# Replies carry tokens, client secrets and private context: never cached anywhere.
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


_EVERY_REPLY: Final = _raw(SECURITY_HEADERS)
_API_REPLY: Final = _raw({**SECURITY_HEADERS, **NO_STORE})
_REPLACED: Final = frozenset(name for name, _ in _API_REPLY)
"""Each replaces a header of the same name the app set."""


class _BodyTooLargeError(Exception):
    pass


class GatewayEdge(RequestObserver):
    """Observation, the body limit, CORS and the security headers, around ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_prefix: str,
        max_body_bytes: int,
        cors_origins: Sequence[str],
    ) -> None:
        super().__init__(app)
        self._api_prefix = api_prefix
        self._max = max_body_bytes
        self._cors = CORSMiddleware(
            app,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "Authorization", "traceparent", "tracestate"],
            expose_headers=["Retry-After"],
            max_age=600,
        )

    async def serve(self, scope: Scope, receive: Receive, send: Send, observed: Observed) -> None:
        request_headers = Headers(scope=scope)
        added = _API_REPLY if scope["path"].startswith(self._api_prefix) else _EVERY_REPLY
        cors = self._cors
        preflight = (
            scope["method"] == "OPTIONS"
            and "origin" in request_headers
            and "access-control-request-method" in request_headers
        )

        async def finish(message: Message) -> None:
            """Every message of the response leaves here: status seen, headers added."""
            if message["type"] != "http.response.start":
                await send(message)
                return
            observed.status = message["status"]
            message["headers"] = [
                (name, value)
                for name, value in message.get("headers", ())
                if name.lower() not in _REPLACED
            ] + added
            if preflight:  # its CORS headers are the preflight's own
                await send(message)
            else:
                await cors.send(message, send, request_headers)

        if preflight:
            await _preflight(cors, request_headers)(scope, receive, finish)
            return
        declared = request_headers.get("content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self._max:
                await _refuse_too_large(finish, self._max)
                return
            # The server reads no more than the declared length: nothing left to count.
            await self.app(scope, receive, finish)
            return
        await self._serve_streamed(scope, receive, finish)

    async def _serve_streamed(self, scope: Scope, receive: Receive, finish: Send) -> None:
        """A body of no declared length: counted as it arrives, refused once over the limit."""
        seen = 0
        refused = False
        started = False

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
            nonlocal started
            # The app may turn the interrupted read into its own error reply: ours goes instead.
            if message["type"] == "http.response.start":
                started = True
                if refused:
                    await _refuse_too_large(finish, self._max)
                    return
            if not refused:
                await finish(message)

        try:
            await self.app(scope, limited_receive, refusing_send)
        except _BodyTooLargeError:
            if not started:
                await _refuse_too_large(finish, self._max)


def _preflight(cors: CORSMiddleware, request_headers: Headers) -> Response:
    """Starlette's answer to a preflight; a refused one (its plain-text 400) carries the house
    error body instead, with the same CORS headers."""
    reply = cors.preflight_response(request_headers=request_headers)
    if reply.status_code < 400:
        return reply
    # Starlette's text is "Disallowed CORS origin, headers": what was refused, never a value.
    refused = bytes(reply.body).decode().removeprefix("Disallowed CORS ")
    error = ServiceError(
        ErrorCode.INVALID_REQUEST,
        f"This cross-origin request is not allowed here (refused: {refused}).",
        status=reply.status_code,
    )
    kept = {
        name: value
        for name, value in reply.headers.items()
        if name not in ("content-type", "content-length")
    }
    return JSONResponse(
        error.response().model_dump(mode="json"), status_code=error.status, headers=kept
    )


async def _refuse_too_large(send: Send, limit: int) -> None:
    error = ServiceError(ErrorCode.PAYLOAD_TOO_LARGE, f"The request body is over {limit} bytes.")
    body = json.dumps(error.response().model_dump(mode="json")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
