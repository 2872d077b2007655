"""Who the user is: a ``user_id`` is trusted only from an identity token the host app signed.

The host application (the site the companion is embedded in) signs a short JWT whose ``sub`` is
the user id; the gateway checks its signature (shared key, PEM public key, or JWKS), issuer,
audience and expiry. In ``development`` identity mode a plain ``user_id`` is accepted instead,
and the gateway says so loudly at start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import jwt
from pydantic import TypeAdapter, ValidationError

from opencouch.contracts.common import ErrorCode, Identifier
from opencouch.contracts.voice_api import SessionRequest
from opencouch.runtime.errors import ServiceError
from opencouch.voice_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

_IDENTIFIER: Final = TypeAdapter(Identifier)

JWKS_TIMEOUT_SECONDS: Final = 5.0
"""How long one fetch of the host's key set may take: a /session waits on it (PyJWT's default is
30 s, longer than the page waits for /session)."""
JWKS_RETRY_AFTER_SECONDS: Final = 5.0
CLOCK_SKEW_SECONDS: Final = 30
"""How far the host app's clock may run ahead of (or behind) ours: a token it issued a second
"in the future" is not invalid, which a client would not retry."""


class _HostKeys(jwt.PyJWKClient):
    """The host app's key set: an endpoint that failed (unreachable, slow, an error page, no
    keys) is not asked again for ``JWKS_RETRY_AFTER_SECONDS``. PyJWT fetches under a lock and
    starts no cooldown on a failure, so every /session waiting behind a hung endpoint would
    wait its own timeout in turn."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri, timeout=JWKS_TIMEOUT_SECONDS)
        self._down_until = 0.0

    def fetch_data(self) -> Any:
        if time.monotonic() < self._down_until:
            raise jwt.PyJWKClientConnectionError("The key set was unreachable a moment ago.")
        try:
            return super().fetch_data()
        except jwt.PyJWKClientConnectionError:
            self._down_until = time.monotonic() + JWKS_RETRY_AFTER_SECONDS
            raise
        except (ValueError, jwt.PyJWKClientError, jwt.PyJWKSetError) as error:
            # Not a key set (a maintenance page, an empty set): the host's fault, not the
            # token's, and passing.
            self._down_until = time.monotonic() + JWKS_RETRY_AFTER_SECONDS
            raise jwt.PyJWKClientConnectionError("The key set is not usable.") from error


def _is_identifier(text: str) -> bool:
    """True when ``text`` is an ``Identifier`` as it stands (not only once stripped)."""
    try:
        return _IDENTIFIER.validate_python(text) == text
    except ValidationError:
        return False


class IdentityVerifier:
    """Turns a ``/session`` request into the user id the gateway may trust (or None)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._mode = settings.identity_mode
        self._key = (
            settings.identity_jwt_key.get_secret_value() if settings.identity_jwt_key else None
        )
        self._jwks = _HostKeys(settings.identity_jwks_url) if settings.identity_jwks_url else None
        self._issuer = settings.identity_issuer
        self._audience = settings.identity_audience
        self._algorithms = settings.identity_algorithms
        self._max_lifetime = settings.identity_max_lifetime_seconds

    def announce(self) -> None:
        """Log, once at start, how user ids are trusted."""
        if self._mode == "development":
            log.warning(
                "identity mode is development: a plain user_id is trusted without proof; "
                "set VOICE_GATEWAY_IDENTITY_MODE=jwt before real users arrive"
            )
        else:
            log.info("identity tokens required for user ids")

    async def user_id(self, request: SessionRequest) -> str | None:
        """The verified user id of the request, None for an anonymous one."""
        if request.identity_token is not None and (self._key or self._jwks):
            subject = await self._verify(request.identity_token)
            if request.user_id is not None and request.user_id != subject:
                raise ServiceError(
                    ErrorCode.IDENTITY_INVALID,
                    "user_id does not match the identity token.",
                    status=403,
                )
            return subject
        if request.user_id is None:
            return None
        if self._mode == "development":
            return request.user_id
        raise ServiceError(
            ErrorCode.IDENTITY_REQUIRED, "A user_id needs an identity_token from the host app."
        )

    async def _verify(self, token: str) -> str:
        try:
            key: Any = self._key
            if self._jwks is not None:
                # PyJWKClient fetches (and caches) the key set with blocking I/O.
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                key = signing_key.key
            payload = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "sub", "aud"] + (["iss"] if self._issuer else [])},
            )
        except jwt.PyJWKClientConnectionError:
            # The host's key set could not be fetched: the token may well be good, so say
            # "try again" rather than "your token is invalid" (which a client would not retry).
            log.warning("identity key set unreachable")
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE,
                "The identity provider's keys could not be fetched.",
                retry_after=JWKS_RETRY_AFTER_SECONDS,
            ) from None
        except jwt.ExpiredSignatureError:
            raise ServiceError(
                ErrorCode.IDENTITY_INVALID, "The identity token has expired."
            ) from None
        # PyJWTError covers a token whose algorithm does not fit the key (InvalidKeyError, a
        # PEM key offered as an HMAC secret); TypeError a JWKS key object offered as one.
        except (jwt.PyJWTError, ValueError, TypeError):
            raise ServiceError(
                ErrorCode.IDENTITY_INVALID, "The identity token is not valid."
            ) from None
        subject = payload.get("sub")
        if not isinstance(subject, str) or not subject:
            raise ServiceError(ErrorCode.IDENTITY_INVALID, "The identity token names no user.")
        if not _is_identifier(subject):
            # The user id travels in Redis keys and NATS subjects: refused here, before a
            # session exists, rather than failing once one was created.
            raise ServiceError(
                ErrorCode.IDENTITY_INVALID,
                "The identity token's user id (sub) must be 1-128 letters, digits, '.', '_', "
                "':' or '-', starting with a letter or digit.",
            )
        # The host app signs short tokens: a long-lived one, once leaked, would work for years.
        if int(payload["exp"]) - time.time() > self._max_lifetime + CLOCK_SKEW_SECONDS:
            raise ServiceError(
                ErrorCode.IDENTITY_INVALID,
                f"The identity token lives too long: its exp may be at most "
                f"{self._max_lifetime} seconds ahead.",
            )
        return subject
