"""Batch plans: a TOML file -> a validated, expanded list of jobs with stable ids.

A plan holds ``[defaults]`` for every job, explicit ``[[job]]`` tables and
``[[sweep]]`` tables whose ``grid`` is expanded to every combination::

    title = "tempo sweep"
    [defaults]
    engine = "procedural"
    bars = 8

    [[job]]
    preset = "synthwave"
    seed = 7

    [[sweep]]
    label = "lofi"
    preset = "lofi-chill"
    grid.seed = [1, 2, 3]
    grid.tempo = [72, 84]

Paths (``midi``, ``audio``, ``soundfont``, ``model``, preset files) are
relative to the plan's folder; ``midi``/``audio`` may be globs, one job per
matching file (a name that exists as a file is that file, ``take[1].mid``
too).  A job's id is a readable slug plus a hash of its command and
parameters, so the same parameters get the same id in any plan, in any order.
"""

from __future__ import annotations

import glob as _glob
import hashlib
import itertools
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musegen import limits
from musegen.batch.params import ALL_PARAMS, ALLOWED, GLOB_PARAMS, build_chain, check_params
from musegen.errors import MusegenError, PlanError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

PLAN_KEYS = ("title", "description", "defaults", "job", "sweep")
#: Defaults of the ``batch_jobs`` and ``plan_bytes`` limits (see :mod:`musegen.limits`;
#: ``MUSEGEN_MAX_BATCH_JOBS``, ``MUSEGEN_MAX_PLAN_BYTES``).
MAX_JOBS = limits.LIMITS["batch_jobs"].default
MAX_PLAN_BYTES = limits.LIMITS["plan_bytes"].default
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Job:
    """One expanded job.

    Attributes
    ----------
    id : str
        Stable id: readable slug + hash of ``command`` and ``params``.
    index : int
        Position in the expanded plan (plan order).
    command : str
        ``generate``, ``extend``, ``render`` or ``post``.
    params : dict
        Checked parameters; paths as written in the plan (after globbing).
    engine : str or None
        The engine that will run it (the preset's when not given), for
        grouping jobs on workers; ``None`` for render and post jobs.
    label : str
        The ``label`` of its ``[[job]]`` or ``[[sweep]]`` (not part of the id).
    source : str
        Where it came from, e.g. ``[[sweep]] #2``.
    """

    id: str
    index: int
    command: str
    params: dict[str, Any]
    engine: str | None = None
    label: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "index": self.index, "command": self.command, "params": self.params,
                "engine": self.engine, "label": self.label, "source": self.source}


@dataclass
class Plan:
    """A validated plan: its jobs in plan order, duplicates merged."""

    base: Path
    jobs: list[Job]
    title: str = ""
    description: str = ""
    path: Path | None = None
    duplicates: int = 0
    text: str = field(default="", repr=False)


