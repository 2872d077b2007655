"""The routes a conversation calls most, served without FastAPI's per-request machinery.

A tool call or a turn is a POST with a bearer token and a JSON body. Through FastAPI, a third of
the gateway's CPU per tool call went to machinery around the route: the router's matching, the
exception and exit-stack layers, solving the dependency graph for the token, reading the body,
validating the reply again and building the response. The route functions stay the single
definition (``routes.py``, marked with ``@hot``); FastAPI still documents them, and serves every
request this path does not take.

This path takes only a request it can serve in full: ``POST`` to the exact path, a bearer token
that verifies, an ``application/json`` body that fits the route's model. Anything else (no token,
an expired one, another content type, JSON that does not parse or fit) goes on to FastAPI with the
body replayed, so every refusal of a request's form comes from one place and reads the same. Once
the route function runs, what it raises is answered by the app's own exception handlers, as
FastAPI's exception layers would. It sits just inside the gateway's edge (``edge.py``: body limit,
CORS, security headers, metrics and tracing, the same for both paths) and outside FastAPI's own
layers, which a hot route's request never passes; it records the matched route in the scope, as
the router does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencouch.voice_gateway.state import SessionCall, verified_call

RouteFunction = Callable[..., Awaitable[BaseModel]]
F = TypeVar("F", bound=RouteFunction)

_HOT_ATTRIBUTE = "__opencouch_hot_route__"


def hot(function: F) -> F:
    """Mark a route ``async def route(body: Model, call: SessionCallDep) -> Reply`` to be
    served by ``HotRoutes`` as well; apply below the router's decorator."""
    setattr(function, _HOT_ATTRIBUTE, True)
    return function


@dataclass(frozen=True)
class _HotRoute:
    route: APIRoute
    body_model: type[BaseModel]
    function: RouteFunction


def hot_routes(router: APIRouter) -> dict[str, _HotRoute]:
    """The ``@hot`` POST routes of ``router`` by path, each with its body model. The router is
    included in the app as it is (no further prefix), so its paths are the app's."""
    found = {}
    for route in router.routes:
        if not isinstance(route, APIRoute) or not getattr(route.endpoint, _HOT_ATTRIBUTE, False):
            continue
        hints = get_type_hints(route.endpoint, include_extras=False)
        if route.methods != {"POST"} or set(hints) != {"body", "call", "return"}:
            raise TypeError(f"{route.path}: a hot route is POST (body: Model, call) -> Model")
        body_model = hints["body"]
        if not (isinstance(body_model, type) and issubclass(body_model, BaseModel)):
            raise TypeError(f"{route.path}: a hot route's body is a pydantic model")
        found[route.path] = _HotRoute(route, body_model, route.endpoint)
    return found


class HotRoutes:
    """Serve the ``@hot`` routes directly; hand everything else, unchanged, to ``app``."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, _HotRoute], fastapi: FastAPI) -> None:
        self._app = app
        self._routes = routes
        self._fastapi = fastapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot_route = self._routes.get(scope["path"]) if scope["type"] == "http" else None
        if hot_route is None or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        token, json_body = _bearer_and_json(scope["headers"])
        raw = await _read_body(receive)
        if raw is None:  # the client left while sending: nobody to answer
            return
        served = _parse(hot_route.body_model, raw) if token is not None and json_body else None
        call = _verified(Request(scope, receive), token) if served is not None else None
        if served is None or call is None:
            await self._app(scope, _replaying(raw, receive), send)
            return
        scope["route"] = hot_route.route
        request = Request(scope, receive)
        try:
            reply = await hot_route.function(body=served, call=call)
        except Exception as error:
            handler = self._handler_for(error)
            if handler is None:
                raise
            response = await handler(request, error)
            await response(scope, receive, send)
            return
        content = reply.model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(content)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    def _handler_for(self, error: Exception) -> Callable[..., Awaitable[Any]] | None:
        handlers = self._fastapi.exception_handlers
        for kind in type(error).__mro__:
            if kind in handlers:
                return handlers[kind]  # type: ignore[return-value]
        return None


def _bearer_and_json(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, bool]:
    """The bearer token (if the request has one) and whether the body is declared JSON.

    Each header is read at its first occurrence, as Starlette's ``Headers.get`` reads it, so a
    header sent twice means here what it means to FastAPI's path."""
    authorization = content_type = None
    for name, value in headers:
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == b"content-type" and content_type is None:
            content_type = value
    token = None
    if authorization is not None:
        scheme, _, credentials = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and credentials:
            token = credentials
    json_body = (
        content_type is not None
        and content_type.split(b";", 1)[0].strip().lower() == b"application/json"
    )
    return token, json_body


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body; ``None`` if the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse(model: type[BaseModel], raw: bytes) -> BaseModel | None:
    """The body as ``model``, exactly as FastAPI reads it (``json.loads``, then the model in
    Python mode); ``None`` for anything FastAPI would refuse."""
    if not raw:
        return None
    try:
        return model.model_validate(json.loads(raw))
    except (ValueError, RecursionError):  # bad JSON, a body that does not fit, absurd nesting
        return None


def _verified(request: Request, token: str | None) -> SessionCall | None:
    if token is None:
        return None
    try:
        return verified_call(request, token)
    except Exception:  # refused: FastAPI's path says why, in the one place that does
        return None


def _replaying(raw: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read given again first."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay
