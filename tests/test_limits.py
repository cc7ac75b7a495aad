"""Every limit refuses an input just over it, naming the limit and its variable; the variable raises it."""

from __future__ import annotations

import struct
import wave

import numpy as np
import pytest
from symusic import Note, Score, Tempo, Track

from conftest import ROOT, SAMPLES, run_cli
from musegen import limits
from musegen.errors import AudioError, MidiError, ParameterError, PlanError, PresetError, SoundFontError


def _refused(excinfo, name: str) -> None:
    text = str(excinfo.value)
    assert f"{name} limit" in text and limits.LIMITS[name].env in text, text


def test_every_limit_is_in_the_table_with_its_variable_and_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for lim in limits.LIMITS.values():
        assert lim.env == "MUSEGEN_MAX_" + lim.name.upper()
        assert limits.get(lim.name) == lim.default
        assert f"`{lim.env}`" in readme, f"README lacks {lim.env}"
    assert [row["name"] for row in limits.table()] == list(limits.LIMITS)


@pytest.mark.parametrize("value", ["abc", "-1", "0", "1.5", "nan", "inf", "1e999", "12 MB", "1__0", "_1"])
def test_a_bad_override_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("MUSEGEN_MAX_MIDI_NOTES", value)
    with pytest.raises(ParameterError, match=f"MUSEGEN_MAX_MIDI_NOTES must be a positive whole number.*{value!r}"):
        limits.get("midi_notes")


def test_good_overrides_parse(monkeypatch):
    for text, expected in (("2000", 2000), ("1_000_000", 1_000_000), (" 64 ", 64), ("1e6", 1_000_000)):
        monkeypatch.setenv("MUSEGEN_MAX_MIDI_NOTES", text)
        assert limits.get("midi_notes") == expected
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SECONDS", "90.5")
    assert limits.get("audio_seconds") == 90.5
    with pytest.raises(ParameterError, match="unknown limit"):
        limits.get("nope")


def test_bad_override_at_the_cli_is_one_error_line():
    r = run_cli("analyze", SAMPLES / "melody.mid", env={"MUSEGEN_MAX_MIDI_BYTES": "lots"})
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == ["Error: environment variable MUSEGEN_MAX_MIDI_BYTES must be a positive whole number of "
                     "bytes, got 'lots'"]


# ---------------------------------------------------------------- MIDI


def test_midi_bytes(monkeypatch, tmp_path):
    from musegen.midi.io import load_midi

    path = SAMPLES / "melody.mid"
    size = path.stat().st_size
    monkeypatch.setenv("MUSEGEN_MAX_MIDI_BYTES", str(size - 1))
    with pytest.raises(MidiError) as info:
        load_midi(path)
    _refused(info, "midi_bytes")
    monkeypatch.setenv("MUSEGEN_MAX_MIDI_BYTES", str(size))
    assert load_midi(path).note_num() > 0
    # the default, on a sparse file one byte over it: refused from its size, never read
    monkeypatch.delenv("MUSEGEN_MAX_MIDI_BYTES")
    big = tmp_path / "big.mid"
    with open(big, "wb") as fh:
        fh.write(path.read_bytes())
        fh.truncate(limits.get("midi_bytes") + 1)
    with pytest.raises(MidiError) as info:
        load_midi(big)
    _refused(info, "midi_bytes")


def _tracks_file(n: int) -> bytes:
    body = b"\x00\x90\x3c\x40\x60\x80\x3c\x00\x00\xff\x2f\x00"
    track = b"MTrk" + struct.pack(">I", len(body)) + body
    return b"MThd" + struct.pack(">IHHH", 6, 1, n, 96) + track * n


def test_midi_tracks(monkeypatch):
    from musegen.midi.io import load_midi_bytes

    default = limits.get("midi_tracks")
    with pytest.raises(MidiError) as info:
        load_midi_bytes(_tracks_file(default + 1))
    _refused(info, "midi_tracks")
    assert len(load_midi_bytes(_tracks_file(default)).tracks) >= 1
    monkeypatch.setenv("MUSEGEN_MAX_MIDI_TRACKS", str(default + 1))
    assert load_midi_bytes(_tracks_file(default + 1)).note_num() == default + 1


