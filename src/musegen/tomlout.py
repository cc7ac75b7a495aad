"""A small TOML writer for showing resolved presets (scalars, lists, tables).

Its output is read back (``style learn`` writes a style's ``preset.toml``
with it) and printed (``presets show``), so every string is written as a TOML
basic string whose control characters are escapes: it parses back to the
same text, and printing it executes nothing on a terminal.
"""

from __future__ import annotations

import json
import re
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: what json.dumps leaves raw but TOML forbids (DEL) or a terminal executes (C1 controls,
#: bidi reordering, line separators); json.dumps already escapes C0 controls
_RAW_CONTROLS = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _string(v: str) -> str:
    """A TOML basic string with every control character as an escape.

    JSON's string escapes (``\\" \\\\ \\b \\f \\n \\r \\t \\uXXXX``) are all TOML's too.
    """
    return _RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(v, ensure_ascii=False))


def _key(k: Any) -> str:
    return k if isinstance(k, str) and _BARE_KEY.fullmatch(k) else _string(str(k))


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def dumps(data: dict[str, Any]) -> str:
    """TOML text for ``data``: top-level scalars first, then one table per dict."""
    lines = []
    tables = []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            lines.append(f"{_key(k)} = [")
            lines.extend(f"  {_value(x)}," for x in v)
            lines.append("]")
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    for name, table in tables:
        lines.append("")
        lines.append(f"[{_key(name)}]")
        for k, v in table.items():
            if v is not None:
                lines.append(f"{_key(k)} = {_value(v)}")
    return "\n".join(lines) + "\n"
