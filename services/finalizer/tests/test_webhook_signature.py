"""The report signature a receiver checks: HMAC-SHA256 over the timestamp and the body."""

from __future__ import annotations

import hashlib
import hmac

from opencouch.finalizer.webhooks import sign, verify_signature

SECRET = "whsec-test-0123456789abcdef"
BODY = b'{"type":"session.finalized","id":"fin_x"}'


def test_a_signature_is_hmac_sha256_of_the_stamp_and_the_body() -> None:
    header = sign(SECRET, BODY, 1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify_signature(SECRET, header, BODY, now=1_700_000_100)


def test_a_changed_body_another_secret_or_a_stale_stamp_is_refused() -> None:
    header = sign(SECRET, BODY, 1_700_000_000)
    assert not verify_signature(SECRET, header, BODY + b" ", now=1_700_000_000)
    assert not verify_signature("another-secret-0123456789", header, BODY, now=1_700_000_000)
    assert not verify_signature(SECRET, header, BODY, now=1_700_000_000 + 301)
    assert not verify_signature(SECRET, "v1=" + header.split("v1=")[1], BODY)
    assert not verify_signature(SECRET, "t=1700000000", BODY, now=1_700_000_000)


def test_while_a_secret_is_replaced_either_signature_is_accepted() -> None:
    old = sign("old-secret-0123456789abc", BODY, 1_700_000_000)
    new = sign(SECRET, BODY, 1_700_000_000)
    both = f"{new},v1={old.split('v1=')[1]}"
    assert verify_signature("old-secret-0123456789abc", both, BODY, now=1_700_000_000)
    assert verify_signature(SECRET, both, BODY, now=1_700_000_000)