def test_midi_notes(monkeypatch):
    from musegen.midi.io import load_midi

    path = SAMPLES / "piano-piece.mid"
    n = load_midi(path).note_num()
    monkeypatch.setenv("MUSEGEN_MAX_MIDI_NOTES", str(n - 1))
    with pytest.raises(MidiError) as info:
        load_midi(path)
    _refused(info, "midi_notes")
    monkeypatch.setenv("MUSEGEN_MAX_MIDI_NOTES", str(n))
    assert load_midi(path).note_num() == n


def test_explicit_arguments_still_win_and_are_named():
    from musegen.midi.io import load_midi

    with pytest.raises(MidiError, match=r"over the limit of 10 \(max_notes\)"):
        load_midi(SAMPLES / "piano-piece.mid", max_notes=10)


# ---------------------------------------------------------------- generation


def _request(**kwargs):
    from musegen.pipeline import plan_request
    from musegen.presets import load_preset

    return plan_request(load_preset("pop-ballad"), **kwargs)


def test_bars(monkeypatch):
    default = limits.get("bars")
    assert _request(bars=default).bars == default
    with pytest.raises(ParameterError) as info:
        _request(bars=default + 1)
    _refused(info, "bars")
    monkeypatch.setenv("MUSEGEN_MAX_BARS", str(default + 1))
    monkeypatch.setenv("MUSEGEN_MAX_SECONDS", "1e9")
    assert _request(bars=default + 1, tempo=200).bars == default + 1


def test_seconds(monkeypatch):
    default = limits.get("seconds")
    with pytest.raises(ParameterError) as info:
        _request(seconds=default + 1)
    _refused(info, "seconds")
    with pytest.raises(ParameterError) as info:  # bars at a slow tempo can pass the seconds limit too
        _request(bars=1000, tempo=20)
    _refused(info, "seconds")
    monkeypatch.setenv("MUSEGEN_MAX_SECONDS", str(default * 2))
    monkeypatch.setenv("MUSEGEN_MAX_BARS", "1e6")
    assert _request(seconds=default + 1, tempo=400).bars > 0


def test_variations(monkeypatch):
    default = limits.get("variations")
    with pytest.raises(ParameterError) as info:
        _request(variations=default + 1)
    _refused(info, "variations")
    monkeypatch.setenv("MUSEGEN_MAX_VARIATIONS", str(default + 1))
    assert _request(variations=default + 1).variations == default + 1


