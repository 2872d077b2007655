"""Voice-session tokens: a signed capability for one voice session, issued by ``/session``.

A token names the session, its thread, its user (if verified) and its memory mode; the gateway
trusts those and never a request body. HS256 JWTs via PyJWT, each signed with the active key of
``token_signing_keys`` and carrying its ``kid``, so keys rotate: add the new key, make it
active, drop the old one once its tokens have expired.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

from opencouch.contracts.common import ErrorCode, MemoryMode
from opencouch.runtime.errors import ServiceError
from opencouch.voice_gateway.settings import GatewaySettings

ISSUER: Final = "opencouch-voice-gateway"
AUDIENCE: Final = "opencouch-voice-session"
ALGORITHM: Final = "HS256"
_REQUIRED: Final = ["exp", "iat", "iss", "aud", "sid", "tid", "mode", "ses_exp"]
VERIFIED_CACHE_SIZE: Final = 5_000
CLOCK_SKEW_SECONDS: Final = 5
"""How far the clocks of two gateway replicas may disagree: a token one minted is not refused
by another whose clock is behind (PyJWT refuses an ``iat`` in the future)."""


@dataclass(frozen=True)
class VoiceSessionClaims:
    """What a valid token says about the session it opens."""

    session_id: str
    thread_id: str
    user_id: str | None
    memory_mode: MemoryMode
    session_expires_at: int
    """Unix seconds after which tools and turns are refused."""
    expires_at: int
    """Unix seconds after which the token itself is refused (``/end`` included)."""
    sealing_key: bytes | None = field(default=None, repr=False, compare=False)
    """A key only the token's holder can give (derived from the token, which the gateway keeps
    nowhere): what an incognito session keeps in Redis is sealed with it (``sealing``)."""

    def expired(self, grace: float = 0.0) -> bool:
        """Whether the session's maximum duration (and ``grace`` seconds after it) has passed."""
        return time.time() > self.session_expires_at + grace

    def refuse_if_expired(self, grace: float = 0.0) -> None:
        """Refuse a new tool call or turn after the session's maximum duration (409), or
        ``grace`` seconds after it.

        A retry of one answered before keeps its answer: callers check this after the claim.
        """
        if self.expired(grace):
            raise ServiceError(
                ErrorCode.SESSION_EXPIRED,
                "This voice session reached its maximum duration; start a new one.",
            )

    @property
    def owner_id(self) -> str:
        """Whose quota and memory this session counts against: the user, else the thread."""
        return f"user:{self.user_id}" if self.user_id else f"thread:{self.thread_id}"


class TokenSigner:
    """Issues and verifies voice-session tokens with the settings' keys."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._keys = settings.signing_keys
        self._active = settings.active_key_id
        if self._active not in self._keys:
            raise ValueError(f"token_active_key_id {self._active!r} is not among the signing keys")
        self._session_seconds = settings.max_session_seconds
        self._grace = settings.token_grace_seconds
        # Tokens already verified: every call of a session carries the same one, and checking
        # its signature again each time is a fifth of a tool call's work. Expiry is re-checked.
        self._verified: OrderedDict[str, VoiceSessionClaims] = OrderedDict()

    def issue(
        self,
        *,
        session_id: str,
        thread_id: str,
        user_id: str | None,
        memory_mode: MemoryMode,
        now: int | None = None,
    ) -> tuple[str, VoiceSessionClaims]:
        """A token for a session starting ``now``, and the claims it carries."""
        issued = int(time.time()) if now is None else now
        claims = VoiceSessionClaims(
            session_id=session_id,
            thread_id=thread_id,
            user_id=user_id,
            memory_mode=memory_mode,
            session_expires_at=issued + self._session_seconds,
            expires_at=issued + self._session_seconds + self._grace,
        )
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": claims.expires_at,
            "sid": session_id,
            "tid": thread_id,
            "mode": memory_mode.value,
            "ses_exp": claims.session_expires_at,
            # Random, kept nowhere: without it HS256 would sign the same token again from what
            # Redis keeps of the session (ids, times), and so give back its sealing key.
            "jti": secrets.token_urlsafe(24),
        }
        if user_id is not None:
            payload["uid"] = user_id
        token = jwt.encode(
            payload, self._keys[self._active], algorithm=ALGORITHM, headers={"kid": self._active}
        )
        return token, dataclasses.replace(claims, sealing_key=sealing_key(token))

    def verify(self, token: str) -> VoiceSessionClaims:
        """The claims of a valid token; ``ServiceError`` (401) for anything else."""
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at + CLOCK_SKEW_SECONDS <= time.time():  # as jwt.decode's leeway
                del self._verified[token]
                raise _expired()
            self._verified.move_to_end(token)
            return known
        claims = self._decode(token)
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def _decode(self, token: str) -> VoiceSessionClaims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise _invalid("The token was signed with an unknown key.")
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": _REQUIRED},
            )
            return VoiceSessionClaims(
                session_id=str(payload["sid"]),
                thread_id=str(payload["tid"]),
                user_id=str(payload["uid"]) if payload.get("uid") is not None else None,
                memory_mode=MemoryMode(payload["mode"]),
                session_expires_at=int(payload["ses_exp"]),
                expires_at=int(payload["exp"]),
                sealing_key=sealing_key(token),
            )
        except jwt.ExpiredSignatureError:
            raise _expired() from None
        except (jwt.InvalidTokenError, ValueError, KeyError, TypeError):
            raise _invalid("The voice-session token is not valid.") from None


def sealing_key(token: str) -> bytes:
    """The sealing key of a token's session (see ``VoiceSessionClaims.sealing_key``)."""
    return hashlib.sha256(b"opencouch-voice/sealing/" + token.encode()).digest()


def _expired() -> ServiceError:
    return ServiceError(
        ErrorCode.TOKEN_EXPIRED, "The voice-session token has expired; start a new session."
    )


def _invalid(message: str) -> ServiceError:
    return ServiceError(ErrorCode.TOKEN_INVALID, message)
