"""Hypothesis strategies for requests nobody here wrote: near-valid requests to every route, with hostile values
mixed in where valid ones go (wrong JSON types, deep nesting, huge numbers, odd Unicode digits, control
characters, overlong fields, odd form keys, too many reports, callback URLs of every kind, query strings encoded
every way a client or an attacker might, paging tokens garbled, forged or huge).

Each route's body builder makes the shape the route expects (so parsing goes deep), then fills it from pools
of valid values and of hostile ones. ``request_for(operation)`` answers a strategy of ``FuzzRequest`` for an
operation of docs/openapi.json; an operation without a builder here is an error, so a new route cannot go
unfuzzed.
"""

from __future__ import annotations

import base64
import json
import re
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

from dlrwatch.recipients import encode_token
from support.api_events import TOKEN

ARABIC_INDIC = "".join(chr(0x0660 + n) for n in range(10))
NASTY = [
    "",
    " ",
    "\n",
    "nl123\n",
    "123\n",
    "\u00b2",
    ARABIC_INDIC[3] * 3,
    "\U0001d7d8",
    "\x00",
    "\x7f",
    "\u202e",
    "\ufeff",
    "%00",
    "data[0]",
    "[",
    "]",
    "NaN",
    "1e999",
    "-1",
    "0",
    "null",
    "DELIVERED\n",
    "9" * 40,
    "9" * 5_000,
    "x" * 300,
    "\u00e9" * 70,
]
SEVENIO_STATUSES = [
    "DELIVERED",
    "NOTDELIVERED",
    "BUFFERED",
    "TRANSMITTED",
    "ACCEPTED",
    "EXPIRED",
    "REJECTED",
    "FAILED",
    "UNKNOWN",
    "delivered",
    "WHATEVER",
]
TIMES = [
    "2026-11-22 10:05:00.000",
    "2026-11-22 10:05:00",
    "1795341960",
    "2026-11-22T10:05:00Z",
    "26-11-22 12:05:00",
    "0001-01-01 00:00:00",
    "2026-02-30 10:00:00",
    "9999999999999",
]
IDS = ["77149843739", "1", "abc.DEF_1@x:+-", "1380000001", "x" * 128, "x" * 129]


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


# -- values --------------------------------------------------------------------------------------------------

# Characters worth trying, drawn from a fixed alphabet (far cheaper than all of Unicode): ASCII, controls,
# other scripts' digits, combining, bidi and zero-width marks, the BOM, a replacement character, an emoji.
ALPHABET = (
    string.printable
    + "\x00\x01\x1b\x7f\x85\xa0\u00b2\u00b9\u00e9\u0301\u200b\u200e\u202e\u2028\ufeff\ufffd"
    + ARABIC_INDIC
    + "\u0966\u09e6\uff10\uff11\U0001d7d8\U0001f4f1"
)
hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(alphabet=ALPHABET, max_size=24),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
)


def _json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False, allow_infinity=False),
        hostile_text,
    )


any_json = st.recursive(
    _json_scalars(),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(hostile_text, children, max_size=4)),
    max_leaves=12,
)


@st.composite
def mostly(draw: st.DrawFn, common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], percent: int = 80) -> Any:
    """``common`` about ``percent`` % of the time (``one_of`` would not weigh a strategy given twice)."""
    return draw(common if draw(st.integers(0, 99)) < percent else rare)


