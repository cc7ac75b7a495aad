"""Style presets: TOML files validated into :class:`Preset`.

A preset describes a style: the text prompt, tempo, meter, key and mode,
instruments by role, groove, harmony, melody, engine defaults, render settings
and the post-processing chain.  Built-in presets ship as package data
(``musegen/presets/*.toml``); users add their own by path, or in directories
listed in ``MUSEGEN_PRESET_PATH`` (``os.pathsep``-separated), which take
precedence over the built-ins of the same name.  Styles learned with
``musegen style learn`` (see :mod:`musegen.style`) are found after the user's
folders and before the built-ins.

Every table is checked: unknown keys are named in the error, values are
range-checked, and ``extends = "other-preset"`` deep-merges another preset
underneath this one.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from musegen import limits
from musegen.errors import PresetError
from musegen.theory import (  # noqa: F401  (re-exported: presets name keys and modes)
    MINOR_MODES, MODES, NOTE_NAMES, ROMAN_RE, SCALES, parse_key, pitch_class, scale_for_mode, third,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_PRESET = "pop-ballad"
PRESET_PATH_ENV = "MUSEGEN_PRESET_PATH"
#: Default of the ``preset_bytes`` limit (see :mod:`musegen.limits`; ``MUSEGEN_MAX_PRESET_BYTES``).
MAX_PRESET_BYTES = limits.LIMITS["preset_bytes"].default

ROLES = ("lead", "harmony", "bass", "pad", "drums")
STYLES = (
    "pop", "chorale", "folk", "polyphony", "classical", "jazz", "latin",
    "electronic", "ambient", "cinematic", "game", "hiphop",
)
DRUM_PATTERNS = (
    "none", "backbeat", "ballad", "four-on-floor", "boom-bap", "half-time",
    "bossa", "jazz-ride", "reel", "chiptune", "synthwave", "cinematic",
)
CHORD_STYLES = (
    "block", "sustained", "arpeggio", "broken", "alberti", "chorale",
    "polyphony", "strum", "comp", "stabs", "waltz",
)
MELODY_RHYTHMS = ("long", "lyrical", "mixed", "eighths", "sixteenths", "syncopated", "triplets")
EXTENSIONS = ("triads", "sevenths", "ninths")

@dataclass(frozen=True)
class Instruments:
    """General MIDI programs (0-127) by role; ``None`` leaves the role out.

    ``drums`` is the GM drum-kit program (0 standard, 8 room, 16 power,
    24 electronic, 25 TR-808, 32 jazz, 40 brush, 48 orchestral).
    """

    lead: int | None = None
    harmony: int | None = None
    bass: int | None = None
    pad: int | None = None
    drums: int | None = None

    def roles(self) -> list[str]:
        return [r for r in ROLES if getattr(self, r) is not None]


@dataclass(frozen=True)
class Groove:
    swing: float = 0.0          # 0 straight .. 0.5 hard swing (delay of off-beats, fraction of a beat half)
    density: float = 0.5        # 0 sparse .. 1 busy
    drum_pattern: str = "backbeat"
    humanize: float = 0.2       # 0 rigid .. 1 loose (timing and velocity spread)
    velocity: int = 90          # base MIDI velocity 1-127


@dataclass(frozen=True)
class Harmony:
    progressions: tuple[tuple[str, ...], ...] = (("I", "V", "vi", "IV"),)
    chord_style: str = "block"
    extensions: str = "triads"
    chords_per_bar: float = 1.0  # 0.5 = one chord every two bars


@dataclass(frozen=True)
class Melody:
    rhythm: str = "mixed"
    range: tuple[int, int] = (60, 84)   # MIDI pitches, inclusive
    phrase_bars: int = 4
    leap: float = 0.3                   # 0 stepwise .. 1 leapy
    repetition: float = 0.5             # 0 always new .. 1 motif repeated often


@dataclass(frozen=True)
class EngineDefaults:
    name: str = "symbolic"
    temperature: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    #: refuse models whose weights' licence forbids commercial use (as ``--commercial-use``)
    commercial_use: bool = False


@dataclass(frozen=True)
class RenderSettings:
    sample_rate: int = 44100
    soundfont: str | None = None   # None = the bundled General MIDI SoundFont
    gain_db: float = 0.0
    stems: bool = False            # also write one WAV and MIDI file per part (musegen.pipeline.stems)


@dataclass(frozen=True)
class Preset:
    """A validated style preset.  Build with :func:`load_preset`."""

    name: str
    description: str
    style: str = "pop"
    tempo: tuple[float, float] = (100.0, 100.0)
    meter: tuple[int, int] = (4, 4)
    key: str = "C"                 # note name, "from-seed" or "random"
    mode: str = "major"
    scale: str | None = None       # melody scale; None = the mode's scale
    instruments: Instruments = Instruments(lead=0, harmony=0, bass=33)
    groove: Groove = Groove()
    harmony: Harmony = Harmony()
    melody: Melody = Melody()
    engine: EngineDefaults = EngineDefaults()
    render: RenderSettings = RenderSettings()
    post: tuple[dict[str, Any], ...] = ()
    source: str = "built-in"

    # -- resolution helpers -------------------------------------------------
    def pick_tempo(self, rng: random.Random) -> float:
        lo, hi = self.tempo
        return lo if lo == hi else round(rng.uniform(lo, hi))

    def pick_key(self, rng: random.Random) -> int | None:
        """Tonic pitch class, or ``None`` when the key comes from the seed."""
        if self.key == "from-seed":
            return None
        if self.key == "random":
            return rng.randrange(12)
        return pitch_class(self.key)

    def to_dict(self) -> dict[str, Any]:
        """Plain, TOML/JSON-friendly form (what ``presets show`` prints)."""
        d = dataclasses.asdict(self)
        d["tempo"] = list(self.tempo) if self.tempo[0] != self.tempo[1] else self.tempo[0]
        d["meter"] = f"{self.meter[0]}/{self.meter[1]}"
        d["harmony"]["progressions"] = [list(p) for p in self.harmony.progressions]
        d["melody"]["range"] = list(self.melody.range)
        d["instruments"] = {k: v for k, v in d["instruments"].items() if v is not None}
        d["post"] = [dict(s) for s in self.post]
        return d


# -- validation -------------------------------------------------------------

_TOP_KEYS = {
    "name", "description", "style", "tempo", "meter", "key", "mode", "scale",
    "instruments", "groove", "harmony", "melody", "engine", "render", "post", "extends",
}


class _Checker:
    """Validates one preset table, naming the file and the dotted key in errors."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, msg: str) -> PresetError:
        return PresetError(f"preset {self.where}: {msg}")

    def table(self, data: Any, name: str, allowed: set[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.fail(f"[{name}] must be a table, got {type(data).__name__}")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise self.fail(
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}"
                f" in [{name}] (allowed: {', '.join(sorted(allowed))})"
            )
        return data

    def number(self, value: Any, name: str, lo: float, hi: float, *, integer: bool = False) -> float:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            kind = "an integer" if integer else "a number"
            raise self.fail(f"{name} must be {kind}, got {value!r}")
        if not (lo <= value <= hi):
            raise self.fail(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
        return int(value) if integer else float(value)

    def string(self, value: Any, name: str, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(f"{name} must be a string, got {value!r}")
        if choices is not None and value not in choices:
            raise self.fail(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        return value


def _tempo(c: _Checker, value: Any) -> tuple[float, float]:
    if isinstance(value, list):
        if len(value) != 2:
            raise c.fail(f"tempo range must be [low, high], got {value!r}")
        lo = c.number(value[0], "tempo", 20, 400)
        hi = c.number(value[1], "tempo", 20, 400)
        if lo > hi:
            raise c.fail(f"tempo range low {lo:g} is above high {hi:g}")
        return lo, hi
    bpm = c.number(value, "tempo", 20, 400)
    return bpm, bpm


def parse_meter(value: Any, c: _Checker | None = None) -> tuple[int, int]:
    """``"6/8"`` -> ``(6, 8)``, validated."""
    c = c or _Checker("?")
    m = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{1,2})\s*", str(value)) if isinstance(value, str) else None
    if not m:
        raise c.fail(f"meter must look like '4/4' or '6/8', got {value!r}")
    num, den = int(m.group(1)), int(m.group(2))
    if not 1 <= num <= 16 or den not in (2, 4, 8, 16):
        raise c.fail(f"meter {value!r} is not supported (numerator 1-16, denominator 2, 4, 8 or 16)")
    return num, den


def _instruments(c: _Checker, data: Any) -> Instruments:
    d = c.table(data, "instruments", set(ROLES))
    vals: dict[str, int | None] = {}
    for role in ROLES:
        v = d.get(role)
        if v is False or v is None:
            vals[role] = None
        else:
            vals[role] = int(c.number(v, f"instruments.{role}", 0, 127, integer=True))
    if not any(v is not None for v in vals.values()):
        raise c.fail("[instruments] names no role; give at least one of " + ", ".join(ROLES))
    return Instruments(**vals)


def _groove(c: _Checker, data: Any) -> Groove:
    d = c.table(data, "groove", {f.name for f in dataclasses.fields(Groove)})
    g = Groove()
    return Groove(
        swing=c.number(d.get("swing", g.swing), "groove.swing", 0, 0.75),
        density=c.number(d.get("density", g.density), "groove.density", 0, 1),
        drum_pattern=c.string(d.get("drum_pattern", g.drum_pattern), "groove.drum_pattern", DRUM_PATTERNS),
        humanize=c.number(d.get("humanize", g.humanize), "groove.humanize", 0, 1),
        velocity=int(c.number(d.get("velocity", g.velocity), "groove.velocity", 1, 127, integer=True)),
    )


def _harmony(c: _Checker, data: Any) -> Harmony:
    d = c.table(data, "harmony", {f.name for f in dataclasses.fields(Harmony)})
    h = Harmony()
    progs = d.get("progressions", [list(p) for p in h.progressions])
    if not isinstance(progs, list) or not progs or len(progs) > 64:
        raise c.fail("harmony.progressions must be a non-empty list of chord lists (at most 64)")
    out = []
    for i, prog in enumerate(progs):
        if not isinstance(prog, list) or not 1 <= len(prog) <= 32:
            raise c.fail(f"harmony.progressions[{i}] must be a list of 1-32 roman numerals, got {prog!r}")
        for ch in prog:
            if not isinstance(ch, str) or not ROMAN_RE.match(ch):
                raise c.fail(
                    f"harmony.progressions[{i}] has {ch!r}, not a roman numeral "
                    "(e.g. I, ii, V7, bVII, vii°, IVmaj7, Vsus4)"
                )
        out.append(tuple(prog))
    return Harmony(
        progressions=tuple(out),
        chord_style=c.string(d.get("chord_style", h.chord_style), "harmony.chord_style", CHORD_STYLES),
        extensions=c.string(d.get("extensions", h.extensions), "harmony.extensions", EXTENSIONS),
        chords_per_bar=_chords_per_bar(c, d.get("chords_per_bar", h.chords_per_bar)),
    )


def _chords_per_bar(c: _Checker, v: Any) -> float:
    x = c.number(v, "harmony.chords_per_bar", 0.25, 4)
    if x not in (0.25, 0.5, 1.0, 2.0, 4.0):
        raise c.fail(f"harmony.chords_per_bar must be one of 0.25, 0.5, 1, 2, 4; got {v!r}")
    return x


def _melody(c: _Checker, data: Any) -> Melody:
    d = c.table(data, "melody", {f.name for f in dataclasses.fields(Melody)})
    m = Melody()
    rng = d.get("range", list(m.range))
    if not isinstance(rng, list) or len(rng) != 2:
        raise c.fail(f"melody.range must be [low, high] MIDI pitches, got {rng!r}")
    lo = int(c.number(rng[0], "melody.range low", 0, 127, integer=True))
    hi = int(c.number(rng[1], "melody.range high", 0, 127, integer=True))
    if hi - lo < 7:
        raise c.fail(f"melody.range {rng!r} must span at least 7 semitones")
    return Melody(
        rhythm=c.string(d.get("rhythm", m.rhythm), "melody.rhythm", MELODY_RHYTHMS),
        range=(lo, hi),
        phrase_bars=int(c.number(d.get("phrase_bars", m.phrase_bars), "melody.phrase_bars", 1, 16, integer=True)),
        leap=c.number(d.get("leap", m.leap), "melody.leap", 0, 1),
        repetition=c.number(d.get("repetition", m.repetition), "melody.repetition", 0, 1),
    )


def _engine(c: _Checker, data: Any) -> EngineDefaults:
    d = c.table(data, "engine", {"name", "temperature", "options", "commercial_use"})
    e = EngineDefaults()
    opts = d.get("options", {})
    if not isinstance(opts, dict):
        raise c.fail(f"engine.options must be a table, got {opts!r}")
    name = c.string(d.get("name", e.name), "engine.name")
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,40}", name):
        raise c.fail(f"engine.name {name!r} is not a valid engine name")
    return EngineDefaults(
        name=name,
        temperature=c.number(d.get("temperature", e.temperature), "engine.temperature", 0.01, 5),
        options=dict(opts),
        commercial_use=_boolean(c, d.get("commercial_use", e.commercial_use), "engine.commercial_use"),
    )


def _boolean(c: _Checker, value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise c.fail(f"{name} must be true or false, got {value!r}")
    return value


def _render(c: _Checker, data: Any) -> RenderSettings:
    d = c.table(data, "render", {"sample_rate", "soundfont", "gain_db", "stems"})
    r = RenderSettings()
    sr = int(c.number(d.get("sample_rate", r.sample_rate), "render.sample_rate", 8000, 192000, integer=True))
    sf = d.get("soundfont", r.soundfont)
    if sf is not None:
        sf = c.string(sf, "render.soundfont")
    return RenderSettings(
        sample_rate=sr,
        soundfont=sf,
        gain_db=c.number(d.get("gain_db", r.gain_db), "render.gain_db", -40, 24),
        stems=_boolean(c, d.get("stems", r.stems), "render.stems"),
    )


def _post(c: _Checker, data: Any) -> tuple[dict[str, Any], ...]:
    from musegen.audio.chain import validate_chain
    from musegen.errors import ParameterError

    if data is None:
        return ()
    if not isinstance(data, list):
        raise c.fail(f"post must be a list of steps like {{op = \"trim\"}}, got {type(data).__name__}")
    try:
        return tuple(validate_chain(data))
    except ParameterError as exc:
        raise c.fail(str(exc)) from None


def preset_from_dict(data: dict[str, Any], *, where: str = "<dict>", source: str = "built-in") -> Preset:
    """Validate a parsed preset table into a :class:`Preset`."""
    c = _Checker(where)
    c.table(data, "preset", _TOP_KEYS)
    name = c.string(data.get("name", ""), "name")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", name):
        raise c.fail(f"name {name!r} must be 1-64 lowercase letters, digits, '-', '_' or '.'")
    desc = c.string(data.get("description", ""), "description")
    if not desc.strip() or len(desc) > 2000:
        raise c.fail("description must be 1-2000 characters (it is also the text prompt)")
    key = c.string(data.get("key", "C"), "key")
    if key not in ("from-seed", "random"):
        try:
            pitch_class(key)
        except PresetError as exc:
            raise c.fail(str(exc)) from None
    scale = data.get("scale")
    mode = c.string(data.get("mode", "major"), "mode", MODES)
    if scale is not None:
        scale = c.string(scale, "scale", SCALES)
        if third(scale) not in (None, third(mode)):
            raise c.fail(f"scale {scale!r} has a {third(scale)} third but mode {mode!r} a {third(mode)} one; "
                         f"use scale = {scale_for_mode(scale, mode)!r} or leave scale out")
    return Preset(
        name=name,
        description=desc.strip(),
        style=c.string(data.get("style", "pop"), "style", STYLES),
        tempo=_tempo(c, data.get("tempo", 100)),
        meter=parse_meter(data.get("meter", "4/4"), c),
        key=key,
        mode=mode,
        scale=scale,
        instruments=_instruments(c, data.get("instruments")),
        groove=_groove(c, data.get("groove")),
        harmony=_harmony(c, data.get("harmony")),
        melody=_melody(c, data.get("melody")),
        engine=_engine(c, data.get("engine")),
        render=_render(c, data.get("render")),
        post=_post(c, data.get("post")),
        source=source,
    )


# -- finding and loading ----------------------------------------------------

def _read_toml(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise PresetError(f"cannot read preset {path}: {exc.strerror or exc}") from None
    limits.check("preset_bytes", size, what=f"preset {path} is {size} bytes", error=PresetError)
    try:
        with open(path, "rb") as handle:  # never more than the limit, even if the file grew
            raw = limits.read_bounded(handle, limits.get("preset_bytes"))
        limits.check("preset_bytes", len(raw), what=f"preset {path} is over {len(raw) - 1} bytes",
                     error=PresetError)
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PresetError(f"preset {path} is not UTF-8 text") from None
    except OSError as exc:
        raise PresetError(f"cannot read preset {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"preset {path} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of [[[...]]] or {a = {...}}
        raise PresetError(f"preset {path} nests arrays or tables too deeply") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _builtin_dir() -> Path:
    return Path(str(resources.files("musegen") / "presets"))


@dataclass(frozen=True)
class PresetSource:
    """A place presets come from besides folders of TOML files.

    Higher layers register one with :func:`register_source` (``musegen.style``
    registers learned styles), so this module never imports them.  A source is
    searched after the user's preset folders and before the built-ins.
    """

    origin: str                                          # shown by ``presets list`` ("style")
    find: Callable[[str], Path | None]                   # name -> preset file, or None
    entries: Callable[[], list[tuple[str, Path]]]        # every (name, preset file) it holds
    adapt: Callable[[Path, dict[str, Any]], dict[str, Any]] | None = None  # edits a loaded preset's table


_REGISTERED: list[PresetSource] = []


def register_source(source: PresetSource) -> None:
    """Add (or replace, by origin) a preset source."""
    _REGISTERED[:] = [s for s in _REGISTERED if s.origin != source.origin] + [source]


def search_dirs() -> list[tuple[Path, str]]:
    """Preset directories in lookup order, each with its origin label."""
    dirs: list[tuple[Path, str]] = []
    for part in os.environ.get(PRESET_PATH_ENV, "").split(os.pathsep):
        if part.strip():
            dirs.append((Path(part).expanduser(), "user"))
    dirs.append((_builtin_dir(), "built-in"))
    return dirs


def _is_path(ref: str) -> bool:
    return ref.endswith(".toml") or "/" in ref or os.sep in ref


def find_preset(ref: str) -> tuple[Path, str]:
    """Resolve a preset name or path to ``(file, origin)``."""
    if not isinstance(ref, str) or not ref.strip():
        raise PresetError("preset name is empty")
    if _is_path(ref):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise PresetError(f"preset file {ref!r} does not exist")
        return path, "file"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", ref):
        raise PresetError(f"unknown preset {ref!r}")
    for d, origin in search_dirs():
        if origin == "built-in":
            # registered sources (learned styles) come after the user's folders and before the built-ins
            for source in _REGISTERED:
                found = source.find(ref)
                if found is not None:
                    return found, source.origin
        path = d / f"{ref}.toml"
        if path.is_file():
            return path, origin
    names = ", ".join(list_names())
    raise PresetError(f"unknown preset {ref!r} (available: {names})")


def load_preset(ref: str | os.PathLike[str], *, _seen: tuple[str, ...] = ()) -> Preset:
    """Load and validate a preset by name (see :func:`search_dirs`) or by path."""
    ref = os.fspath(ref)
    path, origin = find_preset(ref)
    data = _load_merged(path, _seen)
    for source in _REGISTERED:
        if source.origin == origin and source.adapt is not None:
            data = source.adapt(path, data)
    return preset_from_dict(data, where=str(path) if origin != "built-in" else repr(ref), source=origin)


def _load_merged(path: Path, seen: tuple[str, ...]) -> dict[str, Any]:
    data = _read_toml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise PresetError(f"preset {path}: extends must be a preset name, got {parent!r}")
    if parent in seen or len(seen) > 8:
        raise PresetError(f"preset {path}: 'extends' loops through {' -> '.join(seen + (parent,))}")
    try:
        base_path, _ = find_preset(parent)
    except PresetError as exc:  # name the file that says it, not only the missing name
        raise PresetError(f"preset {path}: extends = {parent!r}: {exc}") from None
    merged = _merge(_load_merged(base_path, seen + (parent,)), data)
    if "mode" in data and "scale" not in data and isinstance(merged.get("scale"), str) \
            and isinstance(data["mode"], str) and data["mode"] in MODES and merged["scale"] in SCALES:
        # the inherited scale was chosen for the parent's mode: follow the mode the child set
        merged["scale"] = scale_for_mode(merged["scale"], data["mode"])
    return merged


def _sources() -> list[tuple[list[tuple[str, Path]], str]]:
    """``([(name, file)], origin)`` per place presets come from, in lookup order."""
    out = []
    for d, origin in search_dirs():
        if origin == "built-in":
            out.extend((source.entries(), source.origin) for source in _REGISTERED)
        if d.is_dir():
            out.append(([(p.stem, p) for p in sorted(d.glob("*.toml"))], origin))
    return out


def list_names() -> list[str]:
    return sorted({name for files, _ in _sources() for name, _ in files})


def list_presets() -> list[tuple[Preset | None, str, str]]:
    """All presets found, as ``(preset or None, name, origin-or-error)``.

    A broken user preset is listed with its error instead of hiding the rest.
    """
    out = []
    seen: set[str] = set()
    for files, origin in _sources():
        for name, _ in files:
            if name in seen:
                continue
            seen.add(name)
            try:
                out.append((load_preset(name), name, origin))
            except PresetError as exc:
                out.append((None, name, f"error: {exc}"))
    return sorted(out, key=lambda t: t[1])
