"""Stems: one WAV and one MIDI file per part, beside the mix, that add up to the mix before mastering.

Layout: ``<stem>.stems/<role>-<instrument>.wav`` and ``.mid`` (``lead-flute``,
``drums-standard-kit``) in a folder of their own beside ``<stem>.wav``, so a
DAW user drags the folder's WAVs in at once and gets one track per part,
named by role and instrument, all starting at 0 (32-bit float WAVs, the
mix's rate and length).

Each part is rendered with the mix's SoundFont, velocity bands, gain and
peak normalisation (:func:`musegen.render.synth.render_parts`) and goes
through the mix's post chain on a :class:`Bus`: linear steps (gain, fades,
filters, reverb, resampling, a loop's fold) run on it as on the mix, a trim
cuts it where it cut the mix, and the mastering steps (``loudness``,
``peak_normalize``) run on the mix only.  The stems are therefore at the
mix's level before mastering: summed, they are the pre-master mix (to float
rounding), and a DAW user masters them as one bus.  Steps that are not
linear in the signal (``tempo``, ``stretch``, ``pitch_shift``: a phase
vocoder and a loudness match) would break that sum and are refused with
``--stems``.

An audio engine (MusicGen) makes no separated stems: where the call has a
MIDI seed, its parts are written (rendered and processed alike, cut to the
mix's length), and the sidecar says plainly that they are the seed's parts,
not the audio's.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from musegen.errors import OutputError, ParameterError

if TYPE_CHECKING:
    from musegen.pipeline.planning import Job

log = logging.getLogger("musegen")

#: the folder of a result's stems, beside ``<stem>.wav``
FOLDER = "{stem}.stems"
#: steps applied to the mix only (the master bus)
MASTERING = ("loudness", "peak_normalize")
#: steps whose output is not the sum of their outputs for the parts: refused with stems
NONLINEAR = ("tempo", "stretch", "pitch_shift")
#: track names taken as the part's role as they are
ROLE_NAMES = ("lead", "melody", "harmony", "bass", "drums", "pad", "chords", "counter", "arp")
#: analysis roles (:func:`musegen.midi.tracks.describe_tracks`) -> the roles musegen's presets name
_PRESET_ROLE = {"melody": "lead"}


def asked(flag: bool | None, preset) -> bool:
    """Whether stems are asked for: ``flag`` (``--stems``/``--no-stems``), else the preset's ``[render] stems``."""
    return bool(preset.render.stems) if flag is None else bool(flag)


def wanted(job: "Job") -> bool:
    """Whether ``job`` writes stems (:func:`asked`)."""
    return asked(job.args.stems, job.preset)


def folder(out: Path, stem: str) -> Path:
    return out / FOLDER.format(stem=stem)


def check_plan(steps: list[dict[str, Any]], out: Path, names: list[str], inputs: list[Any]) -> None:
    """Before the engine runs: refuse a chain the stems cannot follow, or a stems folder holding an input.

    ``names`` are the results' file stems, ``inputs`` the call's input files (``None`` skipped).

    Raises
    ------
    ParameterError
        Naming the step (``post[2] (pitch_shift)``) or the input.
    """
    from musegen.outputs import check_outputs

    for i, step in enumerate(steps):
        if step["op"] in NONLINEAR:
            raise ParameterError(
                f"--stems cannot follow post[{i}] ({step['op']}): it is not linear in the signal, so the "
                "stems would not add up to the mix; drop the step or leave out --stems")
    ins = [p for p in inputs if isinstance(p, (str, os.PathLike))]
    check_outputs([], ins, folders=[folder(out, name) for name in names])


@dataclass(frozen=True)
class Part:
    """One stem: a track of the score (``name`` is its file name, ``<role>-<instrument>``)."""

    name: str
    role: str
    instrument: str
    tracks: tuple[int, ...]
    track_names: tuple[str, ...]
    notes: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "instrument": self.instrument,
                "tracks": list(self.track_names), "notes": self.notes}


