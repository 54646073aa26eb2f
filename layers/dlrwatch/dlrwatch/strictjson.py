"""JSON from strangers: the standard parser, made total and bounded.

``json.loads`` raises RecursionError on deep nesting and ValueError (not JSONDecodeError) on integers of more
than 4,300 digits, accepts ``NaN`` and ``Infinity``, and turns ``1e999`` into infinity. Every request body and
every provider answer goes through ``loads`` here instead, which either returns a value no deeper than
``MAX_DEPTH`` holding only finite numbers of bounded size, or raises ``InvalidJson`` saying why.
"""

from __future__ import annotations

import json
import math
from typing import Any

# The deepest structure any route or provider answer needs is four levels (a seven.io webhook list:
# list -> envelope -> data list -> report); anything past 16 is not a delivery report.
MAX_DEPTH = 16
# Longer than any id a provider writes as a JSON number (seven.io ids have 11 digits).
MAX_INTEGER_DIGITS = 32
MAX_FLOAT_CHARACTERS = 64


class InvalidJson(ValueError):
    """Text that is not JSON, or JSON no route or provider answer can be made of. The message says which."""


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidJson("not UTF-8") from None
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise InvalidJson(f"nested deeper than {MAX_DEPTH} levels") from None
    _check_depth(value)
    return value


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise InvalidJson(f"a number of more than {MAX_INTEGER_DIGITS} digits")
    return int(digits)


def _float(text: str) -> float:
    value = float(text) if len(text) <= MAX_FLOAT_CHARACTERS else math.inf
    if not math.isfinite(value):
        raise InvalidJson("a number out of range")
    return value


def _constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not a JSON value")


def _check_depth(value: Any) -> None:
    """Iterative, so the check itself cannot run out of stack."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(MAX_DEPTH):
        level = [child for node in level for child in _children(node) if isinstance(child, dict | list)]
        if not level:
            return
    raise InvalidJson(f"nested deeper than {MAX_DEPTH} levels")


def _children(node: dict[str, Any] | list[Any]) -> list[Any]:
    return list(node.values()) if isinstance(node, dict) else node