def test_limits_are_checked_before_anything_is_generated(tmp_path):
    r = run_cli("generate", "--preset", "lofi-chill", "--bars", "1001", "-o", tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("Error: bars 1001, over the bars limit of 1,000 bars")
    assert "MUSEGEN_MAX_BARS" in r.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# ---------------------------------------------------------------- audio length


def _sparse_wav(path, seconds: float, sr: int = 1000) -> None:
    """A silent 16-bit mono WAV of ``seconds``; the samples are a hole in the file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(b"")
    n = int(round(seconds * sr))
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 36 + 2 * n)
    data[40:44] = struct.pack("<I", 2 * n)
    with open(path, "wb") as fh:
        fh.write(bytes(data))
        fh.truncate(44 + 2 * n)


def test_audio_seconds_when_reading(monkeypatch, tmp_path):
    from musegen.audio.io import read_audio

    default = limits.get("audio_seconds")
    path = tmp_path / "long.wav"
    _sparse_wav(path, default + 1)
    with pytest.raises(AudioError) as info:
        read_audio(path)
    _refused(info, "audio_seconds")
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SECONDS", str(default + 2))
    y, sr = read_audio(path)
    assert y.shape == (1, (default + 1) * sr)


def _score(seconds: int) -> Score:
    s = Score(480)
    s.tempos.append(Tempo(0, 120.0))
    t = Track(program=0)
    t.notes.append(Note(0, 480, 60, 90))
    t.notes.append(Note(seconds * 2 * 480 - 480, 480, 64, 90))  # the last note ends at ``seconds``
    s.tracks.append(t)
    return s


def test_audio_seconds_when_rendering(monkeypatch):
    from musegen.render.synth import render_score

    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SECONDS", "30")
    with pytest.raises(ParameterError) as info:
        render_score(_score(31), sample_rate=8000)
    _refused(info, "audio_seconds")
    y = render_score(_score(29), sample_rate=8000)
    assert y.shape[1] >= 29 * 8000
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SECONDS", "40")
    assert render_score(_score(31), sample_rate=8000).shape[1] >= 31 * 8000


def test_audio_seconds_for_a_sketch(monkeypatch, tmp_path):
    from musegen.pipeline import load_seed

    path = tmp_path / "sketch.mid"
    _score(100).dump_midi(str(path))
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SECONDS", "99")
    with pytest.raises(MidiError) as info:
        load_seed(path)
    _refused(info, "audio_seconds")
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SECONDS", "100")
    assert load_seed(path)[1].duration_s == pytest.approx(100, abs=0.01)


# ---------------------------------------------------------------- files


def test_soundfont_bytes(monkeypatch):
    from musegen.render.synth import default_soundfont, resolve_soundfont

    real = default_soundfont()
    size = real.stat().st_size
    assert resolve_soundfont(str(real)) == real
    monkeypatch.setenv("MUSEGEN_MAX_SOUNDFONT_BYTES", str(size - 1))
    with pytest.raises(SoundFontError) as info:
        resolve_soundfont(str(real))
    _refused(info, "soundfont_bytes")
    monkeypatch.setenv("MUSEGEN_MAX_SOUNDFONT_BYTES", str(size))
    assert resolve_soundfont(str(real)) == real


def _padded(path, text: str, size: int) -> None:
    """``text`` followed by a comment that brings the file to exactly ``size`` bytes."""
    pad = size - len(text.encode()) - 3
    path.write_text(text + "#" + "x" * pad + "\n\n")
    assert path.stat().st_size == size


def test_preset_bytes(monkeypatch, tmp_path):
    from musegen.presets import load_preset

    text = (ROOT / "src" / "musegen" / "presets" / "lofi-chill.toml").read_text()
    default = limits.get("preset_bytes")
    path = tmp_path / "big.toml"
    _padded(path, text, default)
    assert load_preset(path).name == "lofi-chill"
    _padded(path, text, default + 1)
    with pytest.raises(PresetError) as info:
        load_preset(path)
    _refused(info, "preset_bytes")
    monkeypatch.setenv("MUSEGEN_MAX_PRESET_BYTES", str(default + 1))
    assert load_preset(path).name == "lofi-chill"


def test_plan_bytes(monkeypatch, tmp_path):
    from musegen.batch.plan import load_plan

    text = '[[job]]\npreset = "lofi-chill"\nseed = 1\n'
    default = limits.get("plan_bytes")
    path = tmp_path / "big.toml"
    _padded(path, text, default)
    assert len(load_plan(path).jobs) == 1
    _padded(path, text, default + 1)
    with pytest.raises(PlanError) as info:
        load_plan(path)
    _refused(info, "plan_bytes")
    monkeypatch.setenv("MUSEGEN_MAX_PLAN_BYTES", str(default + 1))
    assert len(load_plan(path).jobs) == 1


def test_batch_jobs(monkeypatch):
    from musegen.batch.plan import parse_plan

    def plan(n_seeds: int, n_tempos: int = 1):
        return {"defaults": {"engine": "procedural"},
                "sweep": [{"preset": "lofi-chill", "grid": {"seed": list(range(n_seeds)),
                                                            "tempo": list(range(60, 60 + n_tempos))}}]}

    default = limits.get("batch_jobs")
    with pytest.raises(PlanError) as info:  # refused from the grid's size, before expanding it
        parse_plan(plan(default // 100 + 1, 100))
    _refused(info, "batch_jobs")
    monkeypatch.setenv("MUSEGEN_MAX_BATCH_JOBS", "10")
    assert len(parse_plan(plan(10)).jobs) == 10
    with pytest.raises(PlanError) as info:
        parse_plan(plan(11))
    _refused(info, "batch_jobs")
    monkeypatch.setenv("MUSEGEN_MAX_BATCH_JOBS", "11")
    assert len(parse_plan(plan(11)).jobs) == 11


def test_limit_values_are_what_the_readme_says():
    """The README's table is generated from LIMITS; a default changed in one place shows up here."""
    readme = (ROOT / "README.md").read_text()
    for lim in limits.LIMITS.values():
        shown = f"{lim.default:,}" if isinstance(lim.default, int) else f"{lim.default:g}"
        assert f"| `{lim.name}` | {shown} " in readme, lim.name
    assert np.all([lim.default > 0 for lim in limits.LIMITS.values()])


def test_audio_samples_when_reading(monkeypatch, tmp_path):
    from musegen.audio.io import read_audio

    path = tmp_path / "short.wav"
    _sparse_wav(path, 2.0)  # 2000 frames, mono
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SAMPLES", "1999")
    with pytest.raises(AudioError) as info:
        read_audio(path)
    _refused(info, "audio_samples")
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SAMPLES", "2000")
    assert read_audio(path)[0].shape == (1, 2000)
    # the default: 400 s is well within audio_seconds, but not at 384 kHz x 8 channels (sparse, never read)
    monkeypatch.delenv("MUSEGEN_MAX_AUDIO_SAMPLES")
    wide = tmp_path / "wide.wav"
    frames = 400 * 384_000
    header = (b"RIFF" + struct.pack("<I", 36 + frames * 16) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, 1, 8, 384_000, 384_000 * 16, 16, 16)
              + b"data" + struct.pack("<I", frames * 16))
    with open(wide, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + frames * 16)
    with pytest.raises(AudioError) as info:
        read_audio(wide)
    _refused(info, "audio_samples")


