"""Sealing what an incognito session keeps: only the same key and the same context open it."""

from __future__ import annotations

from opencouch.voice_gateway.sealing import seal, unseal
from opencouch.voice_gateway.tokens import sealing_key


def test_a_sealed_value_opens_only_with_its_tokens_key_and_its_context() -> None:
    key, other = sealing_key("token-a"), sealing_key("token-b")
    value = {"output": {"location": "Leeds, United Kingdom"}, "ok": True}
    sealed = seal(key, value, "vs_1:call-1")
    assert "Leeds" not in sealed
    assert unseal(key, sealed, "vs_1:call-1") == value
    assert unseal(other, sealed, "vs_1:call-1") is None
    assert unseal(key, sealed, "vs_1:call-2") is None  # not moved to another call
    assert unseal(key, "not base64 at all!", "vs_1:call-1") is None
    assert seal(key, value, "vs_1:call-1") != sealed  # a fresh nonce each time
