"""Recipients as the support desk's lookup compares them (E.164), and the lookup's paging token.

A recipient is registered as the sender wrote it and kept so (the stream's contract); its E.164 form, when it has
one, is the key of the recipient index. A phone number is personal data: no error here ever repeats one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any

from dlrwatch.domain.times import InvalidTime, from_iso, iso
from dlrwatch.errors import BadInput
from dlrwatch.providers import PROVIDERS, bulksms_eapi
from dlrwatch.providers.base import MESSAGE_ID

NOT_A_NUMBER = "recipient is not a phone number in E.164 form (+ and up to 15 digits)"
FOREIGN_NEXT = "next is not a token of this lookup"

# Longer than any number written with separators; a longer text is refused before it is looked at.
TEXT_MAX = 64
# "+", then 1-15 ASCII digits, the first not 0 (``[0-9]``, not ``\d``: ``\d`` takes Arabic-Indic digits).
_E164 = re.compile(r"\+[1-9][0-9]{0,14}")
_SEPARATORS = str.maketrans("", "", " -.()")

# The token: a check value, then the page's end masked under the recipient. An index key is a message's ``pk``
# (at most a provider name, "#" and a 100-character id) and a ``sent_at``: a token is far shorter than this.
TOKEN_MAX = 512
CHECK_BYTES = 16


def normalize(text: str) -> str:
    """``text`` in E.164 form: separators (space, ``-``, ``.``, parentheses) stripped, a leading space read as
    ``+`` (a raw ``+`` in a query string decodes to a space), a leading ``00`` read as ``+``, bare digits given a
    ``+``. Anything else is a ``BadInput`` that does not repeat the text."""
    if not isinstance(text, str) or len(text) > TEXT_MAX:
        raise BadInput(NOT_A_NUMBER)
    if text.startswith(" "):
        text = "+" + text[1:]
    number = text.translate(_SEPARATORS)
    if number.startswith("00"):
        number = "+" + number[2:]
    elif number.isascii() and number.isdigit():
        number = "+" + number
    if not _E164.fullmatch(number):
        raise BadInput(NOT_A_NUMBER)
    return number


def recipient_key(provider: str, message_id: str, recipient: str | None) -> str | None:
    """The key a message is found by in the recipient index, None when it has none.

    A registration keeps accepting any printable recipient: one that is not a phone number is stored as given and
    the message is simply not in the index. A BulkSMS EAPI message registered without a recipient is found by the
    msisdn of its id (``{batch_id}:{msisdn}``).
    """
    if recipient is None and provider == bulksms_eapi.NAME:
        _, sep, msisdn = message_id.partition(":")
        recipient = "+" + msisdn if sep and msisdn.isascii() and msisdn.isdigit() else None
    if recipient is None:
        return None
    try:
        return normalize(recipient)
    except BadInput:
        return None


# -- the paging token -------------------------------------------------------------------------------------


def encode_token(key: str, end: dict[str, str]) -> str:
    """The opaque ``next`` of a lookup of ``key`` whose page ended at ``end`` (the recipient index's key: ``pk``,
    ``recipient_key``, ``sent_at``).

    The recipient is left out (the lookup that reads the token brings it) and the rest is masked under it, so the
    token shows no number in clear, not even a BulkSMS EAPI id's msisdn. The mask hides nothing from someone who
    guesses the number: it is not encryption, and needs none, since that caller may look the recipient up anyway.
    The check value binds the token to the recipient and to its content.
    """
    payload = json.dumps([end["pk"], end["sent_at"]], separators=(",", ":")).encode()
    masked = bytes(a ^ b for a, b in zip(payload, _mask(key, len(payload)), strict=True))
    return base64.urlsafe_b64encode(_check(key, payload) + masked).rstrip(b"=").decode("ascii")


def decode_token(key: str, token: str) -> dict[str, str]:
    """The index key a lookup of ``key`` resumes after; ``BadInput`` for a token that was not made by a lookup of
    ``key`` (another recipient's, altered, cut, or not a token at all)."""
    if not isinstance(token, str) or not 0 < len(token) <= TOKEN_MAX or not token.isascii():
        raise BadInput(FOREIGN_NEXT)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise BadInput(FOREIGN_NEXT) from None
    check, masked = raw[:CHECK_BYTES], raw[CHECK_BYTES:]
    payload = bytes(a ^ b for a, b in zip(masked, _mask(key, len(masked)), strict=True))
    if len(check) != CHECK_BYTES or not hmac.compare_digest(check, _check(key, payload)):
        raise BadInput(FOREIGN_NEXT)
    try:
        end: Any = json.loads(payload)
    except ValueError:
        raise BadInput(FOREIGN_NEXT) from None
    if not (isinstance(end, list) and len(end) == 2 and all(isinstance(part, str) for part in end)):
        raise BadInput(FOREIGN_NEXT)
    pk, sent_at = end
    if not _page_end(pk, sent_at):
        raise BadInput(FOREIGN_NEXT)
    return {"pk": pk, "recipient_key": key, "sent_at": sent_at}


def _page_end(pk: str, sent_at: str) -> bool:
    """Whether a page could have ended here: an item key the store writes (``{provider}#{message id}``) and a
    ``sent_at`` as it writes it. The check value has no secret, so a token that passes it may still be forged;
    what it holds must never reach DynamoDB as a start key it would refuse."""
    provider, _, message_id = pk.partition("#")
    if provider not in PROVIDERS or not MESSAGE_ID.fullmatch(message_id):
        return False
    try:
        return iso(from_iso(sent_at)) == sent_at
    except InvalidTime:
        return False


def _check(key: str, payload: bytes) -> bytes:
    return hashlib.sha256(b"dlrwatch lookup check\0" + key.encode() + b"\0" + payload).digest()[:CHECK_BYTES]


def _mask(key: str, size: int) -> bytes:
    return hashlib.shake_256(b"dlrwatch lookup mask\0" + key.encode()).digest(size)
