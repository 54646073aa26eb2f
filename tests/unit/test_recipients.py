"""Recipients are compared in E.164 form, and a lookup's paging token works only for the lookup that made it."""

from __future__ import annotations

import base64
import json

import pytest

from dlrwatch.errors import BadInput
from dlrwatch.messages import query_parameters
from dlrwatch.recipients import FOREIGN_NEXT, NOT_A_NUMBER, decode_token, encode_token, normalize, recipient_key

NUMBER = "+491701234567"


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("+491701234567", NUMBER),
        ("+49 170 1234567", NUMBER),
        ("+49-170-123-45-67", NUMBER),
        ("+49 (170) 123.45.67", NUMBER),
        ("0049 170 1234567", NUMBER),
        ("00491701234567", NUMBER),
        ("491701234567", NUMBER),  # bare digits
        (" 491701234567", NUMBER),  # a raw "+" in a query string, decoded to a space
        (" 49 170 1234567", NUMBER),
        ("+1", "+1"),  # the shortest
        ("+123456789012345", "+123456789012345"),  # 15 digits, the longest E.164 allows
    ],
)
def test_every_written_form_of_a_number_becomes_its_e164_form(written: str, e164: str) -> None:
    assert normalize(written) == e164


@pytest.mark.parametrize(
    "written",
    [
        "",
        "+",
        "+0491701234567",  # a leading 0 after +
        "0",
        "0170 1234567",  # a national number: no country code
        "+1234567890123456",  # 16 digits
        "1234567890123456",
        "+49170123456a",
        "+49 170 ABCDEFG",
        "four nine one seven",
        "+49\u0663701234567",  # an Arabic-Indic digit
        "\u0664\u0669\u0661\u0667\u0660",  # Arabic-Indic digits only
        "+\uff14\uff19\uff11\uff17\uff10",  # fullwidth digits
        "+49/170/1234567",  # not a separator
        "+49\t1701234567",  # nor is a tab
        "++491701234567",
        "+49+1701234567",
        "000491701234567",  # "00" then a 0
        "+49 170 1234567" + " " * 60,  # longer than any number with separators
    ],
)
def test_anything_but_a_phone_number_is_refused_without_repeating_it(written: str) -> None:
    with pytest.raises(BadInput) as refused:
        normalize(written)
    assert str(refused.value) == NOT_A_NUMBER


@pytest.mark.parametrize(
    ("provider", "message_id", "recipient", "key"),
    [
        ("sevenio", "77149843739", "+49 170 1234567", NUMBER),
        ("bulksms", "1380000001", "0049 170 1234567", NUMBER),
        ("sevenio", "77149843739", "Max Mustermann", None),  # registered as given, not in the index
        ("sevenio", "77149843739", None, None),
        ("bulksms-eapi", "123456789:447700900123", None, "+447700900123"),  # the msisdn of the id
        ("bulksms-eapi", "123456789:447700900123", "+44 7700 900124", "+447700900124"),  # the recipient given
        ("bulksms-eapi", "123456789:07700900123", None, None),  # a national msisdn: not E.164
    ],
)
def test_a_message_is_in_the_recipient_index_under_its_e164_recipient(
    provider: str, message_id: str, recipient: str | None, key: str | None
) -> None:
    assert recipient_key(provider, message_id, recipient) == key


# -- the query string -----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["recipient=%2B491701234567", "recipient=+491701234567", "recipient=0049+170+1234567"])
def test_a_recipient_reads_the_same_with_its_plus_encoded_or_raw(raw: str) -> None:
    assert normalize(query_parameters(raw)["recipient"]) == NUMBER


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(BadInput, match="more than once"):
        query_parameters("recipient=%2B491701234567&recipient=%2B491701234568")


# -- the paging token -----------------------------------------------------------------------------------

END = {"pk": "bulksms-eapi#123456789:491701234567", "recipient_key": NUMBER, "sent_at": "2026-11-22T10:00:00.000Z"}


def test_a_token_brings_the_lookup_back_to_where_its_page_ended() -> None:
    assert decode_token(NUMBER, encode_token(NUMBER, END)) == END


def test_a_token_shows_no_number_in_clear() -> None:
    token = encode_token(NUMBER, END)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for shown in (token.encode(), raw):
        assert b"491701234567" not in shown
        assert b"123456789" not in shown
    assert token.replace("-", "").replace("_", "").isalnum()  # safe in a query string as it is


def test_another_recipients_token_is_refused() -> None:
    token = encode_token("+491701234568", END | {"recipient_key": "+491701234568"})
    with pytest.raises(BadInput) as refused:
        decode_token(NUMBER, token)
    assert str(refused.value) == FOREIGN_NEXT


def _flipped(token: str, at: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[at] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_a_token_altered_anywhere_is_refused() -> None:
    token = encode_token(NUMBER, END)
    size = len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for at in range(size):
        with pytest.raises(BadInput, match=FOREIGN_NEXT):
            decode_token(NUMBER, _flipped(token, at))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "x",
        "not a token",
        "====",
        "%%%%",
        "\u0663\u0663\u0663\u0663",
        "A" * 10_000,
        base64.urlsafe_b64encode(b"\0" * 16).decode(),  # a check value and nothing after it
        base64.urlsafe_b64encode(json.dumps(["sevenio#1", "2026"]).encode()).decode(),  # no check value
    ],
)
def test_anything_else_given_as_next_is_refused(token: str) -> None:
    with pytest.raises(BadInput, match=FOREIGN_NEXT):
        decode_token(NUMBER, token)


@pytest.mark.parametrize(
    "payload",
    [
        b"[1, 2]",
        b'{"pk": "sevenio#1"}',
        b'["", "2026"]',
        b'["sevenio#1"]',
        json.dumps(["s" * 300, "x"]).encode(),
        b"[[",
    ],
)
def test_a_token_of_this_recipient_with_the_wrong_content_is_refused(payload: bytes) -> None:
    """A token made by the rules with content no lookup writes (the check value is no secret) is a 400 too."""
    from dlrwatch.recipients import _check, _mask

    masked = bytes(a ^ b for a, b in zip(payload, _mask(NUMBER, len(payload)), strict=True))
    token = base64.urlsafe_b64encode(_check(NUMBER, payload) + masked).decode()
    with pytest.raises(BadInput, match=FOREIGN_NEXT):
        decode_token(NUMBER, token)


@pytest.mark.parametrize(
    ("pk", "sent_at"),
    [
        ("sevenio#1", "yesterday"),
        ("sevenio#1", "2026-11-22T10:00:00Z"),  # not as the store writes it: no milliseconds
        ("sevenio#\ud800", "2026-11-22T10:00:00.000Z"),  # a lone surrogate: not even encodable for DynamoDB
        ("nonce-without-hash", "2026-11-22T10:00:00.000Z"),
        ("sevenio# spaced", "2026-11-22T10:00:00.000Z"),
    ],
)
def test_a_forged_token_that_passes_the_check_never_reaches_dynamodb(pk: str, sent_at: str) -> None:
    """The check value has no secret: whoever knows the recipient can make one. What it holds must still be a
    page's end the store could have written, or DynamoDB would refuse the start key (a 5xx for bad input)."""
    key = "+491701234567"
    forged = encode_token(key, {"pk": pk, "recipient_key": key, "sent_at": sent_at})
    with pytest.raises(BadInput, match=FOREIGN_NEXT):
        decode_token(key, forged)
