"""Where results go: safe stems, atomic file groups, the JSON sidecar.

Each result is ``<stem>.wav``, ``<stem>.mid`` and ``<stem>.json`` in one
output folder.  Files are written under temporary names and renamed into
place, the JSON last, so a present ``.json`` means the result is complete.
"""

from __future__ import annotations

import json
import os
import re
import string
from pathlib import Path
from typing import Any

from musegen.atomic import atomic_write_text
from musegen.errors import OutputError, ParameterError

DEFAULT_TEMPLATE = "{preset}-s{seed}"
TEMPLATE_FIELDS = ("preset", "seed", "variation", "midi", "engine", "bars", "tempo", "key")
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def safe_stem(text: str, *, max_len: int = 120) -> str:
    """A file stem that cannot leave its folder: no separators, no leading dots."""
    stem = _SAFE.sub("_", str(text)).strip("._-")
    stem = stem[:max_len].rstrip("._-")
    return stem or "untitled"


def format_stem(template: str, **fields: Any) -> str:
    """Fill a name template such as ``"{preset}-s{seed}-v{variation}"``."""
    try:
        parsed = [(f, spec) for _, f, spec, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ParameterError(f"name template {template!r} is malformed: {exc}") from None
    bad = [n for n, _ in parsed if n not in TEMPLATE_FIELDS]
    if bad:
        raise ParameterError(
            f"name template {template!r} uses unknown field {{{bad[0]}}} (fields: {', '.join(TEMPLATE_FIELDS)})"
        )
    # values are text: a spec may pad or cut ({seed:>4}), but never build a huge string
    if any(int(n) > 1000 for _, spec in parsed for n in re.findall(r"\d+", spec or "")):
        raise ParameterError(f"name template {template!r} asks for a field wider than 1000 characters")
    values = {k: safe_stem(str(v)) for k, v in fields.items()}
    try:
        text = template.format(**{k: values.get(k, "") for k in TEMPLATE_FIELDS})
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ParameterError(f"name template {template!r} cannot be filled: {exc} "
                             f"(fields are text: use {{seed}} or {{seed:>4}}, not {{seed:04d}})") from None
    return safe_stem(text)


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {str(path)!r}: {exc.strerror or exc}") from None
    if not out.is_dir():
        raise OutputError(f"output {str(path)!r} is not a folder")
    return out


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file, fsync, rename)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class ResultFiles:
    """The ``.wav/.mid/.json`` paths of one result, committed as a group.

    Use as a context manager: on an exception every file this group already
    wrote is removed again, so a failed result leaves nothing behind.
    """

    def __init__(self, out_dir: Path, stem: str):
        self.out_dir = out_dir
        self.stem = stem
        self.wav = out_dir / f"{stem}.wav"
        self.mid = out_dir / f"{stem}.mid"
        self.json = out_dir / f"{stem}.json"
        self._written: list[Path] = []

    def wrote(self, path: Path) -> None:
        self._written.append(path)

    def __enter__(self) -> "ResultFiles":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            for p in self._written:
                _unlink(p)
