"""Writing a piece from nothing: form, harmony, melody, then every role's part.

:func:`compose` is the from-scratch path of the engine; :func:`write_parts`
also serves continuations, which give it their own chord spans and phrases.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from musegen.engines.procedural import accompaniment, bass, counterpoint, drums, groove
from musegen.engines.procedural.arrange import Part, clip, monophonic
from musegen.engines.procedural.form import Phrase, plan_form
from musegen.engines.procedural.harmony import ChordSpan, harmonize, plan_chords
from musegen.engines.procedural.melody import MelodySpec, generate_melody
from musegen.engines.procedural.meter import Grid
from musegen.engines.procedural.theory import scale_pcs
from musegen.presets import Preset

_CHORALE_NAMES = ("Soprano", "Alto", "Tenor", "Bass")
_POLY_NAMES = ("Cantus", "Altus", "Tenor", "Bassus")


def melody_scale(preset: Preset, mode: str) -> str:
    """The preset's melody scale, adapted when the request's mode differs from the preset's (a seed's key).

    A pentatonic scale follows the mode's third; a seven-note scale gives way to the mode itself.
    """
    scale = preset.scale or mode
    if preset.scale is None or mode == preset.mode or scale in ("blues", "chromatic"):
        return scale
    if scale.startswith("pentatonic"):
        return "pentatonic-major" if mode in ("major", "lydian", "mixolydian") else "pentatonic-minor"
    return mode


@dataclass
class Settings:
    """Everything resolved for one variation."""

    preset: Preset
    grid: Grid
    tonic: int
    mode: str
    rng: random.Random
    temperature: float = 1.0
    bass_pattern: str | None = None
    fills: bool = True
    ending: bool = True
    swing_unit: str | None = None
    skip_roles: set[str] = field(default_factory=set)

    @property
    def mode_pcs(self) -> tuple[int, ...]:
        return scale_pcs(self.tonic, self.mode)

    @property
    def melody_pcs(self) -> tuple[int, ...]:
        return scale_pcs(self.tonic, melody_scale(self.preset, self.mode))

    def velocity(self, role: str) -> int:
        base = self.preset.groove.velocity
        return max(1, min(127, base + {"lead": 0, "harmony": -14, "pad": -26, "bass": -6, "drums": 0}[role]))


def melody_spec(s: Settings, *, chorale: bool = False, lo: int | None = None, hi: int | None = None) -> MelodySpec:
    m, g = s.preset.melody, s.preset.groove
    return MelodySpec(rhythm=m.rhythm, lo=m.range[0] if lo is None else lo, hi=m.range[1] if hi is None else hi,
                      scale=s.melody_pcs, tonic=s.tonic, leap=m.leap, repetition=m.repetition,
                      density=g.density, velocity=s.velocity("lead"), chorale=chorale)


def _chorale(s: Settings, phrases: list[Phrase], roles: list[str]):
    """Soprano first, chords under it, then alto, tenor and bass."""
    g = s.grid
    soprano = generate_melody(g, phrases, None, melody_spec(s, chorale=True), s.rng, s.temperature)
    soprano = monophonic(soprano)
    on_beat = [n for n in soprano if (n[0] - g.origin) % g.beat == 0]
    slots = []
    for i, n in enumerate(on_beat):
        end = on_beat[i + 1][0] if i + 1 < len(on_beat) else g.end
        ph = next(p for p in phrases if g.bar_start(p.start_bar) <= n[0] < g.bar_start(p.end_bar))
        last = i + 1 == len(on_beat) or on_beat[i + 1][0] >= g.bar_start(ph.end_bar)
        slots.append([n[0], end, n[2], ph.cadence if last else None])
    chords = harmonize([x[2] for x in slots], [x[3] for x in slots], tonic=s.tonic, mode=s.mode,
                       progressions=s.preset.harmony.progressions, rng=s.rng, temperature=s.temperature)
    spans = [ChordSpan(a, b, c, cad) for (a, b, _, cad), c in zip(slots, chords)]
    voices = counterpoint.satb([counterpoint.Slot(a, b, c, p, cad) for (a, b, p, cad), c in zip(slots, chords)],
                               tonic=s.tonic, scale=s.mode_pcs, rng=s.rng, temperature=s.temperature,
                               velocity=s.velocity("lead") - 8, passing=0.25 + 0.3 * s.preset.groove.density)
    return soprano, spans, voices


def write_parts(s: Settings, phrases: list[Phrase], spans: list[ChordSpan] | None, roles: list[str],
                *, lead: list | None = None) -> tuple[list[Part], list[ChordSpan], dict]:
    """Parts for ``roles`` over ``phrases`` (chords from ``spans``, or planned here when None)."""
    p, g = s.preset, s.grid
    inst = p.instruments
    style = p.harmony.chord_style
    parts: list[Part] = []
    info: dict = {}
    if style == "chorale" and spans is None:
        soprano, spans, (alto, tenor, bass_voice) = _chorale(s, phrases, roles)
        hp = inst.harmony if inst.harmony is not None else (inst.lead if inst.lead is not None else 52)
        if "lead" in roles:
            parts.append(Part("Soprano", "lead", inst.lead, notes=soprano))
        else:
            parts.append(Part("Soprano", "harmony", hp, notes=soprano))
        parts.append(Part("Alto", "harmony", hp, notes=alto))
        parts.append(Part("Tenor", "harmony", hp, notes=tenor))
        if "bass" in roles:
            parts.append(Part("Bass", "bass", inst.bass, notes=bass_voice))
        else:
            parts.append(Part("Bass", "harmony", hp, notes=bass_voice))
        roles = [r for r in roles if r in ("pad", "drums")]
    if spans is None:
        spans = plan_chords(g, phrases, progressions=p.harmony.progressions,
                            chords_per_bar=p.harmony.chords_per_bar, extensions=p.harmony.extensions,
                            style=p.style, tonic=s.tonic, mode=s.mode, rng=s.rng, temperature=s.temperature,
                            source_mode=p.mode)
    need_lead = "lead" in roles or (style == "polyphony" and "harmony" in roles)
    if need_lead and lead is None:
        lead = generate_melody(g, phrases, spans, melody_spec(s), s.rng, s.temperature)
        lead = monophonic(lead)
    if "lead" in roles:
        name = _POLY_NAMES[0] if style == "polyphony" else "Lead"
        parts.append(Part(name, "lead", inst.lead, notes=lead))
    took_bass = False
    if "harmony" in roles:
        vel = s.velocity("harmony")
        if style == "polyphony":
            ranges = [counterpoint.VoiceRange("Altus", 53, 72), counterpoint.VoiceRange("Tenor", 47, 65)]
            if "bass" in roles:
                ranges.append(counterpoint.VoiceRange("Bassus", 38, 57, bass=True))
                took_bass = True
            voices = counterpoint.imitative_voices(lead, g, phrases, spans, ranges, scale=s.mode_pcs, rng=s.rng,
                                                   temperature=s.temperature, velocity=vel + 8,
                                                   leap=p.melody.leap)
            if "lead" not in roles:
                parts.append(Part(_POLY_NAMES[0], "harmony", inst.harmony, notes=lead))
            for vr, notes in zip(ranges, voices):
                role = "bass" if vr.bass else "harmony"
                parts.append(Part(vr.name, role, inst.bass if vr.bass else inst.harmony, notes=monophonic(notes)))
        else:
            mel_lo = p.melody.range[0]
            kw = {}
            if style in ("block", "sustained", "stabs"):
                # chords sit under the tune, leaving its register to the lead (and the pad)
                kw = {"lo": 48, "hi": max(62, min(72, mel_lo + 4))}
                if p.style == "cinematic":
                    kw = {"lo": 43, "hi": 62}   # low strings drive the ostinato under choir and horn
                if style == "sustained":
                    kw["spread"] = "pad" in roles   # open voicing, apart from the pad's close one
            elif style == "arpeggio":
                kw = {"lo": 60 if p.style in ("electronic", "game") else 52}
            notes = accompaniment.accompany(style, spans, g, rng=s.rng, density=p.groove.density, velocity=vel,
                                            temperature=s.temperature, preset_style=p.style,
                                            with_bass="bass" in roles, **kw)
            parts.append(Part("Harmony", "harmony", inst.harmony, notes=notes))
    if "pad" in roles:
        lo = max(52, p.melody.range[0] - 14)   # a bed under the tune
        notes = accompaniment.sustained(spans, g, velocity=s.velocity("pad"), lo=lo, hi=lo + 17, voices=3)
        parts.append(Part("Pad", "pad", inst.pad, notes=notes))
    if "bass" in roles and not took_bass:
        pattern = s.bass_pattern or bass.default_pattern(p.style, p.groove.drum_pattern, style)
        info["bass_pattern"] = pattern
        notes = bass.bass_line(pattern, spans, g, rng=s.rng, velocity=s.velocity("bass"), scale=s.mode_pcs,
                               tonic=s.tonic, density=p.groove.density, temperature=s.temperature)
        parts.append(Part("Bass", "bass", inst.bass, notes=monophonic(notes)))
    if "drums" in roles and p.groove.drum_pattern != "none":
        notes = drums.drum_part(p.groove.drum_pattern, g, phrases, rng=s.rng, velocity=s.velocity("drums"),
                                density=p.groove.density, temperature=s.temperature, fills=s.fills,
                                ending=s.ending)
        parts.append(Part("Drums", "drums", inst.drums, is_drum=True, notes=notes))
    return parts, spans, info


def perform(parts: list[Part], s: Settings) -> None:
    """Swing and humanize every part in place, keeping notes inside the grid."""
    p, g = s.preset, s.grid
    unit = s.swing_unit or ("sixteenth" if p.groove.drum_pattern == "boom-bap" else "eighth")
    for part in parts:
        notes = groove.swing(part.notes, g, p.groove.swing, unit=unit)
        notes = groove.humanize(notes, g, p.groove.humanize, s.rng, timing=0.5 if part.is_drum else 1.0)
        part.notes = clip(notes, g.start, g.end)


def compose(s: Settings) -> tuple[list[Part], dict]:
    """All of the preset's roles for ``s.grid.bars`` bars."""
    p = s.preset
    phrases = plan_form(s.grid.bars, p.melody.phrase_bars, p.style)
    roles = [r for r in p.instruments.roles() if r not in s.skip_roles]
    parts, spans, info = write_parts(s, phrases, None, roles)
    perform(parts, s)
    by_label: dict[str, list[str]] = {}
    for ph in phrases:
        if ph.label not in by_label:
            a, b = s.grid.bar_start(ph.start_bar), s.grid.bar_start(ph.end_bar)
            by_label[ph.label] = [sp.chord.symbol for sp in spans if a <= sp.start < b]
    info.update({
        "progression": by_label[phrases[0].label],
        "progressions": by_label,
        "roles": {r: getattr(p.instruments, r) for r in roles},
        "form": "".join(ph.label for ph in phrases),
        "phrases": [{"label": ph.label, "start_bar": ph.start_bar, "bars": ph.bars, "cadence": ph.cadence}
                    for ph in phrases],
        "chords": [{"tick": sp.start, "chord": sp.chord.symbol} for sp in spans],
    })
    return parts, info
