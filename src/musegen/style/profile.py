"""What a set of MIDI files has in common: the statistics behind a learned style.

:func:`profile_files` measures each file (tempo, meter, key, parts and their
General MIDI programs, note density, swing, velocities, chords as roman
numerals) and pools them; :func:`preset_table` turns the pooled profile into
a preset table on top of a base preset.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musegen.errors import InputError, MusegenError

#: General MIDI program families, eight programs each.
GM_FAMILIES = (
    "piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects",
)
_DEGREES = {0: "I", 1: "bII", 2: "II", 3: "bIII", 4: "III", 5: "IV", 6: "bV", 7: "V", 8: "bVI", 9: "VI",
            10: "bVII", 11: "VII"}
_SUFFIX = {"maj": "", "min": "", "dim": "°", "aug": "+", "7": "7", "maj7": "maj7", "min7": "7", "sus4": "sus4"}
#: analysis roles -> preset roles
_PRESET_ROLE = {"melody": "lead", "harmony": "harmony", "bass": "bass", "pad": "pad", "drums": "drums"}


@dataclass
class FileProfile:
    """One file's measurements."""

    path: str
    tempo_bpm: float
    meter: str
    tonic: int
    mode: str
    bars: int
    notes: int
    notes_per_bar: float
    programs: dict[str, list[tuple[int, int]]]   # preset role -> [(program, notes)]
    drum_kit: int | None
    velocities: list[int]
    offbeat_positions: list[float]               # onsets within a beat, in (0.35, 0.85)
    on_beat_halves: int                           # onsets exactly on the straight off-beat
    chords: list[str]                             # roman numerals, one per chord window
    melody_pitches: list[int]
    durations_beats: list[float] = field(default_factory=list)
    single_lines: int = 0                         # parts that are one line (voices, not chords)


def roman(root: int, quality: str, tonic: int) -> str:
    """Roman numeral of a chord (root pitch class and quality) in a key."""
    numeral = _DEGREES[(root - tonic) % 12]
    if quality in ("min", "dim", "min7"):
        numeral = numeral.lower()
    return numeral + _SUFFIX.get(quality, "")


