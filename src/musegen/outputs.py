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
TEMPLATE_FIELDS = ("preset", "seed", "variation", "midi", "engine", "bars", "tempo", "bpm", "key")
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")
#: the most a path component may hold (bytes, on every common file system)
MAX_STEM_BYTES = 255
#: a field's spec: [[fill]align][width][.precision][s]
_SPEC = re.compile(r"(?:[^{}]?[<>^])?(?P<width>\d+)?(?:\.(?P<precision>\d+))?s?")


def safe_stem(text: str, *, max_len: int = 120) -> str:
    """A file stem that cannot leave its folder: no separators, no leading dots."""
    stem = _SAFE.sub("_", str(text)).strip("._-")
    stem = stem[:max_len].rstrip("._-")
    return stem or "untitled"


def bpm_field(tempo_bpm: float) -> str:
    """The ``{bpm}`` (and ``{tempo}``) name field: ``"120"``, ``"92.5"`` (at most two decimals)."""
    return f"{round(float(tempo_bpm), 2):g}"


def key_field(tonic: int, mode: str) -> str:
    """The ``{key}`` name field: ``"Eb-major"``, ``"Fsharp-minor"``, ``"D-dorian"``.

    Letters, digits and ``-`` only, so the name is the same on every file system and
    in a URL ('#' starts a URL fragment and is replaced in names): a sharp is spelled
    ``sharp``, a flat stays ``b`` (musegen names keys C, C#, D, Eb, E, F, F#, G, Ab, A,
    Bb, B).  Names of one tonic sort together, its modes after it.
    """
    from musegen.theory import NOTE_NAMES

    return f"{NOTE_NAMES[int(tonic) % 12].replace('#', 'sharp')}-{mode}"


def format_stem(template: str, **fields: Any) -> str:
    """Fill a name template such as ``"{preset}-s{seed}-v{variation}"``.

    Only the names in :data:`TEMPLATE_FIELDS` are fields, with at most a
    small text spec (fill, alignment, width and precision up to 255, as in
    ``{seed:>4}`` or ``{preset:.10}``); conversions (``!r``), attributes,
    indexes and fields nested in a spec are refused, so no template can
    build a name longer than its own text plus 255 characters a field.
    ``{bpm}`` and ``{key}`` (see :func:`bpm_field`, :func:`key_field`) let
    DAW browsers sort results by tempo and key:
    ``"{preset}-{bpm}bpm-{key}-s{seed}"`` gives ``pop-ballad-71bpm-Eb-major-s3``
    (``{bpm:0>3}`` pads to three digits, so names sort by tempo as text too).
    """
    if not isinstance(template, str) or len(template.encode("utf-8", "replace")) > 1000:
        raise ParameterError(f"name template {str(template)[:60]!r}... is longer than 1000 bytes")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ParameterError(f"name template {template!r} is malformed: {exc}") from None
    values = {k: safe_stem(str(v)) for k, v in fields.items()}
    pieces = []
    for literal, name, spec, conversion in parsed:
        pieces.append(literal)
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS:
            raise ParameterError(
                f"name template {template!r} uses unknown field {{{name}}} (fields: {', '.join(TEMPLATE_FIELDS)})"
            )
        if conversion is not None:
            raise ParameterError(f"name template {template!r}: {{{name}!{conversion}}} is not allowed "
                                 "(fields are text: use {" + name + "} or {" + name + ":>4})")
        if spec and ("{" in spec or "}" in spec):
            raise ParameterError(f"name template {template!r}: a field inside a field ({{{name}:{spec}}}) "
                                 "is not allowed")
        m = _SPEC.fullmatch(spec or "")
        if m is None:
            raise ParameterError(f"name template {template!r}: {{{name}:{spec}}} is not a text spec "
                                 f"(fields are text: use {{seed}} or {{seed:>4}}, not {{seed:04d}})")
        if max(int(m["width"] or 0), int(m["precision"] or 0)) > MAX_STEM_BYTES:
            raise ParameterError(f"name template {template!r} asks for a field wider than "
                                 f"{MAX_STEM_BYTES} characters ({{{name}:{spec}}})")
        pieces.append(format(values.get(name, ""), spec or ""))
    return safe_stem("".join(pieces))


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {str(path)!r}: {exc.strerror or exc}") from None
    if not out.is_dir():
        raise OutputError(f"output {str(path)!r} is not a folder")
    return out


def _same(a: str, b: str) -> bool:
    """Whether two paths name one file: the same resolved path, or one inode (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): only its resolved path counts
        return False


def _inside(path: str, folder: str) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def check_outputs(
    outputs: "list[str | os.PathLike[str]]",
    inputs: "list[str | os.PathLike[str] | None]" = (),
    *,
    folders: "list[str | os.PathLike[str]]" = (),
) -> None:
    """Refuse a run that would write over one of its own inputs or give two results one path.

    ``outputs`` are the files a run writes (existing ones are replaced: an
    earlier run's results may be), ``folders`` the folders it replaces as a
    whole, ``inputs`` the files and folders it reads (``None`` entries are
    skipped; give a folder's files where an output could land in it).  Paths are compared
    resolved, and by inode, so links and hard links count as the same file.

    Raises
    ------
    ParameterError
        Naming the first path at fault.
    """
    ins: list[str] = []
    for p in inputs:
        if p is None:
            continue
        ins.append(os.fspath(p))
    seen: dict[str, str] = {}
    for out in map(os.fspath, outputs):
        key = os.path.realpath(out)
        if key in seen:
            raise ParameterError(f"two results would be written to {out!r}: give each its own name "
                                 "(a name template with {variation} or {seed}, or another folder)")
        seen[key] = out
        for src in ins:
            if _same(out, src):
                raise ParameterError(f"output {out!r} is an input of this run ({src!r}): musegen never "
                                     "writes over its inputs; choose another name or folder")
    for folder in map(os.fspath, folders):
        for src in ins:
            if _inside(src, folder):
                raise ParameterError(f"output folder {folder!r} holds an input of this run ({src!r}): "
                                     "musegen never replaces its inputs; choose another folder")


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
                if p.is_dir() and not p.is_symlink():  # a result's stems folder
                    import shutil

                    shutil.rmtree(p, ignore_errors=True)
                else:
                    _unlink(p)
