"""Plain text tables for a terminal: aligned columns, one row a line, nothing that needs a library."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

GAP = "  "


def cell(value: Any) -> str:
    """One value on one line: ``-`` for nothing, ``true``/``false`` as JSON says them, nested values as compact
    JSON, and control characters escaped so that no value can break a row (or the terminal)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns as wide as their widest cell, separated by two spaces; no trailing blanks."""
    cells = [[cell(value) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]
    lines = [list(headers), *cells]
    return "\n".join(
        GAP.join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def key_values(pairs: Mapping[str, Any]) -> str:
    """``name  value`` lines, the values aligned."""
    width = max((len(name) for name in pairs), default=0)
    return "\n".join(f"{name.ljust(width)}{GAP}{cell(value)}".rstrip() for name, value in pairs.items())


def columns_of(entries: Sequence[Mapping[str, Any]], first: Sequence[str] = ()) -> list[str]:
    """Every key of ``entries`` in the order first seen, the ``first`` ones (when present) leading."""
    seen = [name for name in first if any(name in entry for entry in entries)]
    for entry in entries:
        seen.extend(name for name in entry if name not in seen)
    return seen