def parts_of(score) -> list[Part]:
    """The parts of ``score``: one per track with notes, named by role and GM instrument.

    A track named after a role (``Lead``, ``bass``) keeps it; any other name
    gets the role :func:`~musegen.midi.tracks.describe_tracks` guesses (the
    name itself could be anything, ``../x`` or empty).  Two parts of one
    role and instrument are told apart as ``-2``, ``-3``.
    """
    from musegen.midi.gm import program_name
    from musegen.midi.tracks import describe_tracks
    from musegen.outputs import safe_stem

    infos = describe_tracks(score)
    parts: list[Part] = []
    seen: dict[str, int] = {}
    for ti, (trk, info) in enumerate(zip(score.tracks, infos)):
        if len(trk.notes) == 0:
            continue
        word = trk.name.strip().lower()
        role = word if word in ROLE_NAMES else info.role
        role = _PRESET_ROLE.get(role, role)
        instrument = program_name(trk.program, is_drum=trk.is_drum)
        name = safe_stem(f"{role}-{instrument}", max_len=80)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        parts.append(Part(name, role, instrument, (ti,), (trk.name,), len(trk.notes)))
    return parts


def part_score(score, part: Part):
    """A copy of ``score`` with only ``part``'s tracks (tempo, meter and key events kept)."""
    from symusic import Score

    sub = Score(score.ticks_per_quarter)
    sub.tempos = score.tempos.copy()
    sub.time_signatures = score.time_signatures.copy()
    sub.key_signatures = score.key_signatures.copy()
    sub.markers = score.markers.copy()
    for ti in part.tracks:
        sub.tracks.append(score.tracks[ti].copy())
    return sub


