"""Hypothesis strategies for requests nobody here wrote: near-valid requests to every route, with hostile values
mixed in where valid ones go (wrong JSON types, deep nesting, huge numbers, odd Unicode digits, control
characters, overlong fields, odd form keys, too many reports).

Each route's body builder makes the shape the route expects (so parsing goes deep), then fills it from pools
of valid values and of hostile ones. ``request_for(operation)`` answers a strategy of ``FuzzRequest`` for an
operation of docs/openapi.json; an operation without a builder here is an error, so a new route cannot go
unfuzzed.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

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
