"""``accompany``: the parts a user names (``--parts bass,drums,piano``) as preset roles.

A melody is accompanied by the engines' machinery for parts a preset adds
to a sketch (:mod:`musegen.engines.procedural.sketch`): the request adds
exactly the named roles (:attr:`~musegen.engines.base.Request.add_roles`)
and no bars after the melody.  The style is the preset's; a part the preset
lacks gets the program of :data:`DEFAULT_PROGRAMS`.
"""

from __future__ import annotations

import dataclasses

from musegen.errors import ParameterError
from musegen.presets import Preset

#: part name (``--parts``) -> preset role
PARTS = {
    "bass": "bass",
    "drums": "drums",
    "harmony": "harmony",
    "chords": "harmony",
    "piano": "harmony",
    "pad": "pad",
}
#: GM programs of a role the preset has none for (the drum entry is the kit: standard)
DEFAULT_PROGRAMS = {"bass": 33, "drums": 0, "harmony": 0, "pad": 89}
#: ``piano`` asks for the instrument too: acoustic grand, whatever the preset's harmony plays
PART_PROGRAMS = {"piano": 0}
#: chord styles that write a tune of their own, which an accompaniment must not add
_TUNE_STYLES = {"chorale": "block", "polyphony": "block"}
#: the drum pattern where the preset has none ("none") and drums are asked for
DEFAULT_DRUM_PATTERN = "backbeat"


def parse_parts(parts: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The part names of ``--parts`` (comma-separated or a list), checked, in the order given, once each.

    Raises
    ------
    ParameterError
        An empty list, or a name not in :data:`PARTS` (the known ones listed).
    """
    names = parts.split(",") if isinstance(parts, str) else list(parts)
    names = [str(n).strip().lower() for n in names if str(n).strip()]
    if not names:
        raise ParameterError(f"--parts names no part; give some of {', '.join(PARTS)}")
    for n in names:
        if n not in PARTS:
            raise ParameterError(f"unknown part {n!r} in --parts; known parts: {', '.join(PARTS)}")
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return tuple(out)


def roles_of(parts: tuple[str, ...]) -> tuple[str, ...]:
    """The preset roles of ``parts`` (``piano`` and ``chords`` are both ``harmony``), once each."""
    out: list[str] = []
    for n in parts:
        if PARTS[n] not in out:
            out.append(PARTS[n])
    return tuple(out)


def accompany_preset(preset: Preset, parts: tuple[str, ...]) -> Preset:
    """``preset`` playing exactly the roles of ``parts``: its own programs, else :data:`DEFAULT_PROGRAMS`.

    A preset without drums (``drum_pattern = "none"``) drums a
    :data:`DEFAULT_DRUM_PATTERN` when drums are asked for; a chorale or
    polyphony preset voices block chords (its styles write a tune of their own).
    """
    roles = roles_of(parts)
    inst = preset.instruments
    programs = {}
    for role in roles:
        own = getattr(inst, role)
        programs[role] = own if own is not None else DEFAULT_PROGRAMS[role]
    for n in parts:
        if n in PART_PROGRAMS:
            programs[PARTS[n]] = PART_PROGRAMS[n]
    instruments = dataclasses.replace(inst, **{r: programs.get(r) for r in ("lead", "harmony", "bass", "pad",
                                                                              "drums")})
    groove, harmony = preset.groove, preset.harmony
    if "drums" in roles and groove.drum_pattern == "none":
        groove = dataclasses.replace(groove, drum_pattern=DEFAULT_DRUM_PATTERN)
    if harmony.chord_style in _TUNE_STYLES:
        harmony = dataclasses.replace(harmony, chord_style=_TUNE_STYLES[harmony.chord_style])
    return dataclasses.replace(preset, instruments=instruments, groove=groove, harmony=harmony)


def added_parts(parts: tuple[str, ...], preset: Preset) -> list[dict]:
    """The sidecar's record of the parts asked for: name, role and GM program (drums: the kit)."""
    inst = preset.instruments
    return [{"part": n, "role": PARTS[n], "program": getattr(inst, PARTS[n]), "is_drum": PARTS[n] == "drums"}
            for n in parts]
