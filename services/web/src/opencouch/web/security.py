"""Security headers sent with every response of the web client.

The pages hold no inline script or style, so the Content-Security-Policy can forbid both;
the only cross-origin calls a page makes are to the voice gateway and to Realtime.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import Settings

# Only the microphone is wanted, and only by our own pages. Autoplay stays at the browser
# default because the assistant's audio element must be allowed to play.
PERMISSIONS_POLICY = (
    "microphone=(self), camera=(), geolocation=(), payment=(), usb=(), serial=(), hid=(), "
    "midi=(), display-capture=(), screen-wake-lock=()"
)


def content_security_policy(connect_origins: Iterable[str]) -> str:
    """The CSP for every response; ``connect_origins`` are the extra origins fetch may reach."""
    connect = ["'self'"]
    for origin in connect_origins:
        if origin not in connect:
            connect.append(origin)
    directives = [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        f"connect-src {' '.join(connect)}",
        # blob: lets a later release play recorded or remote audio through an object URL.
        "media-src 'self' blob:",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
    return "; ".join(directives)


def security_headers(settings: Settings) -> dict[str, str]:
    """Every header the web client adds to its responses, built once from settings."""
    return {
        "Content-Security-Policy": content_security_policy(
            [settings.api_origin, settings.realtime_origin]
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": PERMISSIONS_POLICY,
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }


class SecurityHeadersMiddleware:
    """Pure ASGI middleware, so it also covers error pages and streamed static files."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self._app = app
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self._headers.items():
                    headers[name] = value
            await send(message)

        await self._app(scope, receive, send_with_headers)