def value(*valid: Any, odd: tuple[Any, ...] = ()) -> st.SearchStrategy[Any]:
    """Mostly a valid value; sometimes an ``odd`` one the route must refuse, any JSON at all, or a hostile text."""
    rare = st.one_of(st.sampled_from(odd), any_json, hostile_text) if odd else st.one_of(any_json, hostile_text)
    return mostly(st.sampled_from(valid), rare)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The value, or (one time in ten) no value at all."""
    return mostly(strategy, st.just(_ABSENT), 90)


_ABSENT = object()


@st.composite
def obj(draw: st.DrawFn, **fields: st.SearchStrategy[Any]) -> dict[str, Any]:
    """An object of the given fields (each possibly absent), sometimes with a hostile extra field."""
    made = {name: v for name, strategy in fields.items() if (v := draw(maybe(strategy))) is not _ABSENT}
    if draw(st.integers(0, 4)) == 0:
        made[draw(hostile_text)] = draw(any_json)
    return made


# -- bodies that poison a valid-looking JSON text ----------------------------------------------------------

POISON = [
    "[" * 20_000 + "]" * 20_000,
    "[" * 40 + "]" * 40,
    "1" * 5_000,
    "-" + "9" * 40,
    "NaN",
    "Infinity",
    "1e999",
    '"\\ud800"',
    '"\\u0000"',
    "{",
    '"' + "x" * 70_000 + '"',
]


@st.composite
def json_body(draw: st.DrawFn, structure: st.SearchStrategy[Any]) -> bytes:
    """The structure as JSON; sometimes one value replaced by a poison token, or the text cut short."""
    text = json.dumps(draw(structure))
    how = draw(st.integers(0, 9))
    if how == 0:
        marker = draw(st.sampled_from(["null", "true", "false", '"']))
        at = text.find(marker)
        if at >= 0:
            text = text[:at] + draw(st.sampled_from(POISON)) + text[at + len(marker) :]
    elif how == 1:
        text = text[: draw(st.integers(0, len(text)))]
    elif how == 2:
        text = draw(st.sampled_from(POISON))
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 19)) == 0:
        raw += b"\xff\xfe"  # not UTF-8
    return raw


# -- per-route structures --------------------------------------------------------------------------------

ODD_TIMES = ("0001-01-01 00:00:00", "2026-02-30 10:00:00", "9999999999999", "soon", "2026-11-22 10:00")
sevenio_report = obj(
    msg_id=value("77149843739", "1", "abc.DEF_1@x:+-", 77149843739, odd=("x" * 129, "1#2", "", True)),
    status=value(*SEVENIO_STATUSES, odd=("D" * 65, "", "A\x00")),
    timestamp=value("2026-11-22 10:05:00.000", "1795341960", "2026-11-22T10:05:00Z", odd=ODD_TIMES),
    foreign_id=value("ref-1", "x" * 64, odd=("x" * 65, "a\x00b")),
)
sevenio_envelope = mostly(
    obj(
        webhook_event=value("dlr", odd=("sms_mo", "all", 1)),
        webhook_timestamp=value("2026-11-22T10:05:00+01:00"),
        data=mostly(sevenio_report, st.one_of(st.lists(sevenio_report, max_size=3), value("{}", "[]", ""))),
    ),
    sevenio_report,
)
sevenio_json = mostly(sevenio_envelope, st.one_of(st.lists(sevenio_envelope, max_size=3), any_json))
bulksms_message = obj(
    id=value("1380000001", "abc", 1380000001, odd=("x" * 129, "", None)),
    type=value("SENT", odd=("RECEIVED", "sent", 1)),
    status=mostly(
        obj(
            type=value("DELIVERED", "SENT", "FAILED", "ACCEPTED", "UNKNOWN", odd=("delivered", "", "X" * 65)),
            subtype=value(None, "EXPIRED", "BLOCKED", odd=("WHATEVER", 7)),
        ),
        any_json,
    ),
    userSuppliedId=value("u1", "u" * 20, odd=("u" * 65,)),
)
bulksms_json = mostly(st.lists(bulksms_message, max_size=4), any_json)
# -- callback URLs ---------------------------------------------------------------------------------------------
# Accepted ones reach loopback only: the local stack allows 127.0.0.1 and localhost (FORWARD_ALLOWED_HOSTS) and
# calls them, so no URL here that the checks take may lead anywhere else. Port 9 (discard) refuses connections.
LOOPBACK_URLS = [
    "http://127.0.0.1:9/dlr",
    "https://127.0.0.1:9/dlr?token=s3cret&x=%2F",
    "http://localhost:9/hook",
    "HTTP://LocalHost:9/Hook?Q=1",
    "http://127.0.0.1:9/" + "p" * 2020,  # just within 2,048 characters
]
# Refused by the checks without a DNS lookup: schemes, user info, IP literals that are not global or not
# canonical, IPv6 zone ids and mapped forms, hosts that no name may be, fragments, controls, lengths over the limit.
REFUSED_URLS = [
    "",
    " ",
    "http://127.0.0.2/dlr",
    "ftp://127.0.0.1/x",
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/_HELO",
    "javascript:alert(1)",
    "data:text/plain,x",
    "//127.0.0.1/x",
    "https:/127.0.0.1/x",
    "https//127.0.0.1",
    "https://",
    "https:///x",
    "https://:443/",
    "https://user:pass@127.0.0.1/dlr",
    "https://127.0.0.1@evil.invalid/",
    "https://@127.0.0.1/",
    "https://127.0.0.1\\@evil.invalid/",
    "https://127.0.0.1/#fragment",
    "https://127.0.0.1/a b",
    "https://127.0.0.1/\x00",
    "https://127.0.0.1/\r\nX-Injected: 1",
    "https://[::1]/dlr",
    "https://[::]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:a9fe:a9fe]/latest",
    "https://[fd00:ec2::254]/latest/meta-data/",
    "https://[fe80::1%25eth0]/",
    "https://[2001:db8::1]/",
    "https://[64:ff9b::a00:1]/",
    "https://[2002:7f00:1::]/",
    "https://[1:2:3]/",
    "https://[::1/",
    "https://[::1]x/",
    "https://[]/",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/",
    "https://192.168.1.1:8443/",
    "https://100.64.0.1/",
    "https://0.0.0.0/",
    "https://255.255.255.255/",
    "https://192.0.2.1/",
    "https://198.18.0.1/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0x7f.1/",
    "https://0177.0.0.1/",
    "https://127.1/",
    "https://127.0.0.1./",
    "https://1.2.3.4.5/",
    "https://999.1.1.1/",
    "https://\uff11\uff12\uff17.0.0.1/",
    "https://" + ARABIC_INDIC[1] + ".1.1.1/",
    "https://b\u00fccher.example/",
    "https://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.invalid/",
    "https://xn--.invalid/",
    "https://-a-.invalid/",
    "https://a..invalid/",
    "https://127.0.0.1:0/",
    "https://127.0.0.1:65536/",
    "https://127.0.0.1:-1/",
    "https://127.0.0.1:\uff18\uff10/",
    "https://127.0.0.1:" + "9" * 40 + "/",
    "https://127.0.0.1/" + "a" * 2100,
    "https://" + "a" * 64 + ".invalid/",
    "https://" + ".".join(["a" * 63] * 5) + "/",
    "https://127.0.0.1/" + "%" * 3000,
]
# Names the checks must look up: DNS here has no outside answers (a lookup fails fast, or times out: 400 or
# 503), so these stay rare. The handler fuzzing answers them from ``RESOLVED`` instead.
RESOLVED = {
    "hooks.sender.test": ["93.184.215.14"],
    "v6.sender.test": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "private.sender.test": ["10.0.0.7"],
    "mixed.sender.test": ["93.184.215.14", "169.254.169.254"],
    "mapped.sender.test": ["::ffff:10.0.0.1"],
    "xn--bcher-kva.test": ["93.184.215.14"],
}
NAMED_URLS = [
    "https://hooks.sender.test/dlr?key=s3cret",
    "https://V6.Sender.Test:8443/dlr",
    "https://private.sender.test/",
    "https://mixed.sender.test/",
    "https://mapped.sender.test/",
    "https://xn--bcher-kva.test/",
    "https://missing.sender.test/",
    "https://slow.sender.test/",
    "https://hooks.sender.test/" + "p" * 2030,
]
_URL_HOSTS = ["127.0.0.1", "localhost", "[::1]", "[2001:db8::7]", "10.1.2.3", "2130706433", "b\u00fccher.invalid", ""]


@st.composite
def made_url(draw: st.DrawFn) -> str:
    """A URL put together from parts, each sometimes hostile."""
    scheme = draw(st.sampled_from(["https", "http", "HTTPS", "ftp", "", "https:"]))
    userinfo = draw(st.sampled_from(["", "", "", "user@", "user:pw@", "%40@", "@"]))
    host = draw(st.sampled_from(_URL_HOSTS))
    port = draw(st.sampled_from(["", "", ":9", ":0", ":65536", ":x", ":", ":\u0669"]))
    # Always after a /: a text joined to the host would make a new host name, to be looked up in DNS.
    path = draw(
        st.one_of(
            st.just("/dlr"), hostile_text.map(lambda t: "/" + quote(t, safe="/?=&%")), hostile_text.map("/".__add__)
        )
    )
    return f"{scheme}://{userinfo}{host}{port}{path}"


callback_urls = mostly(
    mostly(
        st.sampled_from(LOOPBACK_URLS),
        mostly(st.sampled_from(REFUSED_URLS), st.one_of(made_url(), any_json, hostile_text), 50),
        50,
    ),
    st.sampled_from(NAMED_URLS),
    97,
)


IDS_BY_PROVIDER = {
    "sevenio": ["77149843739", "1"],
    "bulksms": ["1380000001", "abc.DEF_1@x:+-"],
    "bulksms-eapi": ["123456789:447700900123", "1:+44 7700 900123"],
}


@st.composite
def registration(draw: st.DrawFn) -> dict[str, Any]:
    provider = draw(value(*IDS_BY_PROVIDER, odd=("SEVENIO", "", {}, [], None)))
    ids = IDS_BY_PROVIDER.get(provider, IDS) if isinstance(provider, str) else IDS
    return draw(
        obj(
            provider=st.just(provider),
            message_id=value(*ids, odd=("nl123\n", "x" * 129, "", 1)),
            sent_at=value(
                "2026-11-22T10:00:00Z", "2026-11-22T10:00:00+01:00", odd=("2026-11-22T10:00:00", "2099-01-01T00:00:00Z")
            ),
            recipient=value("+491701234567", "+49 170 1234567", odd=("x" * 33, "\x00")),
            callback_url=mostly(st.just(_ABSENT), callback_urls, 60),
        )
    )


registrations = mostly(obj(messages=st.lists(registration(), min_size=1, max_size=3)), any_json, 90)

# Values of the form and query fields, by field name (the last bracketed part of a key): valid ones first,
# then odd ones the routes must refuse.
FIELD_VALUES: dict[str, tuple[list[str], list[str]]] = {
    "msg_id": (["77149843739", "1380000001", "abc.DEF_1@x:+-"], ["x" * 129, "1#2", "nl1\n"]),
    "status": (["DELIVERED", "BUFFERED", "TRANSMITTED", "11", "10", "40", "53"], ["WHATEVER", "999", "eleven"]),
    "timestamp": (["2026-11-22 10:05:00.000", "1795341960"], ["0001-01-01 00:00:00", "2026-02-30 10:00:00"]),
    "status_time": (["2026-11-22 10:05:00.000"], ["9999999999999"]),
    "completed_time": (["26-11-22 12:05:00"], ["26-13-40 99:99:99", "yesterday"]),
    "webhook_timestamp": (["2026-11-22T10:05:00+01:00"], ["soon"]),
    "msisdn": (["447700900123", "+447700900123"], ["44x", "1" * 21]),
    "batch_id": (["123456789", "abc123"], ["x" * 41, "1:2"]),
    "foreign_id": (["ref-1", "x" * 64], ["x" * 65, "a\x00b"]),
    "webhook_event": (["dlr"], ["all", "sms_mo"]),
}
# Odd form keys, beside the operation's own.
ODD_KEYS = [
    "data[0][msg_id]",
    "data[0][status]",
    "data[1][msg_id]",
    "data[\u00b2][msg_id]",
    "data[" + "9" * 50 + "][msg_id]",
    "data[a][b][c][d][e]",
    "data[]",
    "[",
    "data",
    "token",
]


def field_value(name: str) -> st.SearchStrategy[str]:
    """Mostly a valid value of the field, sometimes an odd one, any JSON text or a hostile text."""
    valid, odd = FIELD_VALUES.get(name.rstrip("]").rsplit("[", 1)[-1], (IDS, NASTY))
    return mostly(st.sampled_from(valid), st.one_of(st.sampled_from(odd), any_json.map(json.dumps), hostile_text))


@st.composite
def form(draw: st.DrawFn, names: list[str]) -> list[tuple[str, str]]:
    """Most of the operation's own fields with mostly valid values, and sometimes odd extra fields."""
    pairs = [(name, draw(field_value(name))) for name in names if draw(mostly(st.just(True), st.just(False), 90))]
    odd = st.tuples(st.one_of(st.sampled_from(ODD_KEYS), hostile_text), field_value("msg_id"))
    pairs += draw(mostly(st.just([]), st.lists(odd, min_size=1, max_size=3), 70))
    turn = draw(st.integers(0, max(len(pairs) - 1, 0)))
    return pairs[turn:] + pairs[:turn]


