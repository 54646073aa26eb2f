"""seven.io webhook signatures: what seven.io signs passes, anything altered, stale or malformed is refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from dlrwatch.errors import Unauthorized
from dlrwatch.providers import sevenio
from dlrwatch.providers.base import PushRequest

KEY = "account-signing-key"
NOW = 1_795_000_000
NONCE = "Zq3LmN8pR2tV6xY0aB4cD7eF9gH1jK5s"  # 32 alphanumerics, as seven.io sends
PATH_AND_QUERY = "/callbacks/sevenio?token=s3cret"
URL = "https://dlr.example.com" + PATH_AND_QUERY
BODY = b'{"webhook_event":"dlr","data":{"msg_id":"77149843739","status":"DELIVERED"}}'


def documented_signature(key: str, timestamp: str, nonce: str, method: str, url: str, body: bytes) -> str:
    """The formula of seven.io's docs, written out independently of the code under test."""
    body_md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    message = f"{timestamp}\n{nonce}\n{method}\n{url}\n{body_md5}"
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def request(
    signature: str | None,
    timestamp: str | None = str(NOW),
    nonce: str | None = NONCE,
    *,
    method: str = "POST",
    body: bytes = BODY,
    url: str = URL,
) -> PushRequest:
    headers = {"content-type": "application/json"}
    for name, value in (("x-signature", signature), ("x-timestamp", timestamp), ("x-nonce", nonce)):
        if value is not None:
            headers[name] = value
    return PushRequest(method, "/callbacks/sevenio", (("token", "s3cret"),), headers, body, url)


def signed(url: str = URL, timestamp: str = str(NOW), key: str = KEY, body: bytes = BODY, method: str = "POST") -> str:
    return documented_signature(key, timestamp, NONCE, method, url, body)


def refused(req: PushRequest, now: float = NOW) -> int:
    with pytest.raises(Unauthorized) as caught:
        sevenio.verify_signature(req, KEY, now)
    return caught.value.status_code


def test_signature_over_the_full_url_passes_and_answers_the_nonce() -> None:
    assert sevenio.verify_signature(request(signed(URL)), KEY, NOW) == NONCE


def test_signature_over_path_and_query_only_passes() -> None:
    assert sevenio.verify_signature(request(signed(PATH_AND_QUERY)), KEY, NOW) == NONCE


def test_uppercase_hex_signature_passes() -> None:
    assert sevenio.verify_signature(request(signed().upper()), KEY, NOW) == NONCE


def test_signed_get_with_empty_body_passes() -> None:
    signature = signed(method="GET", body=b"")
    assert sevenio.verify_signature(request(signature, method="GET", body=b""), KEY, NOW) == NONCE


def test_sign_follows_the_documented_formula() -> None:
    body_md5 = hashlib.md5(BODY, usedforsecurity=False).hexdigest()
    assert sevenio.sign(KEY, str(NOW), NONCE, "post", URL, body_md5) == signed()


def test_signature_made_with_another_key_is_refused() -> None:
    assert refused(request(signed(key="someone-elses-key"))) == 403


def test_changed_body_is_refused() -> None:
    assert refused(request(signed(), body=BODY.replace(b"DELIVERED", b"REJECTED"))) == 403


def test_signature_for_another_method_is_refused() -> None:
    assert refused(request(signed(method="GET"))) == 403


def test_signature_for_another_url_is_refused() -> None:
    assert refused(request(signed("https://dlr.example.com/callbacks/sevenio?token=other"))) == 403


def test_signature_from_another_request_time_is_refused() -> None:
    assert refused(request(signed(timestamp=str(NOW - 1)))) == 403


@pytest.mark.parametrize(
    ("signature", "timestamp", "nonce"),
    [
        (None, str(NOW), NONCE),
        ("placeholder", None, NONCE),
        ("placeholder", str(NOW), None),
        ("", str(NOW), NONCE),
        (None, None, None),
    ],
    ids=["no-signature", "no-timestamp", "no-nonce", "empty-signature", "none"],
)
def test_missing_signature_headers_are_401(signature: str | None, timestamp: str | None, nonce: str | None) -> None:
    if signature == "placeholder":
        signature = signed()
    assert refused(request(signature, timestamp, nonce)) == 401


@pytest.mark.parametrize("age", [301, 3600, -301, -86400], ids=["301s-old", "1h-old", "301s-ahead", "1d-ahead"])
def test_timestamp_more_than_300_seconds_away_is_refused(age: int) -> None:
    timestamp = str(NOW - age)
    assert refused(request(signed(timestamp=timestamp), timestamp)) == 403


@pytest.mark.parametrize("age", [300, -300, 0])
def test_timestamp_within_300_seconds_passes(age: int) -> None:
    timestamp = str(NOW - age)
    assert sevenio.verify_signature(request(signed(timestamp=timestamp), timestamp), KEY, NOW) == NONCE


@pytest.mark.parametrize(
    "timestamp",
    [
        "abc",
        "1795000000.0",
        "-1795000000",
        "+1795000000",
        " 1795000000",
        "2026-11-22T10:00:00Z",
        "\u00b9\u00b2\u00b3",  # superscript digits: str.isdigit() says yes, int() says no
    ],
)
def test_non_digit_timestamp_is_refused(timestamp: str) -> None:
    assert refused(request(signed(timestamp=timestamp), timestamp)) == 403


@pytest.mark.parametrize("nonce", ["abc-def-ghi-jkl", "abc/def+ghi=jkl", "abcdefgh ijklmnop", "abcdefgh\nX-Evil: 1"])
def test_nonce_with_symbols_is_refused(nonce: str) -> None:
    signature = documented_signature(KEY, str(NOW), nonce, "POST", URL, BODY)
    assert refused(request(signature, nonce=nonce)) == 403


def test_refusal_never_repeats_the_key() -> None:
    with pytest.raises(Unauthorized) as caught:
        sevenio.verify_signature(request(signed(key="wrong")), KEY, NOW)
    assert KEY not in str(caught.value)
