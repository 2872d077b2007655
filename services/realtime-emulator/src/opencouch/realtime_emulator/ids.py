"""Identifiers shaped like OpenAI's: a prefix and a random base62 tail."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 21) -> str:
    """A fresh id such as ``event_C9G5RJeJ2gF77mV7f2B1j``."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_client_secret() -> str:
    """A fresh ephemeral key, ``ek_`` and 32 hex digits like OpenAI's."""
    return "ek_" + secrets.token_hex(16)


def new_call_id() -> str:
    """A fresh WebRTC call id, shaped like ``rtc_u1_9c6574da8b8a41a18da9308f4ad974ce``."""
    return "rtc_u1_" + secrets.token_hex(16)