def encoded(pairs: list[tuple[str, str]]) -> str:
    return urlencode([(k, v) for k, v in pairs], quote_via=quote)


# -- the sender's lookup and erasure: query strings ------------------------------------------------------------
LOOKED_UP = "+491701234567"
_TOKEN_END = {"pk": "sevenio#77149843739", "sent_at": "2026-11-22T10:00:00.000Z"}
_VALID_TOKEN = encode_token(LOOKED_UP, _TOKEN_END)
# Tokens that pass the check (it binds a token to the recipient and its content, with no secret: anyone can make
# one), with ends a lookup never made: the store must take them, or refuse them, without failing.
_FORGED_TOKENS = [
    encode_token(LOOKED_UP, {"pk": "x" * 256, "sent_at": "2026-11-22T10:00:00.000Z"}),
    encode_token(LOOKED_UP, {"pk": "\x00", "sent_at": "\x00"}),
    encode_token(LOOKED_UP, {"pk": "sevenio#1", "sent_at": "not a time"}),
    encode_token(LOOKED_UP, {"pk": "nonce#abc", "sent_at": ARABIC_INDIC * 4}),
    # A lone surrogate: JSON escapes it, and it comes back out of the token as it went in.
    encode_token(LOOKED_UP, {"pk": "\U0001f4f1" * 10, "sent_at": "\ud800"}),
]
TOKENS = [
    _VALID_TOKEN,
    *_FORGED_TOKENS,
    encode_token("+491701234568", _TOKEN_END),  # another recipient's
    _VALID_TOKEN[:-3],
    _VALID_TOKEN[:5] + ("A" if _VALID_TOKEN[5] != "A" else "B") + _VALID_TOKEN[6:],
    _VALID_TOKEN + "==",
    _VALID_TOKEN + "=",
    _VALID_TOKEN.replace("-", "+").replace("_", "/"),
    "",
    "=",
    "====",
    "A",
    "AAAA",
    "A" * 512,
    "A" * 513,
    "A" * 20_000,
    "%00",
    "\x00",
    "\u00e9" * 10,
    ARABIC_INDIC,
    "null",
    "eyJhbGciOiJub25lIn0.e30.",
]
QUERY_VALUES: dict[str, tuple[list[str], st.SearchStrategy[str]]] = {
    "recipient": (
        [LOOKED_UP, "00491701234567", "491701234567", "+49 (170) 123-4567", "+49.170.123.4567", " 491701234567"],
        st.sampled_from(
            [
                "",
                "+",
                "++491701234567",
                "+0491701234567",
                "+" + "1" * 16,
                "+49" + ARABIC_INDIC[1] * 9,
                "+49\uff11\uff17\uff10\uff11\uff12",
                "+49\u00b2",
                "+49\U0001d7d8",
                "+49 170\n",
                "+49\x00170",
                "\x00",
                "0049",
                "00",
                "+491701234567a",
                "%2B491701234567",
                "+49--170",
                "x" * 65,
                "9" * 5_000,
                "+49\u200b1701234567",
                "\u202e+491701234567",
            ]
        ),
    ),
    "since": (
        ["2026-11-22T10:00:00Z", "2026-11-22T10:00:00.000500+01:00", "2026-11-22T10:00:00+00:00"],
        st.sampled_from(
            [
                "2026-11-22",
                "2026-11-22T10:00:00",
                "yesterday",
                "2026-02-30T10:00:00Z",
                ARABIC_INDIC[2] + "026-11-22T10:00:00Z",
                "\uff12\uff10\uff12\uff16-11-22T10:00:00Z",
                "0001-01-01T00:00:00+01:00",
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59.999999Z",
                "9999-12-31T23:59:59.9999-01:00",
                "2026-11-22T10:00:00+24:00",
                "2026-11-22T10:00:00 01:00",
                "9" * 5_000,
            ]
        ),
    ),
    "limit": (
        ["1", "2", "50", "100", "007"],
        st.sampled_from(
            [
                "0",
                "101",
                "-1",
                "+5",
                "1e2",
                "5.0",
                "0x10",
                " 5",
                "5 ",
                "",
                ARABIC_INDIC[5],
                "\uff15",
                "\u00b2",
                "9" * 5_000,
            ]
        ),
    ),
    "next": (
        [_VALID_TOKEN],
        st.one_of(
            st.sampled_from(TOKENS[1:]),
            # Base64 of anything: valid-looking, but no lookup made it.
            st.binary(max_size=120).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()),
        ),
    ),
}
# Names a query may carry beside the operation's own.
ODD_QUERY_NAMES = ["", "Recipient", "recipient[]", "recipient%00", "token", "\x00", "next[]", "limit "]


