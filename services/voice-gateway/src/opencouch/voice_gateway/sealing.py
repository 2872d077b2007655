"""What an incognito session keeps in Redis, sealed with a key only its token's holder gives.

Redis writes its memory to disk (snapshots, append-only rewrites), and a tool's output can say
where the person is. Sealed with AES-GCM under ``VoiceSessionClaims.sealing_key``, derived from
the session's token, which the gateway keeps nowhere: what reaches Redis's disk cannot be read
without the token, and is gone for good once the session's token is.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


def seal(key: bytes, value: Any, context: str) -> str:
    """``value`` as JSON, sealed under ``key`` and bound to ``context`` (what it is kept as)."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(value).encode(), context.encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal(key: bytes, sealed: str, context: str) -> Any | None:
    """What ``seal`` sealed; None when it cannot be opened (another key, another context)."""
    try:
        raw = base64.b64decode(sealed)
        opened = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
    except (InvalidTag, ValueError):
        return None
    return json.loads(opened)