def family(program: int) -> str:
    return GM_FAMILIES[max(0, min(127, int(program))) // 8]


def profile_file(path: str | Path) -> FileProfile | None:
    """Measure one MIDI file; ``None`` when it holds no pitched notes.

    Raises
    ------
    MidiError
        The file cannot be read (the message names it).
    """
    from musegen.midi.analysis import analyze_score
    from musegen.midi.io import load_midi

    score = load_midi(path)
    pitched = [t for t in score.tracks if not t.is_drum and len(t.notes)]
    if not pitched:
        return None
    a = analyze_score(score)
    tpq = a.tpq
    beat = tpq * 4 / a.meter[1]
    programs: dict[str, list[tuple[int, int]]] = {}
    drum_kit = None
    for info in a.tracks:
        if info.is_drum:
            drum_kit = info.program
            continue
        role = _PRESET_ROLE.get(info.role, "harmony")
        programs.setdefault(role, []).append((info.program, info.n_notes))
    lines = [i for i in a.tracks if not i.is_drum and i.n_notes]
    if len(lines) >= 3:
        # every part may read as harmony (a choir, a string quartet): the top line leads, the lowest is the bass
        if "lead" not in programs:
            top = max(lines, key=lambda i: i.pitch_median)
            programs["lead"] = [(top.program, top.n_notes)]
        if "bass" not in programs:
            low = min(lines, key=lambda i: i.pitch_median)
            programs["bass"] = [(low.program, low.n_notes)]
    if "lead" not in programs and programs:
        # one chordal part (a keyboard reduction): its top line is the tune, on the same instrument
        prog, n = max((pn for ps in programs.values() for pn in ps), key=lambda pn: pn[1])
        programs["lead"] = [(prog, n)]
    voices = sum(1 for i in lines if i.mean_polyphony < 1.3)
    vel, offbeat, halves, durs = [], [], 0, []
    for t in pitched:
        cols = t.notes.numpy()
        vel.extend(int(v) for v in cols["velocity"])
        frac = (cols["time"] % beat) / beat
        offbeat.extend(float(f) for f in frac[(frac > 0.35) & (frac < 0.85)])
        halves += int(np.sum(np.abs(frac - 0.5) < 0.02))
        durs.extend(float(d) for d in cols["duration"] / beat)
    n_notes = sum(len(t.notes) for t in pitched)
    chords = [roman(root, quality, a.key_tonic) for _, _, root, quality in a.chords if quality]
    melody = [int(p) for _, _, p, _ in a.melody] if a.melody else []
    return FileProfile(
        path=str(path), tempo_bpm=float(a.tempo_bpm), meter=f"{a.meter[0]}/{a.meter[1]}", tonic=int(a.key_tonic),
        mode=a.key_mode, bars=int(a.n_bars), notes=n_notes, notes_per_bar=n_notes / max(1, a.n_bars),
        programs=programs, drum_kit=drum_kit, velocities=vel, offbeat_positions=offbeat, on_beat_halves=halves,
        chords=chords, melody_pitches=melody, durations_beats=durs, single_lines=voices,
    )


def profile_files(paths: list[Path], *, progress=None) -> tuple[list[FileProfile], list[tuple[str, str]]]:
    """Profiles of the usable files, and ``(path, reason)`` for the files skipped."""
    usable, skipped = [], []
    for i, p in enumerate(paths):
        try:
            prof = profile_file(p)
        except MusegenError as exc:
            skipped.append((str(p), str(exc)))
        else:
            if prof is None:
                skipped.append((str(p), "holds no pitched notes"))
            else:
                usable.append(prof)
        if progress is not None:
            progress(i + 1, len(paths), Path(p).name)
    return usable, skipped


def _progressions(profiles: list[FileProfile], top: int = 4) -> list[list[str]]:
    """The most common four-chord cycles (repeats collapsed) across the files."""
    counts: Counter[tuple[str, ...]] = Counter()
    for prof in profiles:
        seq = [c for i, c in enumerate(prof.chords) if i == 0 or c != prof.chords[i - 1]]
        for i in range(0, max(0, len(seq) - 3)):
            counts[tuple(seq[i:i + 4])] += 1
    return [list(p) for p, _ in counts.most_common(top)]


def _swing(profiles: list[FileProfile]) -> float:
    """Delay of the off-beat (0 straight, 1/3 triplet swing) as the presets define it."""
    pos = np.array([x for p in profiles for x in p.offbeat_positions])
    halves = sum(p.on_beat_halves for p in profiles)
    if len(pos) < 20 or halves >= 0.5 * len(pos):
        return 0.0
    late = pos[(pos > 0.52) & (pos < 0.8)]
    if len(late) < 0.3 * len(pos):
        return 0.0
    return float(np.clip((np.median(late) - 0.5) / 0.5, 0.0, 0.75))


def summarize(profiles: list[FileProfile]) -> dict[str, Any]:
    """Pooled statistics of the files (what ``style show`` prints)."""
    if not profiles:
        raise InputError("no usable MIDI files to learn from")
    tempos = np.array([p.tempo_bpm for p in profiles])
    meters = Counter(p.meter for p in profiles)
    keys = Counter((p.tonic, p.mode) for p in profiles)
    modes = Counter(p.mode for p in profiles)
    roles: dict[str, Counter[int]] = {}
    for p in profiles:
        for role, progs in p.programs.items():
            c = roles.setdefault(role, Counter())
            for prog, n in progs:
                c[prog] += n
    kits = Counter(p.drum_kit for p in profiles if p.drum_kit is not None)
    vel = np.array([v for p in profiles for v in p.velocities] or [90])
    mel = np.array([x for p in profiles for x in p.melody_pitches] or [60, 84])
    durs = np.array([d for p in profiles for d in p.durations_beats] or [1.0])
    from musegen.midi.keys import key_name

    return {
        "files": len(profiles),
        "tempo_bpm": {"p10": float(np.percentile(tempos, 10)), "median": float(np.median(tempos)),
                      "p90": float(np.percentile(tempos, 90))},
        "meters": dict(meters.most_common()),
        "keys": {key_name(t, m): n for (t, m), n in keys.most_common()},
        "modes": dict(modes.most_common()),
        "programs_by_role": {r: {str(k): v for k, v in c.most_common(4)} for r, c in roles.items()},
        "drum_kits": {str(k): v for k, v in kits.most_common()},
        "files_with_drums": sum(p.drum_kit is not None for p in profiles),
        # files written as three or more single lines (voices): counterpoint rather than melody + chords
        "files_in_voices": sum(p.single_lines >= 3 for p in profiles),
        "notes_per_bar": float(np.median([p.notes_per_bar for p in profiles])),
        "swing": _swing(profiles),
        "velocity": {"mean": float(vel.mean()), "std": float(vel.std())},
        "melody_range": [int(np.percentile(mel, 5)), int(np.percentile(mel, 95))],
        "median_note_beats": float(np.median(durs)),
        "chords": dict(Counter(c for p in profiles for c in p.chords).most_common(12)),
        "progressions": _progressions(profiles),
    }


def _density(stats: dict[str, Any]) -> float:
    """Map pitched notes per bar onto the presets' 0-1 density (about 40 notes a bar is busy)."""
    return round(float(np.clip(stats["notes_per_bar"] / 40.0, 0.05, 1.0)), 2)


def describe(name: str, stats: dict[str, Any]) -> str:
    """A one-paragraph description, also the text prompt for neural engines."""
    t = stats["tempo_bpm"]
    tempo = f"{t['median']:.0f} BPM" if t["p90"] - t["p10"] < 8 else f"{t['p10']:.0f}-{t['p90']:.0f} BPM"
    meter = next(iter(stats["meters"]))
    top_key, n_key = next(iter(stats["keys"].items()))
    parts = []
    for role in ("lead", "harmony", "bass", "pad"):
        progs = stats["programs_by_role"].get(role)
        if progs:
            parts.append(f"{family(int(next(iter(progs))))} {role}")
    if stats["files_with_drums"]:
        parts.append("drums")
    density = _density(stats)
    feel = "sparse" if density < 0.3 else "busy" if density > 0.7 else "moderately dense"
    swing = ", swung" if stats["swing"] > 0.1 else ""
    chords = ", ".join(list(stats["chords"])[:5])
    return (f"{name}: learned from {stats['files']} MIDI files. {tempo}, {meter}, mostly {top_key} "
            f"({n_key} of {stats['files']} files); {', '.join(parts) or 'melodic parts'}; "
            f"{feel}{swing}; common chords {chords}.")


def preset_table(name: str, stats: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """A preset table: ``base`` (a preset's plain form) with everything the files tell overridden."""
    from musegen.theory import NOTE_NAMES, ROMAN_RE, parse_key

    out = {"name": name, "description": describe(name, stats)}
    out.update((k, v) for k, v in base.items() if k not in ("name", "description", "source"))
    t = stats["tempo_bpm"]
    lo, hi = round(max(20.0, t["p10"])), round(min(400.0, t["p90"]))
    out["tempo"] = lo if lo == hi else [lo, hi]
    out["meter"] = next(iter(stats["meters"]))
    tonic, mode = parse_key(next(iter(stats["keys"])))  # e.g. "A minor"
    out["key"] = NOTE_NAMES[tonic]
    out["mode"] = mode or "major"
    out.pop("scale", None)
    inst: dict[str, Any] = {}
    for role in ("lead", "harmony", "bass", "pad"):
        progs = stats["programs_by_role"].get(role)
        if progs:
            inst[role] = int(next(iter(progs)))
    if stats["files_with_drums"] * 2 >= stats["files"]:
        inst["drums"] = int(next(iter(stats["drum_kits"]), 0))
    out["instruments"] = inst
    groove = dict(base.get("groove", {}))
    groove.update(swing=round(stats["swing"], 3), density=_density(stats),
                  velocity=int(np.clip(round(stats["velocity"]["mean"]), 1, 127)),
                  humanize=round(float(np.clip(stats["velocity"]["std"] / 25.0, 0.0, 1.0)), 2))
    if "drums" not in inst:
        groove["drum_pattern"] = "none"
    elif groove.get("drum_pattern", "none") == "none":
        groove["drum_pattern"] = "backbeat"
    out["groove"] = groove
    harmony = dict(base.get("harmony", {}))
    progs = [p for p in stats["progressions"] if all(ROMAN_RE.match(c) for c in p)]
    if progs:
        harmony["progressions"] = progs
    out["harmony"] = harmony
    melody = dict(base.get("melody", {}))
    lo_p, hi_p = stats["melody_range"]
    if hi_p - lo_p < 7:
        lo_p, hi_p = max(0, lo_p - 4), min(127, hi_p + 4)
    melody["range"] = [lo_p, hi_p]
    out["melody"] = melody
    return out