class Bus:
    """The mix and its stems taken through the same steps.

    ``map`` runs a step that is linear and depends on nothing but the
    signal's length (a cut to length, a loop's fold) on every signal;
    ``chain`` runs post-chain steps: linear ones on every signal, ``trim``
    on the mix with the stems cut at the same samples, :data:`MASTERING`
    steps on the mix only.  With no stems it is the plain chain.
    """

    def __init__(self, mix, stems=()):
        self.mix = mix
        self.stems = list(stems)

    def map(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.mix = func(self.mix, *args, **kwargs)
        self.stems = [func(y, *args, **kwargs) for y in self.stems]

    def chain(self, steps: list[dict[str, Any]], *, sr: int) -> int:
        """Run ``steps``; returns the rate after them."""
        from musegen.audio.chain import apply_chain
        from musegen.audio.effects import trim_bounds

        if not self.stems:
            self.mix, sr = apply_chain(self.mix, sr=sr, steps=steps)
            return sr
        for step in steps:
            op = step["op"]
            cut = None
            if op == "trim":
                cut = trim_bounds(self.mix, sr=sr, **{k: v for k, v in step.items() if k != "op"})
            self.mix, sr_after = apply_chain(self.mix, sr=sr, steps=[step])
            if cut is not None:
                self.stems = [y[:, cut[0]:cut[1]].copy() for y in self.stems]
            elif op not in MASTERING:
                self.stems = [apply_chain(y, sr=sr, steps=[step])[0] for y in self.stems]
            sr = sr_after
        return sr


@dataclass
class Stems:
    """The stems of one result as rendered: the parts, their audio (as long as the mix's) and where from."""

    parts: list[Part]
    audio: list[Any]
    score: Any             # the score the parts come from
    source: str            # "score" (the result's own) or "midi seed"


def render(job: "Job", item, score, mix, *, sr: int) -> Stems | None:
    """The parts of a result rendered for the bus, or ``None`` where there are none to write.

    ``score`` is the result's own score (MIDI engines: ``mix`` was rendered
    from it with the same settings, and the stems add up to it); for an
    audio engine (``item.audio``) the call's MIDI seed is used, when there is one.
    """
    from musegen.pipeline.planning import TAIL_SECONDS
    from musegen.render.synth import render_parts

    if item.audio is None:
        source, src = "score", score
    elif score is not None or job.request.seed is not None:  # an audio engine's score is its seed's
        source, src = "midi seed", score if score is not None else job.request.seed
    else:
        log.info("musegen: note: engine %r makes audio with no separated stems and the call has no MIDI "
                 "seed to take parts from: no stems written", job.engine_name)
        return None
    parts = parts_of(src)
    if not parts:
        return None
    _, audio = render_parts(src, tuple(p.tracks for p in parts), sample_rate=sr, soundfont=job.soundfont,
                            gain_db=job.preset.render.gain_db, tail_seconds=TAIL_SECONDS)
    if source != "score":  # the seed's render is not the audio's: cut or pad it to the mix's length
        import numpy as np

        n = mix.shape[1]
        audio = [y[:, :n] if y.shape[1] >= n else np.pad(y, ((0, 0), (0, n - y.shape[1]))) for y in audio]
    return Stems(parts, audio, src, source)


def record(job: "Job", stems: Stems | None, audio: list[Any], *, result_stem: str, steps: list[dict[str, Any]],
           from_audio: bool, sr: int, mix_lufs: float) -> dict[str, Any]:
    """The sidecar's ``analysis.stems``: what the stems are, and how they relate to the mix.

    ``from_audio``: the engine made audio (the mix is not rendered from a score).  For
    stems of the result's own score, ``master_gain_db`` is how much louder (LUFS) the
    mastered mix is than the stems' sum: the gain a master bus needs to match it.
    """
    from musegen.audio.analysis import loudness_lufs, peak_dbfs

    mastering = [s["op"] for s in steps if s["op"] in MASTERING]
    base = {"folder": FOLDER.format(stem=result_stem), "layout": "<folder>/<role>-<instrument>.wav and .mid",
            "mastering_on_mix_only": mastering, "level": "the mix's before mastering (no master gain)"}
    if stems is None and from_audio:
        return {**base, "separated": False, "source": None, "parts": [],
                "note": f"engine {job.engine_name!r} makes audio with no separated stems, and there is no "
                        "MIDI seed to take parts from: no stems were written"}
    if stems is None:
        return {**base, "separated": False, "source": None, "parts": [], "note": "no parts with notes"}
    parts = [{**p.to_dict(), "wav": f"{base['folder']}/{p.name}.wav", "mid": f"{base['folder']}/{p.name}.mid",
              "peak_dbfs": round(max(-120.0, float(peak_dbfs(y))), 2)} for p, y in zip(stems.parts, audio)]
    if stems.source == "score":
        import numpy as np

        summed = float(loudness_lufs(np.sum(audio, axis=0), sr=sr))
        gain = round(mix_lufs - summed, 2) if np.isfinite(summed) and np.isfinite(mix_lufs) else None
        return {**base, "separated": True, "source": "score", "sums_to": "the mix before mastering",
                "master_gain_db": gain, "parts": parts}
    return {**base, "separated": False, "source": "midi seed", "parts": parts,
            "note": f"engine {job.engine_name!r} makes audio with no separated stems: these are the MIDI "
                    "seed's parts rendered with the SoundFont, not parts of the audio, and do not add up to it"}


def write(files, stems: Stems, audio: list[Any], *, sr: int, midi_text: str | None, metadata) -> list[Path]:
    """Write the stems into a fresh folder, then rename it to ``<stem>.stems`` (an older one is replaced).

    The folder is registered with ``files``, so a failure before the result's
    JSON is written removes it again.
    """
    import dataclasses

    from musegen.audio.io import write_audio
    from musegen.midi.io import save_midi

    final = folder(files.out_dir, files.stem)
    tmp = files.out_dir / f".{final.name}.{secrets.token_hex(4)}.tmp"
    try:
        tmp.mkdir()
        written = []
        for part, y in zip(stems.parts, audio):
            meta = None if metadata is None else dataclasses.replace(metadata, title=f"{files.stem} {part.name}")
            # 32-bit float: at the mix's level before mastering a stem may sit far below full scale, and
            # the pre-master mix may peak over it; float keeps both exactly (every DAW reads it)
            write_audio(tmp / f"{part.name}.wav", y, sr=sr, subtype="FLOAT", metadata=meta)
            save_midi(part_score(stems.score, part), tmp / f"{part.name}.mid", text=midi_text)
            written += [final / f"{part.name}.wav", final / f"{part.name}.mid"]
        if final.is_dir() and not final.is_symlink():
            old = files.out_dir / f".{final.name}.{secrets.token_hex(4)}.old"
            os.rename(final, old)
            shutil.rmtree(old, ignore_errors=True)
        elif final.exists() or final.is_symlink():
            raise OutputError(f"cannot write stems to {str(final)!r}: a file is in the way")
        os.rename(tmp, final)
    except OSError as exc:
        raise OutputError(f"cannot write stems to {str(final)!r}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files.wrote(final)
    return written
