"""Sealing what an incognito session keeps: only the same key and the same context open it."""

from __future__ import annotations

from opencouch.contracts.common import MemoryMode
from opencouch.voice_gateway.sealing import seal, unseal
from opencouch.voice_gateway.settings import GatewaySettings
from opencouch.voice_gateway.tokens import TokenSigner, sealing_key


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


def test_a_token_cannot_be_signed_again_from_what_the_gateway_keeps_of_its_session() -> None:
    # HS256 signs the same claims into the same token: from the session's ids and times (all in
    # Redis) and the signing key, its sealing key could be had again. A random claim prevents it.
    settings = GatewaySettings()
    signer = TokenSigner(settings)
    issued = [
        signer.issue(
            session_id="vs_1",
            thread_id="thread-1",
            user_id=None,
            memory_mode=MemoryMode.INCOGNITO,
            now=1_800_000_000,
        )
        for _ in range(2)
    ]
    (first, claims), (second, again) = issued
    assert first != second
    assert claims.sealing_key != again.sealing_key