def test_audio_samples_and_seconds_in_a_post_chain(monkeypatch):
    from musegen.audio.chain import apply_chain

    y = np.zeros((1, 1000), dtype=np.float32)
    y[0, ::50] = 0.5
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SAMPLES", str(384_000 - 1))
    with pytest.raises(ParameterError, match=r"post\[1\] \(resample\)") as info:
        apply_chain(y, sr=1000, steps=[{"op": "gain", "db": -1}, {"op": "resample", "target_sr": 384_000}])
    _refused(info, "audio_samples")
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SAMPLES", "384000")
    out, sr = apply_chain(y, sr=1000, steps=[{"op": "resample", "target_sr": 384_000}])
    assert sr == 384_000 and out.shape[1] == pytest.approx(384_000, abs=2)
    monkeypatch.delenv("MUSEGEN_MAX_AUDIO_SAMPLES")
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SECONDS", "9")
    with pytest.raises(ParameterError) as info:  # a stretch makes 1 s into 10 s
        apply_chain(y, sr=1000, steps=[{"op": "stretch", "rate": 0.1}])
    _refused(info, "audio_seconds")


def test_audio_samples_when_rendering(monkeypatch):
    from musegen.render.synth import render_score

    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SAMPLES", str(2 * 8000 * 10))
    with pytest.raises(ParameterError) as info:
        render_score(_score(11), sample_rate=8000)
    _refused(info, "audio_samples")
    assert render_score(_score(9), sample_rate=8000).shape[0] == 2


def test_audio_samples_before_generation(monkeypatch, tmp_path):
    """50 min at 192 kHz is within the seconds limit but not the samples one: refused before the engine runs."""
    import time

    import musegen.api as mg

    t0 = time.perf_counter()
    with pytest.raises(ParameterError) as info:
        mg.generate("pop-ballad", seconds=3000, sample_rate=192_000, engine="procedural", seed=1, out_dir=tmp_path)
    _refused(info, "audio_samples")
    assert time.perf_counter() - t0 < 10 and not list(tmp_path.iterdir())


def test_nan_is_over_every_limit():
    with pytest.raises(ParameterError, match="seconds limit"):
        limits.check("seconds", float("nan"), what="seconds nan")


# ---------------------------------------------------------------- a limit bounds what is read


