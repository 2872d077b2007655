"""Gateway security: one negative test per rule, against real NATS, Redis and the emulator.

The call limits count in fixed windows aligned to the clock, so the tests set them per hour: a
window that turns over between a test's calls resets the count, and an hour does that 60 times
less often than a minute.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
import redis
from fastapi.testclient import TestClient

from opencouch.contracts.common import MemoryMode
from opencouch.contracts.memory import StoredTurn
from opencouch.contracts.tools import TOOL_CATALOG
from opencouch.runtime.jetstream import publish_event
from opencouch.voice_gateway import turns
from opencouch.voice_gateway.settings import DEVELOPMENT_TOKEN_KEY, GatewaySettings
from opencouch.voice_gateway.testing import (
    API,
    SLOW_TOOL,
    FakeOwners,
    GatewayFactory,
    bearer,
    open_session,
    token_started_ago,
    unique,
)
from opencouch.voice_gateway.tokens import TokenSigner
from opencouch.voice_gateway.voice_sessions import redis_key


def tool_call(name: str = "wait_for_user", **body: Any) -> dict[str, Any]:
    return {"tool_name": name, "call_id": unique("call"), "arguments": {}, **body}


def turn(**body: Any) -> dict[str, Any]:
    return {
        "client_turn_id": unique("turn"),
        "user_text": "I had a long day.",
        "assistant_text": "Tell me about it.",
        **body,
    }


def error_code(reply: Any) -> str:
    code: str = reply.json()["error"]["code"]
    return code


# -- the token ----------------------------------------------------------------------------------


def test_session_reply_carries_a_token_and_no_private_instructions(gateway: TestClient) -> None:
    session = open_session(gateway, memory_mode="persistent", user_id=unique("user"))
    assert session["token"].count(".") == 2
    assert session["token_expires_at"] > session["session_expires_at"] > time.time()
    assert "instructions" not in session["session"]
    assert "short answers" not in json.dumps(session)  # the fake's private memory context
    assert session["client_secret"]["value"].startswith("ek_")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/tools", tool_call()),
        ("post", "/turn", turn()),
        ("post", "/end", {}),
        ("get", "/sessions/vs_00000000000000000000000000000000/finalization", None),
        ("get", "/threads/some-thread/turns", None),
        ("post", "/memory/erase", {"confirm": "erase everything"}),
    ],
)
def test_every_session_route_needs_the_token(
    gateway: TestClient, method: str, path: str, body: Any
) -> None:
    reply = gateway.request(method, f"{API}{path}", json=body)
    assert reply.status_code == 401
    assert error_code(reply) == "token_missing"
    basic = gateway.request(
        method, f"{API}{path}", json=body, headers={"Authorization": "Basic eDp5"}
    )
    assert error_code(basic) == "token_missing"


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["mode"] = "persistent"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def valid_claims(session: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "opencouch-voice-gateway",
        "aud": "opencouch-voice-session",
        "iat": now,
        "exp": now + 600,
        "ses_exp": now + 300,
        "sid": session["session_id"],
        "tid": session["thread_id"],
        "mode": session["memory_mode"],
    }


def signed_like_a_token(session: dict[str, Any], **claims: Any) -> str:
    """Signed with the gateway's own (development) key, with ``claims`` changed."""
    return jwt.encode(
        {**valid_claims(session), **claims},
        DEVELOPMENT_TOKEN_KEY,
        algorithm="HS256",
        headers={"kid": "dev"},
    )


def test_a_tampered_or_foreign_key_token_is_invalid(gateway: TestClient) -> None:
    session = open_session(gateway)
    # The helper builds a token the gateway accepts: each variant below differs in one way only.
    accepted = gateway.post(
        f"{API}/turn",
        json=turn(),
        headers={"Authorization": f"Bearer {signed_like_a_token(session)}"},
    )
    assert accepted.status_code == 200, accepted.text
    for token in (
        tampered(session["token"]),
        session["token"][:-4] + "AAAA",
        jwt.encode(
            {"sid": session["session_id"]}, "x" * 40, algorithm="HS256", headers={"kid": "dev"}
        ),
        jwt.encode(
            {"sid": session["session_id"]}, "x" * 40, algorithm="HS256", headers={"kid": "other"}
        ),
        "not-a-jwt-at-all-but-long-enough",
        # The gateway's own key, but not a voice-session token: another audience or issuer.
        signed_like_a_token(session, aud="opencouch-voice"),
        signed_like_a_token(session, iss="someone-else"),
        jwt.encode(valid_claims(session), "", algorithm="none", headers={"kid": "dev"}),
    ):
        reply = gateway.post(
            f"{API}/turn", json=turn(), headers={"Authorization": f"Bearer {token}"}
        )
        assert reply.status_code == 401, token
        assert error_code(reply) == "token_invalid"


