"""The run folder's record: ``manifest.jsonl`` (one row per job) and ``manifest.csv``.

While a run goes on, each finished job appends a row, flushed and fsync'ed,
so even a killed run leaves a record of what finished (for a job id the
last row wins; a torn last line is ignored).  At the start and end of a run
the file is rewritten atomically with exactly one row per job, in plan order.

Row fields: ``id``, ``index``, ``label``, ``command``, ``engine``,
``params``, ``status`` (``ok``, ``failed``, ``interrupted`` or ``pending``),
``error``, ``worker``, ``started_at``, ``finished_at``, ``wall_s``,
``outputs`` (paths relative to the run folder), ``analysis`` (figures) and
``timings`` (seconds), ``worker_rss_mb`` and ``worker_maxrss_mb`` (the worker's
resident memory after the job and at its peak so far, MiB).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable

from musegen.errors import OutputError
from musegen.atomic import atomic_write_text

MANIFEST = "manifest.jsonl"
MANIFEST_CSV = "manifest.csv"
STATUSES = ("ok", "failed", "interrupted", "pending")


def _dumps(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=False, default=str)


class Manifest:
    """``manifest.jsonl`` and ``manifest.csv`` of one run folder."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST
        self.csv_path = self.folder / MANIFEST_CSV

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> dict[str, dict[str, Any]]:
        """Rows by job id (the last row of an id wins); ``{}`` when there is none."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise OutputError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        rows: dict[str, dict[str, Any]] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue  # torn by a kill in the middle of an append
            if isinstance(row, dict) and isinstance(row.get("id"), str):
                rows.pop(row["id"], None)
                rows[row["id"]] = row
        return rows

    def append(self, row: dict[str, Any]) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(_dumps(row) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OutputError(f"cannot append to {self.path}: {exc.strerror or exc}") from None

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace both files with exactly ``rows``."""
        rows = list(rows)
        atomic_write_text(self.path, "".join(_dumps(r) + "\n" for r in rows))
        atomic_write_text(self.csv_path, to_csv(rows))


_NUM = (int, float)
_OPTIONAL = {  # field -> types a value may have besides None
    "label": str, "command": str, "engine": str, "error": str, "error_type": str, "worker": str,
    "started_at": str, "finished_at": str, "wall_s": _NUM, "worker_rss_mb": _NUM, "worker_maxrss_mb": _NUM,
    "index": int, "params": dict, "analysis": dict, "timings": dict, "outputs": dict,
}


def row_problem(row: Any) -> str | None:
    """Why a manifest row (written by an earlier run, maybe edited or torn) cannot be trusted; None if it can."""
    if not isinstance(row, dict):
        return "not a JSON object"
    if not isinstance(row.get("id"), str) or not row["id"]:
        return "no job id"
    if row.get("status") not in STATUSES:
        return f"status {row.get('status')!r:.40}"
    for key, kind in _OPTIONAL.items():
        value = row.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            return f"{key} {value!r:.40}"
    for key, value in (row.get("outputs") or {}).items():
        if not isinstance(key, str) or not isinstance(value, str) or not value:
            return f"outputs.{key} {value!r:.40}"
        parts = Path(value).parts
        # results live in the row's own job folder: <id>/<file>
        if len(parts) != 2 or parts[0] != row["id"] or parts[1] in (".", ".."):
            return f"outputs.{key} {value!r:.40} is not a file of job folder {row['id']!r}"
    for key in ("analysis", "timings"):
        for name, value in (row.get(key) or {}).items():
            if isinstance(value, (dict, list)):
                return f"{key}.{name} {value!r:.40}"
    return None


def finished_files_exist(folder: Path, row: dict[str, Any]) -> bool:
    """Whether every output a checked ``ok`` row lists is a file in its job folder (a JSON sidecar among them)."""
    outputs = row.get("outputs") or {}
    if "json" not in outputs or not (folder / row["id"]).is_dir() or (folder / row["id"]).is_symlink():
        return False
    return all((folder / rel).is_file() for rel in outputs.values())


_FIRST = ("id", "label", "status", "command", "engine")
_LAST = ("error", "worker", "started_at", "finished_at", "wall_s", "worker_rss_mb", "worker_maxrss_mb")


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Flatten rows for spreadsheets: ``param.*``, ``analysis.*``, ``timings.*``, ``outputs.*`` columns."""
    groups: dict[str, dict[str, None]] = {"params": {}, "analysis": {}, "timings": {}, "outputs": {}}
    for r in rows:
        for g, names in groups.items():
            for k in (r.get(g) or {}):
                names.setdefault(k, None)
    header = list(_FIRST)
    header += [f"param.{k}" for k in groups["params"]]
    header += [f"{g}.{k}" for g in ("analysis", "timings", "outputs") for k in groups[g]]
    header += list(_LAST)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        line = []
        for col in header:
            group, _, name = col.partition(".")
            if name:
                value = (r.get("params" if group == "param" else group) or {}).get(name)
            else:
                value = r.get(col)
            if isinstance(value, (list, dict)):
                value = json.dumps(value, ensure_ascii=False)
            line.append("" if value is None else value)
        writer.writerow(line)
    return buf.getvalue()
