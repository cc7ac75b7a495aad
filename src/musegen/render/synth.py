"""SoundFont synthesis: ``Score`` -> stereo float32 audio.

The default backend is symusic's built-in SoundFont synthesizer (fast: about
0.4 s for three minutes of five-part music on one core).  ``"fluidsynth"``
runs the FluidSynth command-line program when it is installed; it is slower
but renders release envelopes and its own reverb/chorus.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from musegen import limits
from musegen.errors import OutOfMemoryError, ParameterError, RenderError, SoundFontError
from musegen.memory import address_space_left, check_fits

BACKENDS = ("symusic", "fluidsynth")
DEFAULT_SOUNDFONT = "TimGM6mb.sf2"
#: symusic's mix peaks well above full scale for dense scores: leave headroom
#: here and let the post chain set the final loudness.
HEADROOM_GAIN = 0.35
MIN_SR, MAX_SR = 8000, 192000
#: Default of the ``soundfont_bytes`` limit (see :mod:`musegen.limits`; ``MUSEGEN_MAX_SOUNDFONT_BYTES``).
MAX_SOUNDFONT_BYTES = limits.LIMITS["soundfont_bytes"].default


def default_soundfont() -> Path:
    """The bundled General MIDI SoundFont."""
    return Path(str(resources.files("musegen") / "render" / "soundfonts" / DEFAULT_SOUNDFONT))


def resolve_soundfont(ref: str | os.PathLike[str] | None) -> Path:
    """Path of a usable SoundFont; ``None`` or ``"default"`` is the bundled one.

    Raises
    ------
    SoundFontError
        When the file is missing or is not a RIFF ``sfbk`` (SF2/SF3) file.
    """
    if ref is None or str(ref) == "default":
        return default_soundfont()
    path = Path(ref).expanduser()
    if not path.exists():
        raise SoundFontError(f"soundfont {str(ref)!r} does not exist")
    if not path.is_file():
        raise SoundFontError(f"soundfont {str(ref)!r} is not a regular file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        raise SoundFontError(f"cannot read soundfont {str(ref)!r}: {exc.strerror or exc}") from None
    limits.check("soundfont_bytes", size, what=f"soundfont {str(ref)!r} is {size} bytes", error=SoundFontError)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise SoundFontError(f"soundfont {str(ref)!r} is not an SF2/SF3 file (no RIFF sfbk header)")
    from musegen.render.sf2check import check_soundfont

    check_soundfont(path, name=str(ref))
    return path


def _symusic_synth(path: str, sample_rate: int):
    """A fresh synthesizer, for the layers of one score and then dropped.

    Never reuse one across scores: an instance keeps the samples it has
    loaded and shares them between drum kits, so a kit's note can play with
    the sample another kit loaded before (key 49 on kit 8, then on kit 25)
    and a render would depend on what the process rendered earlier.  Building
    one takes under a millisecond; reloading the samples 5-15 ms per score
    (``scripts/bench_render_synth.py`` measures it).
    """
    from symusic import Synthesizer

    from musegen.render.sf2root import font_for_symusic

    path = font_for_symusic(path)  # symusic ignores per-zone root keys: give it a font that needs none
    try:
        return Synthesizer(path, sample_rate=sample_rate)
    except Exception as exc:  # the C++ loader raises plain RuntimeErrors
        if "error mapping file" in str(exc).lower() and address_space_left() is not None:
            # it maps the font; resolve_soundfont has read it, so under ulimit -v this is memory
            raise OutOfMemoryError(f"out of memory: mapping soundfont {path!r} failed under the "
                                   f"address-space limit (ulimit -v)") from None
        raise SoundFontError(f"soundfont {path!r} could not be loaded: {exc}") from None


#: velocity layers: symusic's synthesizer plays every note at full velocity, so notes are
#: grouped by velocity, each group rendered on its own and mixed with a velocity gain.
#: Four bands (about 3 dB apart at the loud end) keep dynamics and role balance; every
#: band costs a full render, so more bands trade speed for finer steps.
VELOCITY_EDGES = (1, 48, 72, 96, 128)
VELOCITY_EXPONENT = 1.6  # amplitude ~ (velocity / 127) ** 1.6: velocity 64 is about -9.5 dB


def _velocity_layers(score, tracks: "set[int] | None" = None) -> list[tuple[float, object]]:
    """``(gain, sub-score)`` per velocity band that has notes.

    With ``tracks`` (indices into ``score.tracks``) the sub-scores hold only
    those tracks' notes, in the bands the whole score's notes decided: a part
    is then rendered exactly as it sounds in the mix (the bands a part of few
    notes would choose alone can differ, and so would its loudness).
    """
    from symusic import Note, Score, Track

    bands: dict[int, list[tuple[int, dict]]] = {}
    edges = np.asarray(VELOCITY_EDGES)
    for ti, trk in enumerate(score.tracks):
        cols = trk.notes.numpy()
        if len(cols["velocity"]) == 0:
            continue
        band = np.clip(np.searchsorted(edges, cols["velocity"], side="right") - 1, 0, len(edges) - 2)
        for b in np.unique(band):
            m = band == b
            bands.setdefault(int(b), []).append((ti, {k: np.ascontiguousarray(v[m]) for k, v in cols.items()}))
    # each render costs about the same whatever its note count, so a band with few notes
    # joins its louder neighbour
    total = sum(len(c["time"]) for parts in bands.values() for _, c in parts)
    for b in sorted(bands):
        count = sum(len(c["time"]) for _, c in bands[b])
        louder = [k for k in sorted(bands) if k > b]
        if louder and count < 0.04 * total:
            bands[louder[0]] = bands.pop(b) + bands[louder[0]]
    layers = []
    for b, parts in sorted(bands.items()):
        if tracks is not None:
            parts = [(ti, cols) for ti, cols in parts if ti in tracks]
            if not parts:
                continue
        sub = Score(score.ticks_per_quarter)
        sub.tempos = score.tempos.copy()
        sub.time_signatures = score.time_signatures.copy()
        for ti, cols in parts:
            src = score.tracks[ti]
            trk = Track(name=src.name, program=src.program, is_drum=src.is_drum)
            trk.notes = Note.from_numpy(cols["time"], cols["duration"], cols["pitch"], cols["velocity"])
            sub.tracks.append(trk)
        mid = (VELOCITY_EDGES[b] + VELOCITY_EDGES[b + 1] - 1) / 2.0
        layers.append(((mid / 127.0) ** VELOCITY_EXPONENT, sub))
    return layers


#: address space a symusic render takes beyond its buffers (voices, the font's samples in use)
SYNTH_MARGIN_BYTES = 32 << 20


def _layer_bytes(seconds: float, sample_rate: int) -> int:
    """Bytes of one stereo float32 render of ``seconds`` (plus a second of release)."""
    return int((seconds + 1.0) * sample_rate) * 2 * 4


def _render_symusic(score, sf: Path, sample_rate: int, gain: float,
                    parts: tuple[tuple[int, ...], ...] = ()) -> tuple[np.ndarray, list[np.ndarray]]:
    """Mix of the velocity layers, scaled by ``gain``, as a ``(2, n)`` view, and each of ``parts``.

    A part (indices into ``score.tracks``) is rendered after the mix with the
    same synthesizer, the mix's velocity bands and ``gain``, and cut or padded
    to the mix's length, so the parts add up to the mix (the synthesizer is
    linear in its notes; a drum kit's note plays the sample the mix's render
    loaded).

    The layers render one after another: symusic holds the GIL while it
    synthesizes, so threads only add overhead.  Each layer is scaled and added
    in place into the longest buffer so far, because allocating a fresh
    full-length array costs more than the arithmetic on it, and is dropped
    before the next renders: at most two layers are held at once (four would
    be about 5 GB for an hour of 44.1 kHz audio).
    """
    from musegen.render.hangs import avoid_hangs

    if "tick" not in str(score.ttype).lower():
        score = score.to("tick")
    score, _ = avoid_hangs(score, sf)  # notes that would never return from synth.render
    layers = _velocity_layers(score)  # render_score has checked there are notes
    # a synthesizer of this call's own: what it loads depends on this score alone
    synth = _symusic_synth(str(sf), sample_rate)
    # symusic aborts the process when an allocation fails (std::bad_alloc is not caught), so a
    # render is refused beforehand when it cannot fit: it peaks at twice its output (measured),
    # beside the mix held so far, which the address space in use already counts
    seconds = score_seconds(score)
    need = 2 * _layer_bytes(seconds, sample_rate) + SYNTH_MARGIN_BYTES
    what = f"synthesizing {seconds:.0f} s of audio at {sample_rate} Hz"
    mix = _mix_layers(synth, layers, gain, need, what)
    outs = []
    for tracks in parts:
        part = _mix_layers(synth, _velocity_layers(score, set(tracks)), gain, need, what)
        outs.append(_fit_frames(part, mix.shape[0]).T)
    return mix.T, outs


def _fit_frames(y: "np.ndarray | None", n: int) -> np.ndarray:
    """An ``(frames, 2)`` render cut or zero-padded to ``n`` frames (``None``: silence)."""
    if y is None:
        return np.zeros((n, 2), dtype=np.float32)
    if y.shape[0] >= n:
        return y[:n]
    return np.concatenate([y, np.zeros((n - y.shape[0], y.shape[1]), dtype=np.float32)])


def _mix_layers(synth, layers, gain: float, need: int, what: str) -> "np.ndarray | None":
    """The layers rendered, scaled by their gain and ``gain`` and added, as ``(frames, 2)``."""
    mix = None
    for g, sub in layers:
        check_fits(need, what=what)
        try:
            # symusic returns (channels, n) in Fortran order: its transpose is a C-ordered (n, 2)
            part = np.asarray(synth.render(sub, stereo=True), dtype=np.float32).T
        except Exception as exc:
            raise RenderError(f"synthesis failed: {exc}") from None
        if not part.flags.writeable:
            part = part.copy()
        part *= np.float32(g * gain)
        if mix is None:
            mix = part
        elif part.shape[0] > mix.shape[0]:
            part[: mix.shape[0]] += mix
            mix = part
        else:
            mix[: part.shape[0]] += part
        del part
    return mix


def _render_fluidsynth_parts(score, sf: Path, sample_rate: int,
                             parts: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The mix and each part (its tracks alone, cut or padded to the mix's length) through FluidSynth."""
    from symusic import Score

    def stereo(y):
        return np.repeat(y, 2, axis=0) if y.shape[0] == 1 else y

    mix = stereo(_render_fluidsynth(score, sf, sample_rate))
    outs = []
    for tracks in parts:
        sub = Score(score.ticks_per_quarter)
        sub.tempos = score.tempos.copy()
        sub.time_signatures = score.time_signatures.copy()
        for ti in tracks:
            sub.tracks.append(score.tracks[ti].copy())
        y = stereo(_render_fluidsynth(sub, sf, sample_rate)).T if any(len(t.notes) for t in sub.tracks) else None
        outs.append(np.ascontiguousarray(_fit_frames(y, mix.shape[1]).T))
    return mix, outs