def test_an_expired_token_is_refused_as_expired(
    gateway: TestClient, make_gateway: GatewayFactory
) -> None:
    signer = TokenSigner(GatewaySettings())
    token, _ = signer.issue(
        session_id="vs_" + "1" * 32,
        thread_id="t",
        user_id=None,
        memory_mode=MemoryMode.INCOGNITO,
        now=int(time.time()) - 10 * 3600,
    )
    reply = gateway.post(f"{API}/turn", json=turn(), headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401
    assert error_code(reply) == "token_expired"


def test_keys_rotate_by_key_id(make_gateway: GatewayFactory) -> None:
    old = make_gateway(token_signing_keys="k1:" + "a" * 40)
    session = open_session(old)
    rotated = make_gateway(
        token_signing_keys=f"k2:{'b' * 40},k1:{'a' * 40}", token_active_key_id="k2"
    )
    assert rotated.post(f"{API}/turn", json=turn(), headers=bearer(session)).status_code == 200
    assert jwt.get_unverified_header(open_session(rotated)["token"])["kid"] == "k2"
    retired = make_gateway(token_signing_keys="k2:" + "b" * 40)
    assert (
        error_code(retired.post(f"{API}/turn", json=turn(), headers=bearer(session)))
        == "token_invalid"
    )


def test_a_token_of_another_session_or_a_disagreeing_body_is_refused(gateway: TestClient) -> None:
    mine, theirs = open_session(gateway, memory_mode="persistent"), open_session(gateway)
    for path, body in (
        ("/turn", turn(session_id=theirs["session_id"])),
        ("/turn", turn(thread_id=theirs["thread_id"])),
        ("/tools", tool_call(thread_id=theirs["thread_id"])),
        ("/tools", tool_call(session_id=theirs["session_id"])),
        ("/tools", tool_call(memory_mode="incognito")),
        ("/turn", turn(memory_mode="incognito")),
        ("/end", {"session_id": theirs["session_id"]}),
    ):
        reply = gateway.post(f"{API}{path}", json=body, headers=bearer(mine))
        assert reply.status_code == 403, (path, body)
        assert error_code(reply) == "token_mismatch"
    other = gateway.get(f"{API}/sessions/{theirs['session_id']}/finalization", headers=bearer(mine))
    assert other.status_code == 403
    history = gateway.get(f"{API}/threads/{theirs['thread_id']}/turns", headers=bearer(mine))
    assert (history.status_code, error_code(history)) == (403, "token_mismatch")
    # The body that agrees with the token is fine.
    same = gateway.post(
        f"{API}/turn",
        json=turn(
            session_id=mine["session_id"], thread_id=mine["thread_id"], memory_mode="persistent"
        ),
        headers=bearer(mine),
    )
    assert same.status_code == 200


# -- who owns a thread --------------------------------------------------------------------------


def test_an_anonymous_thread_needs_its_secret_after_the_first_session(gateway: TestClient) -> None:
    first = open_session(gateway)
    secret = first["thread_secret"]
    assert secret
    refused = gateway.post(f"{API}/session", json={"thread_id": first["thread_id"]})
    assert refused.status_code == 403
    assert error_code(refused) == "thread_forbidden"
    wrong = gateway.post(
        f"{API}/session", json={"thread_id": first["thread_id"], "thread_secret": "x" * 43}
    )
    assert error_code(wrong) == "thread_forbidden"
    again = open_session(gateway, thread_id=first["thread_id"], thread_secret=secret)
    assert "thread_secret" not in again


def test_a_secret_the_client_made_binds_its_new_thread_so_a_lost_reply_locks_nobody_out(
    gateway: TestClient,
) -> None:
    # The first reply used to carry the only copy of a secret the gateway made: a browser that
    # timed out while the gateway finished could never open its own new thread again.
    proposed = secrets.token_urlsafe(32)
    first = open_session(gateway, thread_secret=proposed)
    assert first["thread_secret"] == proposed
    # The reply was lost; the browser asks again with what it already holds.
    retried = open_session(gateway, thread_id=first["thread_id"], thread_secret=proposed)
    assert "thread_secret" not in retried
    for other in ({}, {"thread_secret": secrets.token_urlsafe(32)}):
        refused = gateway.post(f"{API}/session", json={"thread_id": first["thread_id"], **other})
        assert error_code(refused) == "thread_forbidden"
    # Too short to be a secret: the gateway makes one instead, and says so.
    short = open_session(gateway, thread_secret="x" * 31)
    assert short["thread_secret"]
    assert short["thread_secret"] != "x" * 31


def test_a_users_thread_is_theirs_alone_and_its_memory_goes_to_no_one_else(
    gateway: TestClient, owners: FakeOwners
) -> None:
    thread, alice = unique("thread"), unique("alice")
    open_session(gateway, thread_id=thread, user_id=alice, memory_mode="persistent")
    for intruder in ({"user_id": unique("mallory")}, {}):
        reply = gateway.post(
            f"{API}/session", json={"thread_id": thread, "memory_mode": "persistent", **intruder}
        )
        assert reply.status_code == 403
        assert error_code(reply) == "thread_forbidden"


def test_a_signed_in_person_who_continues_an_anonymous_thread_takes_it(
    gateway: TestClient,
) -> None:
    # Memory counts the thread as the user's once they speak in it, but its binding stayed
    # anonymous: anyone holding the secret (another user, or none) could open it, then read
    # or erase what the signed-in person said there.
    secret = secrets.token_urlsafe(32)
    thread = open_session(gateway, thread_secret=secret, memory_mode="persistent")["thread_id"]
    alice = unique("alice")
    # An incognito visit keeps nothing of theirs, and leaves the thread to its secret.
    visit = {"thread_id": thread, "thread_secret": secret, "user_id": alice}
    open_session(gateway, **visit, memory_mode="incognito")
    earlier = open_session(
        gateway, thread_id=thread, thread_secret=secret, memory_mode="persistent"
    )
    history = f"{API}/threads/{thread}/turns"
    assert gateway.get(history, headers=bearer(earlier)).status_code == 200
    assert open_session(gateway, **visit, memory_mode="persistent")["user_id"] == alice
    # The anonymous session opened before is still live, its token valid: it reads and erases
    # the thread no more.
    for reply in (
        gateway.get(history, headers=bearer(earlier)),
        gateway.post(
            f"{API}/memory/erase", json={"confirm": "erase everything"}, headers=bearer(earlier)
        ),
    ):
        assert (reply.status_code, error_code(reply)) == (403, "thread_forbidden")
    for intruder in ({"user_id": unique("mallory")}, {}):
        reply = gateway.post(
            f"{API}/session",
            json={"thread_id": thread, "thread_secret": secret, "memory_mode": "persistent"}
            | intruder,
        )
        assert (reply.status_code, error_code(reply)) == (403, "thread_forbidden")
    # Hers now: she opens it signed in, without the secret.
    open_session(gateway, thread_id=thread, user_id=alice, memory_mode="persistent")


@pytest.mark.parametrize("memory_mode", ["persistent", "incognito"])
@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_a_kept_thread_whose_binding_is_gone_is_opened_by_no_one(
    gateway: TestClient, owners: FakeOwners, redis_url: str, memory_mode: str, who: str
) -> None:
    # Its binding expired (a year idle) or Redis lost it, while memory keeps its turns: whoever
    # knew its id bound it to themselves and could read, or erase, what was said in it.
    thread = unique("thread")
    first = open_session(gateway, thread_id=thread, memory_mode="persistent")
    owners.kept_turns[thread] = [
        StoredTurn(
            session_id=first["session_id"],
            client_turn_id="turn-1",
            user_text="something private",
            assistant_text="I hear you.",
            route="therapeutic",
            response_style="voice",
            outcome="completed",
            recorded_at=datetime.now(UTC),
        )
    ]
    assert redis.Redis.from_url(redis_url).delete(redis_key("thread", thread)) == 1
    intruder = {"user_id": unique("mallory")} if who == "user" else {}
    reply = gateway.post(
        f"{API}/session", json={"thread_id": thread, "memory_mode": memory_mode, **intruder}
    )
    assert (reply.status_code, error_code(reply)) == (403, "thread_forbidden")
    # A new thread opens as ever.
    open_session(gateway, memory_mode=memory_mode, **intruder)


def test_identity_tokens_are_verified_in_jwt_mode(make_gateway: GatewayFactory) -> None:
    key = "host-app-shared-key-" + "k" * 24
    gateway = make_gateway(identity_mode="jwt", identity_jwt_key=key, identity_issuer="host-app")

    def identity(sub: str, signing_key: str = key, **claims: Any) -> str:
        payload = {
            "sub": sub,
            "aud": "opencouch-voice",
            "iss": "host-app",
            "exp": int(time.time()) + 60,
        }
        return jwt.encode({**payload, **claims}, signing_key, algorithm="HS256")

    alice = unique("alice")
    session = open_session(gateway, identity_token=identity(alice), memory_mode="persistent")
    assert session["user_id"] == alice
    for body, code, status in (
        ({"user_id": alice}, "identity_required", 401),
        ({"identity_token": identity(alice, "forged-" + "f" * 40)}, "identity_invalid", 401),
        ({"identity_token": identity(alice, iss="someone-else")}, "identity_invalid", 401),
        ({"identity_token": identity(alice, aud="another-app")}, "identity_invalid", 401),
        # Expired beyond the clock skew allowed (30 s), or issued further ahead than it.
        ({"identity_token": identity(alice, exp=int(time.time()) - 45)}, "identity_invalid", 401),
        ({"identity_token": identity(alice, iat=int(time.time()) + 90)}, "identity_invalid", 401),
        ({"identity_token": identity(alice), "user_id": unique("bob")}, "identity_invalid", 403),
        # A leaked token signed to live for years is refused: the host app signs short ones.
        (
            {"identity_token": identity(alice, exp=int(time.time()) + 10 * 365 * 86400)},
            "identity_invalid",
            401,
        ),
    ):
        reply = gateway.post(f"{API}/session", json={"thread_id": unique("thread"), **body})
        assert (reply.status_code, error_code(reply)) == (status, code), body
    # A host app whose clock runs a little ahead: its token was "not valid" (401, not retried).
    ahead = identity(alice, iat=int(time.time()) + 20, exp=int(time.time()) + 80)
    assert open_session(gateway, identity_token=ahead)["user_id"] == alice


def test_a_voice_token_another_replica_minted_a_moment_ahead_is_valid(
    gateway: TestClient,
) -> None:
    # Two replicas' clocks a few seconds apart: one's token was refused by the other.
    session = open_session(gateway, memory_mode="persistent")
    signer = TokenSigner(GatewaySettings())  # the development key, as the gateway's
    ahead, _ = signer.issue(
        session_id=session["session_id"],
        thread_id=session["thread_id"],
        user_id=None,
        memory_mode=MemoryMode.PERSISTENT,
        now=int(time.time()) + 3,
    )
    history = gateway.get(
        f"{API}/threads/{session['thread_id']}/turns", headers={"Authorization": f"Bearer {ahead}"}
    )
    assert history.status_code == 200, history.text


def test_an_identity_subject_that_is_no_identifier_is_refused_and_holds_no_slot(
    make_gateway: GatewayFactory,
) -> None:
    """An Auth0 ``auth0|...`` or an email as ``sub`` used to pass verification, create the
    session, then fail its reply with a 500 that left the session live: three tries and the
    user was refused ``too_many_sessions`` for an hour."""
    key = "host-app-shared-key-" + "k" * 24
    gateway = make_gateway(
        identity_mode="jwt",
        identity_jwt_key=key,
        identity_issuer="host-app",
        max_sessions_per_user=1,
    )
    claims = {"aud": "opencouch-voice", "iss": "host-app", "exp": int(time.time()) + 60}
    for sub in (f"auth0|{uuid.uuid4().hex}", f"{unique('alice')}@example.com", " " + unique("a")):
        token = jwt.encode({"sub": sub, **claims}, key, algorithm="HS256")
        for _ in range(2):
            reply = gateway.post(
                f"{API}/session", json={"thread_id": unique("thread"), "identity_token": token}
            )
            assert (reply.status_code, error_code(reply)) == (401, "identity_invalid"), sub
            assert "sub" in reply.json()["error"]["message"]
            assert sub.strip() not in reply.text


def test_a_failure_once_the_session_exists_discards_it(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever fails after the session was created, up to its reply, frees its slot."""
    gateway = make_gateway(max_sessions_per_user=1)
    user = unique("user")

    def broken(*_: Any, **__: Any) -> Any:
        raise ValueError("a reply that does not validate")

    with monkeypatch.context() as patched:
        patched.setattr("opencouch.voice_gateway.session_config.SessionReply", broken)
        reply = gateway.post(
            f"{API}/session", json={"thread_id": unique("thread"), "user_id": user}
        )
        assert reply.status_code == 500
    open_session(gateway, user_id=user)


def test_an_identity_token_whose_algorithm_does_not_fit_the_key_is_invalid_not_a_500(
    make_gateway: GatewayFactory,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    claims = {
        "sub": unique("alice"),
        "aud": "opencouch-voice",
        "iss": "host-app",
        "exp": int(time.time()) + 60,
    }
    host = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        host.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    shared = "host-app-shared-key-" + "k" * 24
    for key, token in (
        # An RS256 token against a shared key: PyJWT's InvalidKeyError.
        (shared, jwt.encode(claims, host, algorithm="RS256")),
        # An HS256 token against a PEM public key (the algorithm-confusion attack): the same.
        (pem, jwt.encode(claims, "x" * 40, algorithm="HS256")),
    ):
        gateway = make_gateway(
            identity_mode="jwt", identity_jwt_key=key, identity_issuer="host-app"
        )
        reply = gateway.post(
            f"{API}/session", json={"thread_id": unique("thread"), "identity_token": token}
        )
        assert (reply.status_code, error_code(reply)) == (401, "identity_invalid")
    # The PEM key still verifies what the host app signs with its private key.
    signed = jwt.encode(claims, host, algorithm="RS256")
    assert open_session(gateway, identity_token=signed)["user_id"] == claims["sub"]


@pytest.fixture
def jwks_url() -> Any:
    """A host application's JWKS endpoint, served over real HTTP, and its private key."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "host-1", "use": "sig", "alg": "RS256"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(self.path)
            status, content_type, served = answers.get(self.path, (200, "application/json", body))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.end_headers()
            self.wfile.write(served.encode())

        def log_message(self, *_: Any) -> None:
            pass

    fetches: list[str] = []
    # Other paths answer as a broken endpoint would.
    answers = {
        "/maintenance": (200, "text/html", "<html>Down for maintenance</html>"),
        "/empty": (200, "application/json", '{"keys": []}'),
        "/failing": (502, "text/plain", "bad gateway"),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", key, fetches
    server.shutdown()
    thread.join(5)


def test_identity_tokens_are_verified_against_a_jwks(
    make_gateway: GatewayFactory, jwks_url: Any
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    url, key, _ = jwks_url
    gateway = make_gateway(identity_mode="jwt", identity_jwks_url=url, identity_issuer="host-app")
    claims = {"aud": "opencouch-voice", "iss": "host-app", "exp": int(time.time()) + 60}
    alice = unique("alice")
    signed = jwt.encode({"sub": alice, **claims}, key, algorithm="RS256", headers={"kid": "host-1"})
    session = open_session(gateway, identity_token=signed, memory_mode="persistent")
    assert session["user_id"] == alice
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {"sub": alice, **claims}, impostor, algorithm="RS256", headers={"kid": "host-1"}
    )
    unknown = jwt.encode(
        {"sub": alice, **claims}, key, algorithm="RS256", headers={"kid": "host-2"}
    )
    # HS256 naming a known kid: PyJWT would take the RSA key as an HMAC secret (a TypeError).
    confused = jwt.encode(
        {"sub": alice, **claims}, "x" * 40, algorithm="HS256", headers={"kid": "host-1"}
    )
    for token in (forged, unknown, confused):
        reply = gateway.post(
            f"{API}/session", json={"thread_id": unique("thread"), "identity_token": token}
        )
        assert (reply.status_code, error_code(reply)) == (401, "identity_invalid")


def test_unknown_key_ids_do_not_make_the_gateway_fetch_the_key_set_each_time(
    make_gateway: GatewayFactory, jwks_url: Any
) -> None:
    """Anyone may send tokens naming made-up key ids: each would cost a fetch from the host's
    JWKS endpoint, were the forced refresh not held to once per cooldown (PyJWT's)."""
    url, key, fetches = jwks_url
    gateway = make_gateway(identity_mode="jwt", identity_jwks_url=url, identity_issuer="host-app")
    claims = {"aud": "opencouch-voice", "iss": "host-app", "exp": int(time.time()) + 60}
    for n in range(8):
        token = jwt.encode(
            {"sub": unique("mallory"), **claims}, key, algorithm="RS256", headers={"kid": f"k{n}"}
        )
        reply = gateway.post(
            f"{API}/session", json={"thread_id": unique("thread"), "identity_token": token}
        )
        assert (reply.status_code, error_code(reply)) == (401, "identity_invalid")
    assert 1 <= len(fetches) <= 2


def test_an_unreachable_key_set_is_a_503_to_retry_not_an_invalid_token(
    make_gateway: GatewayFactory,
) -> None:
    """The host's JWKS endpoint down said "the identity token is not valid" (401): a client
    that believes it drops a good token and signs the person out."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = make_gateway(
        identity_mode="jwt",
        identity_jwks_url=f"http://127.0.0.1:{port}/.well-known/jwks.json",
        identity_issuer="host-app",
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        {
            "sub": unique("alice"),
            "aud": "opencouch-voice",
            "iss": "host-app",
            "exp": int(time.time()) + 60,
        },
        key,
        algorithm="RS256",
        headers={"kid": "host-1"},
    )
    thread = unique("thread")
    reply = gateway.post(f"{API}/session", json={"thread_id": thread, "identity_token": token})
    assert (reply.status_code, error_code(reply)) == (503, "service_unavailable")
    assert reply.headers["Retry-After"] == "5"
    # Nothing was made of the refused start: the thread is still free to bind.
    assert open_session(gateway, thread_id=thread)["thread_id"] == thread


@pytest.mark.parametrize("path", ["/maintenance", "/empty", "/failing"])
def test_a_key_set_endpoint_that_fails_is_a_503_and_not_asked_again_at_once(
    make_gateway: GatewayFactory, jwks_url: Any, path: str
) -> None:
    """An error page or an empty set was "identity_invalid" (401, not retried). And PyJWT
    starts no cooldown on a failure: each /session behind a failing (or hung) endpoint fetched
    again, in turn, under its lock."""
    url, key, fetches = jwks_url
    gateway = make_gateway(
        identity_mode="jwt", identity_jwks_url=url.rsplit("/", 2)[0] + path, identity_issuer="a"
    )
    token = jwt.encode(
        {"sub": unique("alice"), "aud": "opencouch-voice", "iss": "a", "exp": time.time() + 60},
        key,
        algorithm="RS256",
        headers={"kid": "host-1"},
    )
    for _ in range(3):
        reply = gateway.post(
            f"{API}/session", json={"thread_id": unique("thread"), "identity_token": token}
        )
        assert (reply.status_code, error_code(reply)) == (503, "service_unavailable")
    assert fetches == [path]


def test_a_cached_voice_token_is_given_the_same_clock_skew_as_a_fresh_one() -> None:
    settings = GatewaySettings()
    signer = TokenSigner(settings)
    # Expired 2 s ago: within the skew allowed, whether verified afresh or from the cache.
    token, _ = signer.issue(
        session_id=f"vs_{uuid.uuid4().hex}",
        thread_id=unique("thread"),
        user_id=None,
        memory_mode=MemoryMode.PERSISTENT,
        now=int(time.time()) - settings.max_session_seconds - settings.token_grace_seconds - 2,
    )
    assert signer.verify(token).session_id == signer.verify(token).session_id


def test_development_identity_mode_says_so_at_start(caplog: pytest.LogCaptureFixture) -> None:
    from opencouch.voice_gateway.identity import IdentityVerifier

    with caplog.at_level("INFO", logger="opencouch.voice_gateway.identity"):
        IdentityVerifier(GatewaySettings()).announce()
    assert any(
        record.levelname == "WARNING" and "identity mode is development" in record.getMessage()
        for record in caplog.records
    )
    caplog.clear()
    with caplog.at_level("INFO", logger="opencouch.voice_gateway.identity"):
        IdentityVerifier(
            GatewaySettings(identity_mode="jwt", identity_jwt_key="k" * 40, identity_issuer="a")
        ).announce()
    assert not any("development" in record.getMessage() for record in caplog.records)


# -- tool policy --------------------------------------------------------------------------------


def test_an_incognito_session_cannot_run_a_persistent_only_tool(
    gateway: TestClient, owners: FakeOwners
) -> None:
    session = open_session(gateway)
    reply = gateway.post(
        f"{API}/tools", json=tool_call("show_saved_memory"), headers=bearer(session)
    )
    assert reply.status_code == 200
    assert reply.json()["ok"] is False
    assert reply.json()["output"]["error"]["code"] == "tool_not_available_in_memory_mode"
    assert owners.calls_in(session, "show_saved_memory") == 0
    offered = {tool["name"] for tool in session["session"]["tools"]}
    assert "show_saved_memory" not in offered


def test_a_replayed_call_id_returns_the_first_output_and_runs_once(
    gateway: TestClient, owners: FakeOwners
) -> None:
    session = open_session(gateway)
    # show_memory_status is not pure: it runs only once its claim admits it.
    call = tool_call("show_memory_status")
    first = gateway.post(f"{API}/tools", json=call, headers=bearer(session))
    second = gateway.post(f"{API}/tools", json=call, headers=bearer(session))
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["ok"] is True
    assert owners.calls_in(session, "show_memory_status") == 1
    reused = gateway.post(
        f"{API}/tools", json={**call, "tool_name": "wait_for_user"}, headers=bearer(session)
    )
    assert reused.status_code == 409
    assert error_code(reused) == "call_conflict"
    # A pure tool's replay is answered again (the same answer: same arguments, no state), and
    # the id stays claimed, so reusing it for another call is still a conflict.
    pure = tool_call("wait_for_user")
    answers = [gateway.post(f"{API}/tools", json=pure, headers=bearer(session)) for _ in range(2)]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["ok"] is True
    assert owners.calls_in(session, "wait_for_user", pure["call_id"]) == 2
    other = gateway.post(
        f"{API}/tools", json={**pure, "tool_name": "show_memory_status"}, headers=bearer(session)
    )
    assert other.status_code == 409
    assert error_code(other) == "call_conflict"


def test_an_incognito_sessions_tool_outputs_go_with_its_end(
    gateway: TestClient, owners: FakeOwners, redis_url: str
) -> None:
    # They were kept 6 h after an incognito session ended, in Redis's append-only file, and
    # an output can say where the person is (the crisis lookup's "location"). Redis writes its
    # memory to disk too (snapshots): what it holds is sealed with the session's token.
    session = open_session(gateway, memory_mode="incognito")
    call = tool_call("lookup_crisis_resources", current_user_message="I'm in Leeds")
    first = gateway.post(f"{API}/tools", json=call, headers=bearer(session))
    assert first.status_code == 200, first.text
    client = redis.Redis.from_url(redis_url)
    key = redis_key("call", session["session_id"], call["call_id"])
    for _ in range(100):  # stored once the reply is sent
        if b'"sealed"' in (client.get(key) or b""):
            break
        time.sleep(0.02)
    kept = client.get(key) or b""
    assert b'"output"' not in kept
    assert json.dumps(first.json()["output"]["status"]).encode() not in kept
    # Still answered once within the session, and kept no longer than its token lives.
    assert gateway.post(f"{API}/tools", json=call, headers=bearer(session)).json() == first.json()
    assert owners.calls_in(session, "lookup_crisis_resources") == 1
    assert 0 < client.ttl(key) <= session["token_expires_at"] - int(time.time()) + 1
    assert gateway.post(f"{API}/end", json={}, headers=bearer(session)).status_code == 200
    assert client.get(key) is None
    assert client.exists(redis_key("outputs", session["session_id"])) == 0


def test_a_pure_tool_is_asked_before_its_claim_but_a_refused_call_gets_only_its_refusal(
    make_gateway: GatewayFactory, owners: FakeOwners
) -> None:
    gateway = make_gateway(rate_limit_calls_per_session="2/hour")
    assert TOOL_CATALOG["wait_for_user"].pure
    assert not TOOL_CATALOG["show_memory_status"].pure
    limited = open_session(gateway)
    for _ in range(2):
        assert gateway.post(f"{API}/tools", json=tool_call(), headers=bearer(limited)).json()["ok"]
    over = gateway.post(f"{API}/tools", json=tool_call(), headers=bearer(limited))
    assert over.status_code == 429
    assert error_code(over) == "rate_limited"

    gateway = make_gateway()
    ended = open_session(gateway)
    assert gateway.post(f"{API}/end", json={}, headers=bearer(ended)).status_code in (200, 202)
    late = gateway.post(f"{API}/tools", json=tool_call(), headers=bearer(ended))
    assert late.status_code == 409
    assert error_code(late) == "session_ended"
    # The owner was asked while the claim was decided (the user waits for one round trip, not
    # two); the refusal is all the client saw.
    deadline = time.monotonic() + 5
    while owners.calls_in(ended, "wait_for_user") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert owners.calls_in(ended, "wait_for_user") == 1
    # Any other tool is never forwarded before its claim admits it.
    stateful = gateway.post(
        f"{API}/tools", json=tool_call("show_memory_status"), headers=bearer(ended)
    )
    assert stateful.status_code == 409
    time.sleep(0.2)
    assert owners.calls_in(ended, "show_memory_status") == 0


def _asked_settle(owners: FakeOwners, session: dict[str, Any], at_least: int) -> int:
    """How many pure calls of ``session`` reached the owner, once the early ones have landed."""
    deadline = time.monotonic() + 5
    while owners.calls_in(session, "wait_for_user") < at_least and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # and nothing more is on its way
    return owners.calls_in(session, "wait_for_user")


def test_after_a_refusal_a_sessions_pure_calls_wait_for_their_claim(
    make_gateway: GatewayFactory, owners: FakeOwners
) -> None:
    # One refused call was asked while its claim was decided; the calls after it are claimed
    # first, so a client calling on over its limit or after its end costs the owner nothing.
    gateway = make_gateway(rate_limit_calls_per_session="2/hour")
    limited = open_session(gateway)
    for _ in range(2):
        assert gateway.post(f"{API}/tools", json=tool_call(), headers=bearer(limited)).json()["ok"]
    statuses = [
        gateway.post(f"{API}/tools", json=tool_call(), headers=bearer(limited)).status_code
        for _ in range(5)
    ]
    assert statuses == [429] * 5
    assert _asked_settle(owners, limited, at_least=3) == 3  # two admitted, one refused early
    # Another session of the same gateway is not held back by it: asked during its claim.
    other = open_session(gateway)
    assert gateway.post(f"{API}/tools", json=tool_call(), headers=bearer(other)).json()["ok"]
    assert owners.calls_in(other, "wait_for_user") == 1

    gateway = make_gateway()
    ended = open_session(gateway)
    assert gateway.post(f"{API}/end", json={}, headers=bearer(ended)).status_code in (200, 202)
    late = [gateway.post(f"{API}/tools", json=tool_call(), headers=bearer(ended)) for _ in range(5)]
    assert [(r.status_code, error_code(r)) for r in late] == [(409, "session_ended")] * 5
    assert _asked_settle(owners, ended, at_least=1) == 1


def test_a_pure_call_of_an_expired_session_is_refused_without_reaching_its_owner(
    make_gateway: GatewayFactory, owners: FakeOwners
) -> None:
    gateway = make_gateway(max_session_seconds=60, token_grace_seconds=3600)
    settings = GatewaySettings(max_session_seconds=60, token_grace_seconds=3600)
    session = open_session(gateway)
    answered = tool_call()
    first = gateway.post(f"{API}/tools", json=answered, headers=bearer(session))
    assert first.json()["ok"] is True
    late = {"Authorization": f"Bearer {token_started_ago(session, 300, settings)}"}
    refused = gateway.post(f"{API}/tools", json=tool_call(), headers=late)
    assert (refused.status_code, error_code(refused)) == (409, "session_expired")
    # The call answered before the end is answered again when retried after it (claimed
    # first, as the token has expired): the same answer, as any replay of a pure call.
    again = gateway.post(f"{API}/tools", json=answered, headers=late)
    assert again.json() == first.json()
    assert _asked_settle(owners, session, at_least=2) == 2


def test_a_call_without_call_id_unknown_tools_and_bad_arguments_are_refused_before_forwarding(
    gateway: TestClient, owners: FakeOwners
) -> None:
    session = open_session(gateway)
    missing = gateway.post(
        f"{API}/tools",
        json={"tool_name": "wait_for_user", "arguments": {}},
        headers=bearer(session),
    )
    assert missing.status_code == 422
    assert error_code(missing) == "call_id_missing"
    unknown = gateway.post(f"{API}/tools", json=tool_call("rm_rf"), headers=bearer(session))
    assert unknown.json()["output"]["error"]["code"] == "unknown_tool"
    persistent = open_session(gateway, memory_mode="persistent")
    bad = gateway.post(
        f"{API}/tools",
        json=tool_call("recall_saved_memory", arguments={"limit": 99}),
        headers=bearer(persistent),
    )
    assert bad.json()["output"]["error"]["code"] == "invalid_arguments"
    assert owners.calls_in(persistent, "recall_saved_memory") == 0


def test_a_slow_crisis_or_other_tool_times_out_as_an_output_with_guidance(
    gateway: TestClient,
) -> None:
    session = open_session(gateway)
    slow = gateway.post(
        f"{API}/tools",
        json=tool_call(SLOW_TOOL, arguments={"query": "sleep"}),
        headers=bearer(session),
    )
    assert slow.status_code == 200
    assert slow.json()["output"]["error"]["code"] == "tool_timeout"
    crisis = gateway.post(
        f"{API}/tools", json=tool_call("lookup_crisis_resources"), headers=bearer(session)
    )
    output = crisis.json()["output"]
    assert crisis.json()["ok"] is False
    assert "emergency" in output["guidance"]
    assert "Do not name any hotline" in output["guidance"]


# -- the end of a session -----------------------------------------------------------------------


def test_ending_revokes_tools_and_turns_but_an_acknowledged_turn_keeps_its_place(
    gateway: TestClient,
) -> None:
    session = open_session(gateway, memory_mode="persistent", user_id=unique("user"))
    acknowledged = turn()
    first = gateway.post(f"{API}/turn", json=acknowledged, headers=bearer(session))
    assert first.status_code == 200
    ended = gateway.post(f"{API}/end", json={}, headers=bearer(session))
    assert ended.status_code in (200, 202), ended.text
    retried = gateway.post(f"{API}/turn", json=acknowledged, headers=bearer(session))
    assert retried.status_code == 200
    assert retried.json() == first.json()
    for path, body in (("/turn", turn()), ("/tools", tool_call())):
        late = gateway.post(f"{API}{path}", json=body, headers=bearer(session))
        assert late.status_code == 409
        assert error_code(late) == "session_ended"
    status = gateway.get(
        f"{API}/sessions/{session['session_id']}/finalization", headers=bearer(session)
    )
    assert status.status_code in (200, 202)


def test_turns_and_tools_after_the_maximum_duration_are_refused(
    make_gateway: GatewayFactory, redis_url: str
) -> None:
    gateway = make_gateway(max_session_seconds=60, token_grace_seconds=3600, late_turn_seconds=120)
    settings = GatewaySettings(max_session_seconds=60, token_grace_seconds=3600)
    session = open_session(gateway, memory_mode="persistent")
    # Its session ended 240 s ago, past the late-turn grace.
    late = token_started_ago(session, 300, settings)
    answered_turn, answered_call = turn(), tool_call()
    first_turn = gateway.post(f"{API}/turn", json=answered_turn, headers=bearer(session))
    first_call = gateway.post(f"{API}/tools", json=answered_call, headers=bearer(session))
    assert first_turn.json()["recorded"] is True
    for path, body in (("/turn", turn()), ("/tools", tool_call())):
        reply = gateway.post(f"{API}{path}", json=body, headers={"Authorization": f"Bearer {late}"})
        assert reply.status_code == 409
        assert error_code(reply) == "session_expired"
    # The refused turn's claim is given back: /end does not wait for it.
    assert in_flight(redis_url, session) == 0
    # What was answered before the end of the session keeps its answer when retried after it.
    late_auth = {"Authorization": f"Bearer {late}"}
    assert (
        gateway.post(f"{API}/turn", json=answered_turn, headers=late_auth).json()
        == first_turn.json()
    )
    assert (
        gateway.post(f"{API}/tools", json=answered_call, headers=late_auth).json()
        == first_call.json()
    )


def test_a_turn_arriving_just_after_the_maximum_duration_is_still_recorded_but_not_a_tool_call(
    make_gateway: GatewayFactory,
) -> None:
    # Realtime hangs up at its own cap while an exchange is still open; the page posts that
    # turn a moment later. It is what was said, so it is kept; no new tool may run.
    gateway = make_gateway(max_session_seconds=60, token_grace_seconds=3600, late_turn_seconds=120)
    settings = GatewaySettings(max_session_seconds=60, token_grace_seconds=3600)
    session = open_session(gateway, memory_mode="persistent")
    just_ended = token_started_ago(session, 90, settings)  # its session ended 30 s ago
    auth = {"Authorization": f"Bearer {just_ended}"}
    recorded = gateway.post(f"{API}/turn", json=turn(), headers=auth)
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["recorded"] is True
    refused = gateway.post(f"{API}/tools", json=tool_call(), headers=auth)
    assert refused.status_code == 409
    assert error_code(refused) == "session_expired"


def in_flight(redis_url: str, session: dict[str, Any]) -> int:
    """The session's turns claimed and not yet completed or released (what /end waits for)."""
    raw = redis.Redis.from_url(redis_url).hget(redis_key("vs", session["session_id"]), "inflight")
    return int(raw or 0)


def test_a_turn_whose_publish_outlasts_the_ends_count_is_not_acknowledged(
    gateway: TestClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /end counted the session's turns for the finalizer while this one's publish was on its
    # way: acknowledged now, it would be a turn the finalizer never waits for.
    session = open_session(gateway, memory_mode="persistent")
    live = redis.Redis.from_url(redis_url)

    async def outlasting_the_count(*args: Any, **kwargs: Any) -> int:
        live.hset(redis_key("vs", session["session_id"]), "counted", "1")
        return await publish_event(*args, **kwargs)

    monkeypatch.setattr(turns, "publish_event", outlasting_the_count)
    reply = gateway.post(f"{API}/turn", json=turn(), headers=bearer(session))
    assert (reply.status_code, error_code(reply)) == (409, "session_ended")


def test_an_incognito_turn_leaves_nothing_for_the_end_to_wait_for(
    gateway: TestClient, redis_url: str
) -> None:
    session = open_session(gateway, memory_mode="incognito")
    assert gateway.post(f"{API}/turn", json=turn(), headers=bearer(session)).status_code == 200
    assert in_flight(redis_url, session) == 0


@pytest.mark.parametrize("changed", ["user_text", "assistant_text"])
def test_a_turn_id_sent_again_with_other_words_is_a_conflict(
    gateway: TestClient, changed: str
) -> None:
    # Answered as a retry, the new words would be lost without a word.
    session = open_session(gateway, memory_mode="persistent")
    first = turn()
    assert gateway.post(f"{API}/turn", json=first, headers=bearer(session)).status_code == 200
    other = {**first, changed: "Something else entirely."}
    reply = gateway.post(f"{API}/turn", json=other, headers=bearer(session))
    assert (reply.status_code, error_code(reply)) == (409, "turn_conflict")


def test_forgetting_everything_drops_the_sessions_tool_outputs(
    gateway: TestClient, redis_url: str
) -> None:
    # A tool's output (a recalled memory among them) is kept for a replayed call_id: it went
    # with the rest, not when it expired.
    session = open_session(gateway, memory_mode="persistent", user_id=unique("user"))
    called = gateway.post(f"{API}/tools", json=tool_call(), headers=bearer(session))
    assert called.status_code == 200, called.text
    live = redis.Redis.from_url(redis_url)
    pattern = redis_key("call", session["session_id"]) + ":*"
    assert list(live.scan_iter(match=pattern))
    erased = gateway.post(
        f"{API}/memory/erase", json={"confirm": "erase everything"}, headers=bearer(session)
    )
    assert erased.status_code == 200, erased.text
    assert list(live.scan_iter(match=pattern)) == []


# -- limits -------------------------------------------------------------------------------------


def test_an_oversized_body_is_refused_before_it_is_read(gateway: TestClient) -> None:
    session = open_session(gateway)
    big = json.dumps(turn(user_text="x" * 300_000))
    declared = gateway.post(
        f"{API}/turn", content=big, headers={**bearer(session), "Content-Type": "application/json"}
    )
    assert declared.status_code == 413
    assert error_code(declared) == "payload_too_large"

    def chunks() -> Any:
        for start in range(0, len(big), 16384):
            yield big[start : start + 16384].encode()

    streamed = gateway.post(
        f"{API}/turn",
        content=chunks(),
        headers={**bearer(session), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413


def test_session_starts_are_rate_limited_with_retry_after(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(rate_limit_session_per_thread="2/minute")
    first = open_session(gateway)
    thread, secret = first["thread_id"], first["thread_secret"]
    open_session(gateway, thread_id=thread, thread_secret=secret)
    limited = gateway.post(f"{API}/session", json={"thread_id": thread, "thread_secret": secret})
    assert limited.status_code == 429
    assert error_code(limited) == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1


def test_strangers_cannot_spend_a_threads_session_budget(make_gateway: GatewayFactory) -> None:
    """The thread's limit counts only callers its owner admits: refused requests of someone
    who learned the thread id used to spend it and lock the owner out (429)."""
    gateway = make_gateway(rate_limit_session_per_thread="2/minute")
    owner = open_session(gateway)
    thread, secret = owner["thread_id"], owner["thread_secret"]
    for _ in range(3):
        reply = gateway.post(f"{API}/session", json={"thread_id": thread})
        assert (reply.status_code, error_code(reply)) == (403, "thread_forbidden")
    open_session(gateway, thread_id=thread, thread_secret=secret)
    limited = gateway.post(f"{API}/session", json={"thread_id": thread, "thread_secret": secret})
    assert (limited.status_code, error_code(limited)) == (429, "rate_limited")


def test_session_starts_are_rate_limited_per_client_address_and_per_user(
    make_gateway: GatewayFactory,
) -> None:
    key = "host-app-shared-key-" + "k" * 24
    per_ip = make_gateway(
        rate_limit_session_per_ip="2/minute",
        trust_forwarded_for=True,
        identity_mode="jwt",
        identity_jwt_key=key,
        identity_issuer="host-app",
    )

    def start(address: str, spoofed: str = "10.0.0.1", **body: Any) -> Any:
        return per_ip.post(
            f"{API}/session",
            json={"thread_id": unique("thread"), **body},
            headers={"X-Forwarded-For": f"{spoofed}, {address}"},
        )

    # Redis outlives a test run: each case comes from an address of its own.
    address = unique("client")
    assert [start(address).status_code for _ in range(2)] == [200, 200]
    limited = start(address)
    assert (limited.status_code, error_code(limited)) == (429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert start(unique("client")).status_code == 200  # another address is not limited
    # What the client wrote before the proxy's entry is not its address: naming a new one on
    # every request does not escape the limit.
    rotating = unique("client")
    assert [start(rotating, spoofed=unique("forged")).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    # A proxy may append a header line of its own rather than an entry: the client's forged
    # line comes first, and the last entry of the last line is the address.
    behind = unique("client")
    statuses = [
        per_ip.post(
            f"{API}/session",
            json={"thread_id": unique("thread")},
            headers=[
                ("X-Forwarded-For", f"{unique('forged')}, {unique('forged')}"),
                ("X-Forwarded-For", behind),
            ],
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    # Refusals count too: a flood of forged identity tokens is limited like any other.
    forger = unique("client")
    forged = "forged." + "f" * 40 + ".x"
    assert [start(forger, identity_token=forged).status_code for _ in range(3)] == [401, 401, 429]

    per_user = make_gateway(rate_limit_session_per_user="2/minute")
    user = unique("user")
    for _ in range(2):
        ended = open_session(per_user, user_id=user)
        per_user.post(f"{API}/end", json={}, headers=bearer(ended))
    limited = per_user.post(f"{API}/session", json={"thread_id": unique("thread"), "user_id": user})
    assert (limited.status_code, error_code(limited)) == (429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    open_session(per_user, user_id=unique("someone-else"))  # another user is not limited


def test_calls_from_one_client_address_are_rate_limited_across_gateways(
    make_gateway: GatewayFactory,
) -> None:
    # Two replicas behind one proxy: the counter is in Redis, so they count together.
    replicas = [
        make_gateway(rate_limit_calls_per_ip="3/hour", trust_forwarded_for=True) for _ in range(2)
    ]
    address = {"X-Forwarded-For": f"10.0.0.1, 198.51.100.{uuid.uuid4().int % 250 + 1}"}
    sessions = [open_session(replicas[0]) for _ in range(2)]
    codes = [
        replica.post(f"{API}/turn", json=turn(), headers={**bearer(session), **address}).status_code
        for replica, session in zip(replicas * 2, sessions * 2, strict=True)
    ]
    assert codes == [200, 200, 200, 429]
    limited = replicas[1].post(
        f"{API}/tools", json=tool_call(), headers={**bearer(sessions[1]), **address}
    )
    assert (limited.status_code, error_code(limited)) == (429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    # Another address is not held back by this one.
    other = {"X-Forwarded-For": "203.0.113.7"}
    fresh = open_session(replicas[1])
    ok = replicas[1].post(f"{API}/turn", json=turn(), headers={**bearer(fresh), **other})
    assert ok.status_code == 200, ok.text


def test_calls_of_one_user_are_rate_limited_across_their_sessions(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(rate_limit_calls_per_user="3/hour")
    user = unique("user")
    sessions = [open_session(gateway, user_id=user) for _ in range(2)]
    codes = [
        gateway.post(f"{API}/turn", json=turn(), headers=bearer(session)).status_code
        for session in sessions * 2
    ]
    assert codes == [200, 200, 200, 429]
    # Someone else's session is not held back by this user's calls.
    other = open_session(gateway, user_id=unique("user"))
    assert gateway.post(f"{API}/turn", json=turn(), headers=bearer(other)).status_code == 200


def test_calls_of_one_thread_are_rate_limited_across_its_sessions(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(rate_limit_calls_per_thread="3/hour")
    first = open_session(gateway)
    codes = [
        gateway.post(f"{API}/turn", json=turn(), headers=bearer(first)).status_code
        for _ in range(2)
    ]
    # A second session of the same thread (its secret proves the browser) shares the count.
    second = open_session(
        gateway, thread_id=first["thread_id"], thread_secret=first["thread_secret"]
    )
    codes += [
        gateway.post(f"{API}/turn", json=turn(), headers=bearer(second)).status_code
        for _ in range(2)
    ]
    assert codes == [200, 200, 200, 429]
    refused = gateway.post(f"{API}/end", json={}, headers=bearer(second))
    assert (refused.status_code, error_code(refused)) == (429, "rate_limited")


def test_the_client_secret_lives_sixty_seconds_unless_configured(
    make_gateway: GatewayFactory,
) -> None:
    default = open_session(make_gateway())
    assert abs(default["client_secret"]["expires_at"] - (time.time() + 60)) <= 5
    longer = open_session(make_gateway(client_secret_ttl_seconds=300))
    assert abs(longer["client_secret"]["expires_at"] - (time.time() + 300)) <= 5


def test_calls_of_a_session_are_rate_limited(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(rate_limit_calls_per_session="3/hour")
    session = open_session(gateway)
    codes = [
        gateway.post(f"{API}/turn", json=turn(), headers=bearer(session)).status_code
        for _ in range(5)
    ]
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429]


def test_concurrent_sessions_per_user_are_capped_and_ending_frees_a_slot(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(max_sessions_per_user=2)
    user = unique("user")
    sessions = [open_session(gateway, user_id=user) for _ in range(2)]
    capped = gateway.post(f"{API}/session", json={"thread_id": unique("thread"), "user_id": user})
    assert capped.status_code == 429
    assert error_code(capped) == "too_many_sessions"
    assert gateway.post(f"{API}/end", json={}, headers=bearer(sessions[0])).status_code == 200
    open_session(gateway, user_id=user)


# -- bad input and outages: 4xx or 503, never 500, nothing written ------------------------------


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_deeply_nested_json_is_a_422_not_a_500(gateway: TestClient) -> None:
    session = open_session(gateway, memory_mode="persistent")
    call = {"tool_name": "x", "status": "completed", "output": nested(300)}
    reply = gateway.post(f"{API}/turn", json=turn(tool_calls=[call]), headers=bearer(session))
    assert reply.status_code == 422
    raw = gateway.post(
        f"{API}/turn",
        content=b"[" * 100_000 + b"]" * 100_000,
        headers={**bearer(session), "Content-Type": "application/json"},
    )
    assert raw.status_code in (400, 422)
    assert error_code(raw) == "invalid_request"


def test_an_oversized_non_ascii_transcript_is_refused_in_the_contract(gateway: TestClient) -> None:
    session = open_session(gateway)
    lines = [{"role": "user", "text": "\u00e9\u4e2d" * 2000} for _ in range(20)]
    reply = gateway.post(f"{API}/tools", json=tool_call(transcript=lines), headers=bearer(session))
    assert reply.status_code == 422
    assert error_code(reply) == "invalid_request"


def test_text_postgres_cannot_store_is_refused_and_never_claimed(gateway: TestClient) -> None:
    session = open_session(gateway, memory_mode="persistent")
    poisoned = turn(user_text="nul\u0000byte")
    reply = gateway.post(f"{API}/turn", json=poisoned, headers=bearer(session))
    assert reply.status_code == 422
    clean = gateway.post(
        f"{API}/turn", json={**poisoned, "user_text": "clean"}, headers=bearer(session)
    )
    assert clean.status_code == 200  # the refused body claimed nothing under its id


def test_redis_down_is_a_503_with_retry_after_logged_once_not_per_request(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from opencouch.testing.servers import free_port

    gateway = make_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with caplog.at_level(logging.ERROR, "opencouch.voice_gateway.errors"):
        for _ in range(5):
            reply = gateway.post(f"{API}/session", json={"thread_id": unique("thread")})
            assert reply.status_code == 503
            assert error_code(reply) == "service_unavailable"
            assert int(reply.headers["Retry-After"]) >= 1
    # One line for the outage (it was one a request: a log flood under load).
    outage = [r.getMessage() for r in caplog.records if r.name == "opencouch.voice_gateway.errors"]
    assert outage == ["redis unavailable"]


def test_a_realtime_that_never_answers_is_a_503_before_the_page_gives_up_and_holds_no_slot(
    make_gateway: GatewayFactory,
) -> None:
    """The page waits 20 s for /session. A mint that outlived it (the client's retries) left a
    live session no browser held, which counted against the user's concurrent sessions."""
    from opencouch.testing.servers import silent_port

    with silent_port() as port:
        gateway = make_gateway(
            emulator_base_url=f"http://127.0.0.1:{port}/v1",
            realtime_timeout_seconds=1,
            max_sessions_per_user=1,
        )
        user = unique("user")
        for _ in range(2):  # the first attempt's session must not take the only slot
            started = time.monotonic()
            reply = gateway.post(
                f"{API}/session", json={"thread_id": unique("thread"), "user_id": user}
            )
            assert time.monotonic() - started < 10  # a deadline of 1 s, far inside the page's 20
            assert (reply.status_code, error_code(reply)) == (503, "realtime_unavailable")
            assert int(reply.headers["Retry-After"]) >= 1
            assert "not answering" in reply.json()["error"]["message"]


def test_an_unreachable_realtime_is_a_503_a_person_can_read(make_gateway: GatewayFactory) -> None:
    from opencouch.testing.servers import free_port

    gateway = make_gateway(emulator_base_url=f"http://127.0.0.1:{free_port()}/v1")
    reply = gateway.post(f"{API}/session", json={"thread_id": unique("thread")})
    assert (reply.status_code, error_code(reply)) == (503, "realtime_unavailable")
    assert reply.json()["error"]["message"].startswith("The voice service can't be reached")
    assert int(reply.headers["Retry-After"]) >= 1


# -- headers ------------------------------------------------------------------------------------


def test_cors_is_only_for_the_web_origins_and_replies_are_never_cached(gateway: TestClient) -> None:
    allowed = gateway.options(
        f"{API}/turn",
        headers={
            "Origin": "http://localhost:8080",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:8080"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert (allowed.status_code, allowed.text) == (200, "OK")
    foreign = gateway.options(
        f"{API}/turn",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in foreign.headers
    # A refused preflight is a refusal like any other: the house error body, not plain text.
    odd_header = gateway.options(
        f"{API}/turn",
        headers={
            "Origin": "http://localhost:8080",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-not-allowed",
        },
    )
    for refused, what in ((foreign, "origin"), (odd_header, "headers")):
        assert refused.status_code == 400
        assert refused.headers["content-type"] == "application/json"
        assert error_code(refused) == "invalid_request"
        assert what in refused.json()["error"]["message"]
        assert refused.headers["x-content-type-options"] == "nosniff"
    reply = gateway.post(f"{API}/session", json={"thread_id": unique("thread")})
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["x-content-type-options"] == "nosniff"
    # Every other response too: refusals, errors, health and the schema.
    for other in (
        gateway.post(f"{API}/turn", json=turn()),
        gateway.post(
            f"{API}/turn",
            content=b"x" * 300_000,
            headers={"Authorization": f"Bearer {reply.json()['token']}"},
        ),
        gateway.get(f"{API}/no-such-route"),
        gateway.get("/healthz"),
        gateway.get("/api/voice/openapi.json"),
    ):
        assert other.headers["x-content-type-options"] == "nosniff", other.status_code


def test_an_unexpected_failure_is_a_500_the_page_can_read_with_every_header(
    gateway: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 500 of a bug used to leave from FastAPI's outermost layer, past the headers: no
    ``nosniff``, no ``no-store`` and no CORS, so the page could not even read its code."""

    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("opencouch.voice_gateway.routes.start_session", broken)
    reply = gateway.post(
        f"{API}/session",
        json={"thread_id": unique("thread")},
        headers={"Origin": "http://localhost:8080"},
    )
    assert reply.status_code == 500
    assert error_code(reply) == "internal_error"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["access-control-allow-origin"] == "http://localhost:8080"


def test_nats_down_is_a_503_for_turns_and_a_tool_output_for_tools(
    make_gateway: GatewayFactory, redis_url: str
) -> None:
    from opencouch.testing.servers import nats_server

    with nats_server(private=True) as url, FakeOwners(url):
        gateway = make_gateway(nats_url=url)
        session = open_session(gateway, memory_mode="persistent", user_id=unique("user"))
        assert gateway.post(f"{API}/turn", json=turn(), headers=bearer(session)).status_code == 200
    # NATS is gone now; the gateway keeps trying to reconnect.
    down = gateway.post(f"{API}/turn", json=turn(), headers=bearer(session))
    assert down.status_code == 503, down.text
    assert error_code(down) == "service_unavailable"
    assert int(down.headers["Retry-After"]) >= 1
    tool = gateway.post(f"{API}/tools", json=tool_call(), headers=bearer(session))
    assert tool.status_code == 200
    assert tool.json()["output"]["error"]["code"] in ("tool_unavailable", "tool_timeout")
    started = gateway.post(
        f"{API}/session", json={"thread_id": unique("thread"), "memory_mode": "persistent"}
    )
    assert started.status_code == 503


def test_a_turn_too_large_for_the_message_bus_is_a_413_not_a_503(
    make_gateway: GatewayFactory, tmp_path: Any
) -> None:
    """A NATS whose payload limit is below what the contracts allow: the turn cannot be stored
    by retrying it, so it is refused (413), never answered "retry it" (503) forever."""
    import shutil
    import subprocess

    from opencouch.testing.servers import free_port, wait_reachable

    binary = shutil.which("nats-server")
    if binary is None:
        pytest.skip("needs a nats-server binary")
    port = free_port()
    config = tmp_path / "nats.conf"
    config.write_text(
        f'listen: "127.0.0.1:{port}"\nmax_payload: 65536\n'
        f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
    )
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"nats://127.0.0.1:{port}"
        wait_reachable(url)
        with FakeOwners(url):
            gateway = make_gateway(nats_url=url)
            session = open_session(gateway, memory_mode="persistent")
            output = {"q": "x" * 12_000}
            big = turn(tool_calls=[{"tool_name": "x", "status": "completed", "output": output}] * 8)
            reply = gateway.post(f"{API}/turn", json=big, headers=bearer(session))
            assert (reply.status_code, error_code(reply)) == (413, "payload_too_large")
            assert "Retry-After" not in reply.headers
            # Its claim was dropped: the same id with a body that fits is recorded.
            small = gateway.post(
                f"{API}/turn", json={**big, "tool_calls": []}, headers=bearer(session)
            )
            assert small.status_code == 200, small.text
    finally:
        process.terminate()
        process.wait(10)


async def test_a_refused_turn_writes_nothing(
    gateway: TestClient, gateway_nats_url: str, redis_url: str
) -> None:
    import nats
    from redis.asyncio import Redis

    from opencouch.contracts import subjects

    session = open_session(gateway, memory_mode="persistent")
    nc = await nats.connect(gateway_nats_url)
    js = nc.jetstream()

    async def stored_turns() -> int:
        info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subjects.TURN_RECORDED)
        return sum((info.state.subjects or {}).values())

    before = await stored_turns()
    refused = [
        (turn(user_text="nul\u0000"), bearer(session)),
        (
            turn(tool_calls=[{"tool_name": "x", "status": "completed", "output": nested(50)}]),
            bearer(session),
        ),
        (turn(thread_id=unique("other")), bearer(session)),
        (turn(), {}),
        (turn(user_text="x" * 9000), bearer(session)),
    ]
    for body, headers in refused:
        assert 400 <= gateway.post(f"{API}/turn", json=body, headers=headers).status_code < 500
    redis = Redis.from_url(redis_url)
    try:
        claims = [key async for key in redis.scan_iter(f"ocv:turn:{session['session_id']}:*")]
    finally:
        await redis.aclose()
    assert claims == []
    assert await stored_turns() == before
    await nc.close()