def escaped(text: str, percent: int) -> st.SearchStrategy[str]:
    """``text`` as it might be put in a query string: percent-encoded as clients do (``percent`` % of the time),
    or with a raw ``+`` (read as a space), lower-case escapes, double encoding, every byte escaped, broken or
    overlong escapes, a raw NUL."""
    plain = quote(text, safe="")
    return mostly(
        st.just(plain),
        st.sampled_from(
            [
                quote(text, safe="+"),
                re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), plain),
                quote(plain, safe=""),
                "".join(f"%{b:02X}" for b in text.encode("utf-8", "surrogatepass")),
                plain + "%",
                plain + "%2",
                "%zz" + plain,
                "%C0%AB" + plain,
                plain + "%ED%A0%80",
                plain + "%FF",
                plain + "\x00",
                plain + "%00",
            ]
        ),
        percent,
    )


@st.composite
def sender_query(draw: st.DrawFn, names: list[str]) -> str:
    """A lookup's or an erasure's query string: its parameters mostly valid, sometimes hostile, given twice,
    beside odd ones, hundreds of them, or as no query string at all."""
    pairs: list[tuple[str, str]] = []
    for name in names:
        if name not in QUERY_VALUES:
            raise LookupError(f"no fuzz values for the query parameter {name}: add them to tests/support/hostile.py")
        valid, odd = QUERY_VALUES[name]
        if draw(st.integers(0, 99)) < (95 if name == "recipient" else 40):
            pairs.append((name, draw(mostly(st.sampled_from(valid), st.one_of(odd, hostile_text), 85))))
    if pairs and draw(st.integers(0, 9)) == 0:  # a parameter given twice, the same or another value
        name, first = draw(st.sampled_from(pairs))
        pairs.append((name, draw(st.sampled_from([first, *QUERY_VALUES[name][0]]))))
    if draw(st.integers(0, 9)) == 0:
        pairs.append((draw(st.one_of(st.sampled_from(ODD_QUERY_NAMES), hostile_text)), draw(hostile_text)))
    turn = draw(st.integers(0, max(len(pairs) - 1, 0)))
    pairs = pairs[turn:] + pairs[:turn]
    text = "&".join(f"{draw(escaped(k, 95))}={draw(escaped(v, 75))}" for k, v in pairs)
    shape = draw(st.integers(0, 39))
    if shape == 0:
        text += "&" + "&".join(f"p{n}=1" for n in range(draw(st.sampled_from([999, 1_001, 3_000]))))
    elif shape == 1:
        text = text.replace("=", "", 1)  # a parameter without its =
    elif shape == 2:
        text = "&&" + text + "&;&"
    elif shape == 3:
        text = "recipient=" + "%2B" * 3_000
    return text