def _render_fluidsynth(score, sf: Path, sample_rate: int) -> np.ndarray:
    import soundfile as sf_io

    exe = shutil.which("fluidsynth")
    if exe is None:
        raise RenderError("the fluidsynth backend needs the FluidSynth program (e.g. apt install fluidsynth)")
    with tempfile.TemporaryDirectory(prefix="musegen-fs-") as tmp:
        mid = os.path.join(tmp, "in.mid")
        wav = os.path.join(tmp, "out.wav")
        score.dump_midi(mid)
        # argv list, never a shell; absolute paths, so a file named "-F..." is not read as an option
        cmd = [exe, "-ni", "-q", "-g", "1.0", "-r", str(sample_rate), "-F", wav, os.path.abspath(sf), mid]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=3600, check=False)
        except subprocess.TimeoutExpired:
            raise RenderError("fluidsynth took longer than an hour") from None
        if proc.returncode != 0 or not os.path.exists(wav):
            msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RenderError(f"fluidsynth failed: {msg[-1] if msg else proc.returncode}")
        data, _ = sf_io.read(wav, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def score_seconds(score) -> float:
    """Length of a score in seconds, up to its last note's end (any time unit)."""
    from musegen.midi.timing import tempo_map, ticks_to_seconds

    unit = str(score.ttype).lower()
    if "second" in unit:
        return float(score.end())
    if "quarter" in unit:
        score = score.to("tick")
    return float(ticks_to_seconds(score.end(), tempo_map(score), score.ticks_per_quarter))


def render_score(
    score,
    *,
    sample_rate: int = 44100,
    soundfont: str | os.PathLike[str] | None = None,
    gain_db: float = 0.0,
    tail_seconds: float = 0.0,
    backend: str = "symusic",
) -> np.ndarray:
    """Synthesize a score to stereo audio (:func:`render_parts` renders its parts as well).

    Parameters
    ----------
    score : symusic.Score
        Any time unit; drum tracks (``is_drum``, MIDI channel 10) use the kit.
    sample_rate : int
        Output rate in Hz (8000-192000; 44100 or 48000 are usual).
    soundfont : path or None
        An ``.sf2``/``.sf3`` file; ``None`` uses the bundled GM SoundFont.
    gain_db : float
        Extra gain applied after the fixed headroom.
    tail_seconds : float
        Silence appended after the last note so that effects can ring out.
    backend : {"symusic", "fluidsynth"}

    Returns
    -------
    np.ndarray, shape (2, n), float32
        Possibly a Fortran-ordered view (no copy is made to reorder it:
        :func:`musegen.audio.as_audio` does where an effect needs it).  Peaks are kept below 0 dBFS by a fixed headroom gain, and by peak
        normalisation to -1 dBFS if a dense score still exceeds it.
    """
    return render_parts(score, (), sample_rate=sample_rate, soundfont=soundfont, gain_db=gain_db,
                        tail_seconds=tail_seconds, backend=backend)[0]


def render_parts(
    score,
    parts: "tuple[tuple[int, ...], ...]",
    *,
    sample_rate: int = 44100,
    soundfont: str | os.PathLike[str] | None = None,
    gain_db: float = 0.0,
    tail_seconds: float = 0.0,
    backend: str = "symusic",
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The mix of :func:`render_score` and each part of it, rendered alike: the parts add up to the mix.

    Parameters
    ----------
    score : symusic.Score
    parts : tuple of tuple of int
        Each part's tracks (indices into ``score.tracks``).
    sample_rate, soundfont, gain_db, tail_seconds, backend
        As for :func:`render_score`.

    Returns
    -------
    mix : np.ndarray, shape (2, n), float32
        What :func:`render_score` returns for these arguments.
    parts : list of np.ndarray, shape (2, n), float32
        One per part, with the mix's velocity bands (decided over the whole
        score), gain and peak normalisation and the same length.  Their sum
        is the mix to float rounding (symusic; FluidSynth's voice limits may
        make it differ a little).
    """
    parts = tuple(tuple(int(i) for i in tracks) for tracks in parts)
    if backend not in BACKENDS:
        raise ParameterError(f"render backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not isinstance(sample_rate, int) or not MIN_SR <= sample_rate <= MAX_SR:
        raise ParameterError(f"sample rate must be between {MIN_SR} and {MAX_SR} Hz, got {sample_rate!r}")
    sf = resolve_soundfont(soundfont)
    if sum(len(t.notes) for t in score.tracks) == 0:
        raise RenderError("nothing to render: the MIDI holds no notes")
    # before synthesis: every second costs 8 bytes a frame per velocity layer held
    seconds = score_seconds(score)
    limits.check("audio_seconds", seconds, what=f"the score lasts {seconds:.0f} s")
    samples = int((seconds + max(0.0, float(tail_seconds))) * sample_rate) * 2
    limits.check("audio_samples", samples, what=f"the score makes {samples:,} samples at {sample_rate} Hz")
    gain = 10.0 ** (gain_db / 20.0)
    if backend == "symusic":
        audio, stems = _render_symusic(score, sf, sample_rate, HEADROOM_GAIN * gain, parts)
    else:
        audio, stems = _render_fluidsynth_parts(score, sf, sample_rate, parts)
        audio *= np.float32(gain)
        for y in stems:
            y *= np.float32(gain)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise RenderError("synthesis produced no audio")
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    # a sum is finite only when every sample is, and needs no boolean temporary
    if not np.isfinite(audio.sum(dtype=np.float64)):
        raise RenderError("synthesis produced non-finite samples (a broken SoundFont?)")
    peak = max(float(audio.max()), -float(audio.min()))
    ceiling = 10.0 ** (-1.0 / 20.0)
    if peak > ceiling:
        audio *= np.float32(ceiling / peak)
        for y in stems:  # the mix's gain, not their own: they still add up to it
            y *= np.float32(ceiling / peak)
    if tail_seconds > 0:
        check_fits((audio.nbytes + _layer_bytes(tail_seconds, sample_rate)) * (1 + len(stems)),
                   what=f"adding a {tail_seconds:g} s tail to {audio.shape[1] / sample_rate:.0f} s of audio")
        pad = np.zeros((audio.shape[0], int(round(tail_seconds * sample_rate))), dtype=np.float32)
        audio = np.concatenate([audio, pad], axis=1)
        stems = [np.concatenate([y, pad], axis=1) for y in stems]
    return audio, stems