_HUGE_LIMIT_SCRIPT = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a buffer the size of the limit cannot fit
from musegen.batch.plan import load_plan
from musegen.midi.io import load_midi
from musegen.presets import load_preset
print(load_midi(sys.argv[1]).note_num(), load_preset(sys.argv[2]).name, len(load_plan(sys.argv[3]).jobs))
"""


def test_a_huge_limit_reads_a_small_file_without_a_buffer_of_its_size(tmp_path):
    """``MUSEGEN_MAX_*_BYTES=1e10`` used to allocate 10 GB to read a 161-byte file ("out of memory")."""
    import subprocess
    import sys

    plan = tmp_path / "plan.toml"
    plan.write_text('[[job]]\npreset = "lofi-chill"\nseed = 1\n')
    env = {"MUSEGEN_MAX_MIDI_BYTES": "1e10", "MUSEGEN_MAX_PRESET_BYTES": "1e10", "MUSEGEN_MAX_PLAN_BYTES": "1e10"}
    r = subprocess.run([sys.executable, "-c", _HUGE_LIMIT_SCRIPT, SAMPLES / "melody.mid",
                        ROOT / "src" / "musegen" / "presets" / "lofi-chill.toml", plan],
                       capture_output=True, text=True, env={**__import__("os").environ, **env}, timeout=120)
    assert r.returncode == 0, r.stderr
    notes, name, jobs = r.stdout.split()
    assert int(notes) > 0 and name == "lofi-chill" and jobs == "1"


def test_a_huge_limit_at_the_cli(tmp_path):
    r = run_cli("analyze", SAMPLES / "melody.mid", env={"MUSEGEN_MAX_MIDI_BYTES": "1e15"})
    assert r.returncode == 0, r.stderr


def test_read_bounded_reads_in_chunks_and_stops_past_the_limit(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * (3 * 4096 + 1))  # just over 3 MiB
    asked = []

    class Recorder:
        def __init__(self, handle):
            self.handle = handle

        def read(self, n):
            asked.append(n)
            return self.handle.read(n)

    with open(path, "rb") as fh:
        data = limits.read_bounded(Recorder(fh), 10**12)
    assert data == path.read_bytes() and max(asked) <= 1 << 20
    asked.clear()
    with open(path, "rb") as fh:
        data = limits.read_bounded(Recorder(fh), (1 << 20) + 5)
    assert data == path.read_bytes()[: (1 << 20) + 6] and max(asked) <= 1 << 20
    with open(path, "rb") as fh:
        assert limits.read_bounded(fh, 0) == path.read_bytes()[:1]


@pytest.mark.parametrize("variable", ["MUSEGEN_MAX_MIDI_BYTES", "MUSEGEN_MAX_PRESET_BYTES", "MUSEGEN_MAX_PLAN_BYTES",
                                      "MUSEGEN_MAX_AUDIO_SECONDS"])
@pytest.mark.parametrize("value", ["1e30", "2e15", "1000000000000000001", "-1e30", "NaN", "1e999", "ten"])
def test_an_absurd_limit_is_refused_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    name = variable.removeprefix("MUSEGEN_MAX_").lower()
    with pytest.raises(ParameterError, match=f"environment variable {variable} must be .*got {value!r}"):
        limits.get(name)


def test_the_largest_limit_accepted_is_1e15(monkeypatch):
    monkeypatch.setenv("MUSEGEN_MAX_MIDI_BYTES", "1e15")
    assert limits.get("midi_bytes") == limits.MAX_OVERRIDE == 10**15
    monkeypatch.setenv("MUSEGEN_MAX_MIDI_BYTES", "1000000000000001")
    with pytest.raises(ParameterError, match="at most 1,000,000,000,000,000 bytes"):
        limits.get("midi_bytes")


@pytest.mark.parametrize("variable, args", [
    ("MUSEGEN_MAX_MIDI_BYTES", ("analyze", SAMPLES / "melody.mid")),
    ("MUSEGEN_MAX_PRESET_BYTES", ("presets", "show", "lofi-chill")),
])
def test_an_absurd_limit_at_the_cli_is_one_error_line(variable, args):
    r = run_cli(*args, env={variable: "1e30"})
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and variable in lines[0] and "1e30" in lines[0], r.stderr


def _env_cases():
    from corpus.make_corpus import ENVS

    return sorted(ENVS.items())


@pytest.mark.parametrize("name, case", _env_cases(), ids=[n for n, _ in _env_cases()])
def test_env_corpus(name, case, tmp_path):
    """Each limit setting in tests/corpus/env/ with the command that reads what it bounds."""
    import resource
    import subprocess
    import sys

    from corpus.make_corpus import HERE as CORPUS

    text = (CORPUS / "env" / name).read_text()
    variable, value = text.strip().split("=", 1)
    plan = tmp_path / "plan.toml"
    plan.write_text('[[job]]\npreset = "lofi-chill"\nseed = 1\n')
    args = {"MUSEGEN_MAX_MIDI_BYTES": ["analyze", SAMPLES / "melody.mid"],
            "MUSEGEN_MAX_PRESET_BYTES": ["presets", "show", ROOT / "src" / "musegen" / "presets" / "lofi-chill.toml"],
            "MUSEGEN_MAX_PLAN_BYTES": ["batch", plan, "--dry-run"]}[variable]

    def limit_memory():  # 4 GB: a buffer the size of a 1e10 limit cannot be allocated
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    r = subprocess.run([sys.executable, "-m", "musegen", *map(str, args)], capture_output=True, text=True,
                       env={**__import__("os").environ, variable: value}, timeout=120, preexec_fn=limit_memory)
    code, needle = case[1]
    if code == "ok":
        assert r.returncode == 0, r.stderr
        return
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == code and len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert needle in lines[0] and value in lines[0], lines[0]