def job_id(command: str, params: dict[str, Any]) -> str:
    """The stable id of a job: ``<preset>-<midi>-s<seed>-<hash>`` and the like.

    The hash covers the command and every parameter (canonical JSON), so it
    does not depend on key order, on which sweep produced the job, or on
    its label.
    """
    from musegen.outputs import safe_stem

    canon = json.dumps({"command": command, **params}, sort_keys=True, separators=(",", ":"),
                       ensure_ascii=True, default=str)
    digest = hashlib.sha256(canon.encode("ascii")).hexdigest()[:10]
    if command in ("generate", "extend"):
        parts = [Path(str(params["preset"])).stem] if "preset" in params else []
        if "midi" in params:
            parts.append(Path(params["midi"]).stem)
        if not parts:
            parts.append(command)
        parts.append(f"s{params.get('seed', 0)}")
        if command == "extend":
            parts.insert(0, "extend")
    else:
        parts = [command, Path(params.get("midi") or params.get("audio") or "").stem]
    slug = safe_stem("-".join(p for p in parts if p), max_len=60)
    return f"{slug}-{digest}"


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read, validate and expand a plan file.

    Raises
    ------
    PlanError
        Naming the file, the table and the key or value at fault.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise PlanError(f"cannot read plan {str(path)!r}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise PlanError(f"plan {str(path)!r} is not a file")
    max_bytes = limits.get("plan_bytes")
    limits.check("plan_bytes", size, what=f"plan {path} is {size} bytes", error=PlanError)
    try:
        with open(path, "rb") as handle:  # never more than the limit, even if the file grew
            raw = limits.read_bounded(handle, max_bytes)
        limits.check("plan_bytes", len(raw), what=f"plan {path} is over {len(raw) - 1} bytes", error=PlanError)
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise PlanError(f"plan {path} is not UTF-8 text") from None
    except OSError as exc:
        raise PlanError(f"cannot read plan {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"plan {path} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of [[[...]]] or {a = {...}}
        raise PlanError(f"plan {path} nests arrays or tables too deeply") from None
    plan = parse_plan(data, where=str(path), base=path.resolve().parent)
    plan.path, plan.text = path, text
    return plan


def parse_plan(data: dict[str, Any], *, where: str = "<dict>", base: str | os.PathLike[str] = ".") -> Plan:
    """Validate a parsed plan table and expand it into jobs (see the module docs)."""
    return _Expander(where, Path(base)).plan(data)


class _Expander:
    def __init__(self, where: str, base: Path):
        self.where = where
        self.base = base
        self._presets: dict[str, Any] = {}

    def fail(self, msg: str) -> PlanError:
        return PlanError(f"plan {self.where}: {msg}")

    def keys(self, table: Any, name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise self.fail(f"{name} must be a table, got {table!r}")
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise self.fail(
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}"
                f" in {name} (allowed: {', '.join(sorted(allowed))})"
            )
        return table

    def tables(self, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise self.fail(f"{key} must be written as [[{key}]] tables")
        return value

    def plan(self, data: dict[str, Any]) -> Plan:
        self.keys(data, "the plan", PLAN_KEYS)
        title = data.get("title", "")
        description = data.get("description", "")
        for name, value in (("title", title), ("description", description)):
            if not isinstance(value, str):
                raise self.fail(f"{name} must be a string, got {value!r}")
        defaults = self.keys(data.get("defaults", {}), "[defaults]", ALL_PARAMS)
        entries: list[tuple[str, str, dict[str, Any], dict[str, list[Any]]]] = []
        for i, table in enumerate(self.tables(data, "job"), 1):
            where = f"[[job]] #{i}"
            fixed = dict(self.keys(table, where, ALL_PARAMS + ("label",)))
            entries.append((where, self.label(fixed, where), fixed, {}))
        for i, table in enumerate(self.tables(data, "sweep"), 1):
            where = f"[[sweep]] #{i}"
            fixed = dict(self.keys(table, where, ALL_PARAMS + ("label", "grid")))
            grid = self.keys(fixed.pop("grid", {}), f"{where} grid", ALL_PARAMS)
            for key, values in grid.items():
                if not isinstance(values, list) or not values:
                    raise self.fail(f"{where}: grid.{key} must be a non-empty list of values, got {values!r}")
                if key in fixed:
                    raise self.fail(f"{where}: {key!r} is both a fixed value and a grid axis")
            entries.append((where, self.label(fixed, where), fixed, grid))
        if not entries:
            raise self.fail("no jobs: add [[job]] or [[sweep]] tables")

        jobs: dict[str, Job] = {}
        duplicates = 0
        count = 0
        max_jobs = limits.get("batch_jobs")
        for where, label, fixed, grid in entries:
            axes = list(grid.items())
            size = math.prod(len(v) for _, v in axes)
            if count + size > max_jobs:
                raise self.fail(limits.message("batch_jobs", f"{where} expands to {count + size} jobs", max_jobs))
            for combo in itertools.product(*(v for _, v in axes)):
                explicit = {**fixed, **{k: v for (k, _), v in zip(axes, combo, strict=True)}}
                command, merged = self.merge(explicit, defaults, where)
                for params in self.globbed(merged, where):
                    job = self.job(command, params, where, label, len(jobs))
                    count += 1
                    if count > max_jobs:
                        raise self.fail(limits.message("batch_jobs", f"the plan expands past {max_jobs} jobs",
                                                       max_jobs))
                    if job.id in jobs:
                        duplicates += 1
                    else:
                        jobs[job.id] = job
        return Plan(base=self.base, jobs=list(jobs.values()), title=title, description=description,
                    duplicates=duplicates)

    def label(self, table: dict[str, Any], where: str) -> str:
        label = table.pop("label", "")
        if not isinstance(label, str):
            raise self.fail(f"{where}: label must be a string, got {label!r}")
        return label

    def merge(self, explicit: dict[str, Any], defaults: dict[str, Any], where: str):
        """The job's command and its parameters: defaults that apply to it, then its own."""
        command = explicit.get("command", defaults.get("command", "generate"))
        if not isinstance(command, str) or command not in ALLOWED:  # a list or table would not even hash
            raise self.fail(f"{where}: command must be one of {', '.join(ALLOWED)}; got {command!r}")
        allowed = ALLOWED[command]
        for key in explicit:
            if key not in allowed:
                raise self.fail(f"{where}: {key!r} does not apply to {command} jobs "
                                f"({command} takes: {', '.join(k for k in allowed if k != 'command')})")
        # Defaults meant for other commands (bars for a render job...) are left out.
        merged = {k: v for k, v in {**defaults, **explicit}.items() if k in allowed and k != "command"}
        return command, merged

    def globbed(self, params: dict[str, Any], where: str):
        """One parameter set per file matched by a ``midi``/``audio`` glob."""
        choices = []
        for key in GLOB_PARAMS:
            value = params.get(key)
            # a file that exists under its own name is that file, even when the name holds [ ] * ?
            if (isinstance(value, str) and _GLOB_CHARS & set(value)
                    and not os.path.exists(resolve_path(self.base, value))):
                pattern = os.path.expanduser(value)
                found = sorted(_glob.glob(pattern, root_dir=self.base))
                if not found:
                    raise self.fail(f"{where}: {key} {value!r} matches no file (relative to {self.base})")
                choices.append([(key, Path(f).as_posix()) for f in found])
        for combo in itertools.product(*choices):
            yield {**params, **dict(combo)}

    def job(self, command: str, params: dict[str, Any], where: str, label: str, index: int) -> Job:
        try:
            params = check_params({"command": command, **params})
            params.pop("command")
            engine = None
            base_chain: list[dict[str, Any]] = []
            if command in ("generate", "extend"):
                preset = self.preset(params.get("preset"))
                engine = params.get("engine", preset.engine.name)
                base_chain = list(preset.post)
                options = {**params.get("options", {}), **({"model": params["model"]} if "model" in params else {})}
                from musegen.pipeline import engine_options_for  # the check generate() makes, before any job runs

                engine_options_for(preset, engine, options, note=False)
            build_chain(params, base_chain)
        except MusegenError as exc:
            raise self.fail(f"{where}: {exc}") from None
        return Job(id=job_id(command, params), index=index, command=command, params=params,
                   engine=engine, label=label, source=where)

    def preset(self, ref: str | None):
        import musegen.style  # noqa: F401  (learned styles register as a preset source)
        from musegen.presets import DEFAULT_PRESET, load_preset

        ref = ref or DEFAULT_PRESET
        if ref not in self._presets:
            self._presets[ref] = load_preset(resolve_path(self.base, ref) if is_path(ref) else ref)
        return self._presets[ref]


def is_path(ref: str) -> bool:
    """Whether a preset or SoundFont reference names a file rather than a name."""
    return ref.endswith((".toml", ".sf2", ".sf3")) or "/" in ref or os.sep in ref


def resolve_path(base: str | os.PathLike[str], ref: str) -> str:
    """``ref`` relative to the plan's folder (``~`` expanded; absolute paths kept)."""
    path = Path(os.path.expanduser(ref))
    return str(path if path.is_absolute() else Path(base) / path)