# -- requests -------------------------------------------------------------------------------------------------


@st.composite
def token_query(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Mostly the right token, so parsing is reached; sometimes none, a wrong or an odd one."""
    odd = st.one_of(st.just([]), st.lists(st.tuples(st.just("token"), hostile_text), min_size=1, max_size=2))
    return draw(mostly(st.just([("token", TOKEN)]), odd, 85))


def _query_names(operation: dict[str, Any]) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query" and "name" in p]


def _form_names(path: str) -> list[str]:
    """The fields of a form body: the ones the route's GET variant declares (the same fields, posted)."""
    return FORM_NAMES[path]


def _header_names(operation: dict[str, Any]) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p.get("in") == "header" and "name" in p]


FORM_NAMES = {
    "/callbacks/sevenio": ["msg_id", "status", "timestamp", "data[msg_id]", "data[status]", "webhook_event"],
    "/callbacks/bulksms": ["msisdn", "batch_id", "status", "completed_time"],
}
JSON_STRUCTURES = {
    "/callbacks/sevenio": sevenio_json,
    "/callbacks/bulksms": bulksms_json,
    "/messages": registrations,
}


@st.composite
def _request(
    draw: st.DrawFn, path: str, method: str, content_type: str | None, operation: dict[str, Any]
) -> FuzzRequest:
    headers: dict[str, str] = {}
    for name in _header_names(operation):
        if draw(st.booleans()):
            headers[name] = draw(st.one_of(hostile_text, st.text(alphabet=string.hexdigits, max_size=64)))
    if content_type is not None:
        headers["content-type"] = draw(st.sampled_from([content_type, content_type, "", "text/plain"]))
    query: list[tuple[str, str]] = []
    concrete = path
    if path.startswith("/callbacks/"):
        query += draw(token_query())
    if "{provider}" in path:
        provider = draw(value("sevenio", "bulksms", "bulksms-eapi"))
        message = draw(value(*IDS, "123456789:447700900123"))
        concrete = path.replace("{provider}", quote(str(provider), safe="") or "-").replace(
            "{message_id}", quote(str(message), safe="") or "x"
        )
    body = b""
    if path == "/messages" and method in {"GET", "DELETE"}:
        return FuzzRequest(method, concrete, draw(sender_query(_query_names(operation))), headers, body)
    if method == "GET":
        query += draw(form(_query_names(operation)))
    elif content_type == "application/json":
        body = draw(json_body(JSON_STRUCTURES[path]))
    elif content_type == "application/x-www-form-urlencoded":
        body = encoded(draw(form(_form_names(path)))).encode()
    else:
        raise LookupError(f"no body builder for {method} {path} {content_type}")
    return FuzzRequest(method, concrete, encoded(query), headers, body)


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """Every (path, method, content type, operation) of the description: one fuzz target each."""
    found = []
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            content = (operation.get("requestBody") or {}).get("content") or {None: {}}
            for content_type in content:
                found.append((path, method.upper(), content_type, operation))
    return found


def request_for(
    path: str, method: str, content_type: str | None, operation: dict[str, Any]
) -> st.SearchStrategy[FuzzRequest]:
    if path not in JSON_STRUCTURES and not path.startswith("/messages/"):
        raise LookupError(f"no fuzz builder for {path}: add one to tests/support/hostile.py")
    return _request(path, method, content_type, operation)
