"""Every input can be hostile: broken files of every format end in a correct result or a clean error.

Three layers:

* the corpus (``tests/corpus/``, written by ``tests/corpus/make_corpus.py``):
  one file per known kind of damage, each with the result it must give;
* property-based fuzzing (hypothesis): valid files mutated (byte flips,
  truncation, chunk-length edits, inserted junk, structured edits), run
  in-process, where anything but a result or a :class:`MusegenError` fails;
* a handful of CLI runs in real subprocesses under a memory limit and a
  timeout: exactly one ``Error:`` line, exit code 1 or 2, no traceback and no
  output file left behind.

SoundFonts are only ever loaded by symusic in a subprocess here: a corrupt one
used to crash the process outright (a segmentation fault, not an exception).
"""

from __future__ import annotations

import math
import os
import resource
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, SAMPLES
from corpus.make_corpus import (
    AUDIO_EXPECTED,
    HERE as CORPUS,
    MIDI_EXPECTED,
    PLANS,
    PRESETS,
    SOUNDFONT_EXPECTED,
    write_all,
)
from musegen.errors import AudioError, MidiError, MusegenError, PlanError, PresetError, SoundFontError

MEMORY_LIMIT = 4 << 30  # address space for CLI subprocesses: a runaway allocation fails, not the machine
#: 80 fixed examples per property by default (seconds, the same each run); MUSEGEN_FUZZ_EXAMPLES=2000
#: explores new random ones instead
_EXAMPLES = os.environ.get("MUSEGEN_FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(_EXAMPLES or 80), deadline=None, derandomize=_EXAMPLES is None,
                database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_limited(*args, cwd=None, env=None, timeout: float = 120):
    """``python -m musegen ARGS`` under an address-space limit and a timeout."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "musegen", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout, preexec_fn=_limit_memory)


def assert_clean_error(proc, code: int, needle: str, *, left_out=()) -> str:
    """One ``Error:`` line naming the problem, the exit code, no traceback, no output left behind."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert needle in lines[0], lines[0]
    for path in left_out:
        path = Path(path)
        assert not path.exists(), f"{path} was left behind"
        if path.parent.is_dir():
            assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")], "a .part file was left"
    return lines[0]


def _expect(fn, expected: tuple, error_type=MusegenError):
    """Run ``fn``; it must give a result (``"ok"``) or raise ``error_type`` with the needle."""
    code, needle = expected
    if code == "ok":
        return fn()
    with pytest.raises(error_type) as info:
        fn()
    assert info.value.exit_code == code
    assert needle in str(info.value), str(info.value)
    return None


def test_corpus_is_what_the_script_writes(tmp_path):
    write_all(tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    stored = sorted(p.relative_to(CORPUS) for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".py")
    assert fresh == stored
    for rel in fresh:
        assert (tmp_path / rel).read_bytes() == (CORPUS / rel).read_bytes(), rel


# ---------------------------------------------------------------- MIDI


@pytest.mark.parametrize("name", sorted(MIDI_EXPECTED))
def test_midi_corpus(name):
    from musegen.midi.analysis import analyze_score
    from musegen.midi.io import load_midi
    from musegen.render.synth import render_score

    path = CORPUS / "midi" / name
    analysis = _expect(lambda: analyze_score(load_midi(path)), MIDI_EXPECTED[name], MidiError)
    if analysis is None:
        return
    assert analysis.duration_s > 0 and analysis.tempo_bpm > 0
    score = load_midi(path)
    for track in score.tracks:
        cols = track.notes.numpy()
        assert cols["pitch"].size == 0 or (cols["pitch"].min() >= 0 and cols["velocity"].min() >= 0)
    if analysis.duration_s > 3600:  # hours of notes: refused before a byte is synthesized
        with pytest.raises(MusegenError, match="audio_seconds.*MUSEGEN_MAX_AUDIO_SECONDS"):
            render_score(score, sample_rate=8000)
        return
    y = render_score(score, sample_rate=8000)
    assert y.shape[0] == 2 and y.shape[1] > 0 and np.isfinite(y).all()


def test_odd_sketches_continue_with_the_procedural_engine(tmp_path):
    """A tempo of 0, one tick per quarter and a broken time signature are usable sketches."""
    import musegen.api as mg

    for name in ("tempo-zero.mid", "one-tick-per-quarter.mid", "bad-time-signature.mid"):
        (result,) = mg.generate("pop-ballad", midi=CORPUS / "midi" / name, bars=1, seed=1, engine="procedural",
                                out_dir=tmp_path, post=[])
        assert result.wav.exists() and result.sidecar["analysis"]["duration_s"] > 1


def test_hours_long_sketch_is_refused_before_generation(tmp_path):
    import musegen.api as mg

    with pytest.raises(MidiError, match="lasts .* over the audio_seconds limit"):
        mg.generate("pop-ballad", midi=CORPUS / "midi" / "hours-of-notes.mid", bars=1, seed=1,
                    engine="procedural", out_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def _smf_bytes() -> list[bytes]:
    return [p.read_bytes() for p in sorted(SAMPLES.glob("*.mid"))]


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


@st.composite
def mutated_midi(draw) -> bytes:
    """A sample sketch with a few byte-level or chunk-level mutations."""
    data = bytearray(draw(st.sampled_from(_smf_bytes())))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "chunk_length", "header", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif kind == "chunk_length":
            chunks = [i for i in range(len(data) - 8) if data[i:i + 4] in (b"MThd", b"MTrk")]
            if chunks:
                at = draw(st.sampled_from(chunks)) + 4
                value = draw(st.sampled_from([0, 1, 5, 6, 0x7FFFFFFF, 0xFFFFFFFF]) | st.integers(0, 2000))
                data[at:at + 4] = struct.pack(">I", value)
        elif kind == "header" and len(data) >= 14:
            field = draw(st.sampled_from([8, 10, 12]))  # format, track count, division
            data[field:field + 2] = struct.pack(">H", draw(st.sampled_from([0, 1, 2, 3, 0x7FFF, 0xFFFF, 0xE728])))
        elif kind == "dup":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 64))]
    return bytes(data)


@st.composite
def event_stream_midi(draw) -> bytes:
    """A type-0 file whose single track is a random stream of (mostly) plausible events."""
    body = b""
    for _ in range(draw(st.integers(0, 40))):
        body += _vlq(draw(st.integers(0, 5000) | st.sampled_from([0, 0x0FFFFFFF])))
        kind = draw(st.sampled_from(["note", "note", "raw", "meta", "sysex", "running"]))
        if kind == "note":
            status = draw(st.sampled_from([0x80, 0x90, 0x99, 0xB0, 0xC0, 0xE0]))
            body += bytes([status, draw(st.integers(0, 255)), draw(st.integers(0, 255))])
        elif kind == "raw":
            body += draw(st.binary(min_size=1, max_size=4))
        elif kind == "running":
            body += bytes([draw(st.integers(0, 127)), draw(st.integers(0, 127))])
        elif kind == "meta":
            meta = draw(st.sampled_from([0x01, 0x03, 0x20, 0x2F, 0x51, 0x58, 0x59, 0x7F]))
            payload = draw(st.binary(max_size=8))
            length = draw(st.sampled_from([len(payload), 0, 3, 0x0FFFFFFF]))
            body += bytes([0xFF, meta]) + _vlq(length) + payload
        else:
            payload = draw(st.binary(max_size=8))
            body += b"\xf0" + _vlq(draw(st.sampled_from([len(payload), 0x0FFFFFFF]))) + payload
    if draw(st.booleans()):
        body += b"\x00\xff\x2f\x00"
    division = draw(st.sampled_from([1, 24, 96, 480, 0x7FFF]))
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, division) + b"MTrk" + struct.pack(">I", len(body)) + body


def _midi_verdict(data: bytes) -> str:
    """Load, analyse and render; anything but a result or a MusegenError is a failure."""
    from musegen.midi.analysis import analyze_score
    from musegen.midi.io import load_midi_bytes
    from musegen.render.synth import render_score

    try:
        score = load_midi_bytes(data, name="fuzz.mid")
    except MidiError:
        return "error"
    assert score.note_num() > 0
    for track in score.tracks:
        cols = track.notes.numpy()
        assert cols["pitch"].size == 0 or (0 <= cols["pitch"].min() and cols["pitch"].max() <= 127)
    try:
        analyze_score(score)
        render_score(score, sample_rate=8000)
    except MusegenError:
        return "error"
    return "ok"


@FUZZ
@given(data=mutated_midi())
def test_mutated_midi_is_read_or_refused(data, monkeypatch):
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SECONDS", "120")  # keeps each rendered example short
    _midi_verdict(data)


@FUZZ
@given(data=event_stream_midi())
def test_random_event_streams_are_read_or_refused(data, monkeypatch):
    monkeypatch.setenv("MUSEGEN_MAX_AUDIO_SECONDS", "120")
    _midi_verdict(data)


# ---------------------------------------------------------------- presets and plans


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_corpus(name):
    from musegen.presets import load_preset

    _expect(lambda: load_preset(CORPUS / "preset" / name), (2, PRESETS[name][1]), PresetError)


@pytest.mark.parametrize("name", sorted(PLANS))
def test_plan_corpus(name):
    from musegen.batch.plan import load_plan

    _expect(lambda: load_plan(CORPUS / "plan" / name), (2, PLANS[name][1]), PlanError)


def _builtin_preset_tables() -> list[dict]:
    import tomllib

    folder = ROOT / "src" / "musegen" / "presets"
    return [tomllib.loads(p.read_text()) for p in sorted(folder.glob("*.toml"))]


_JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.binary(max_size=4).map(lambda b: b.decode("latin-1")),
    st.lists(st.integers(-5, 200) | st.text(max_size=4), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(-3, 3) | st.text(max_size=3), max_size=3),
)


@st.composite
def mutated_table(draw, bases: list[dict]) -> dict:
    """A copy of one valid table with a few values replaced, keys removed or unknown keys added."""
    import copy

    table = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        # walk down to a random nested table (or list of tables)
        node = table
        for _depth in range(3):
            children = [k for k, v in node.items() if isinstance(v, dict)]
            children += [k for k, v in node.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
            if not children or draw(st.booleans()):
                break
            child = node[draw(st.sampled_from(sorted(children)))]
            node = child if isinstance(child, dict) else draw(st.sampled_from(child))
        action = draw(st.sampled_from(["replace", "replace", "delete", "unknown"]))
        keys = sorted(node)
        if action == "replace" and keys:
            node[draw(st.sampled_from(keys))] = draw(_JUNK)
        elif action == "delete" and keys:
            del node[draw(st.sampled_from(keys))]
        else:
            node[draw(st.text(min_size=1, max_size=8))] = draw(_JUNK)
    return table


@FUZZ
@given(table=mutated_table(_builtin_preset_tables()))
def test_mutated_preset_tables_validate_or_are_refused(table):
    from musegen.presets import Preset, preset_from_dict

    table.pop("extends", None)
    try:
        preset = preset_from_dict(table, where="fuzz.toml")
    except PresetError as exc:
        assert str(exc).startswith("preset fuzz.toml: ")
        return
    assert isinstance(preset, Preset)
    lo, hi = preset.tempo
    assert 20 <= lo <= hi <= 400 and math.isfinite(preset.groove.swing)


def _plan_tables() -> list[dict]:
    import tomllib

    return [tomllib.loads((SAMPLES / "plan.toml").read_text()),
            {"defaults": {"engine": "procedural", "bars": 4}, "job": [{"preset": "lofi-chill", "seed": 3}],
             "sweep": [{"preset": "synthwave", "grid": {"seed": [1, 2], "tempo": [90, 120]}}]}]


@FUZZ
@given(table=mutated_table(_plan_tables()))
def test_mutated_plan_tables_expand_or_are_refused(table):
    from musegen.batch.plan import parse_plan

    try:
        plan = parse_plan(table, where="fuzz.toml", base=SAMPLES)
    except PlanError as exc:
        assert str(exc).startswith("plan fuzz.toml")
        return
    assert plan.jobs and len({job.id for job in plan.jobs}) == len(plan.jobs)


@st.composite
def mutated_text(draw, texts: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(texts)))
    for _ in range(draw(st.integers(1, 5))):
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.sampled_from([b"[", b"]", b"{", b"=", b'"', b"\n", b"nan", b"\x00", b"\xff",
                                                  b"[[job]]\n", b"x = 1\n", b"-1e999"]))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 20))]
        else:
            del data[pos:]
    return bytes(data)


_PRESET_TEXTS = [p.read_bytes() for p in sorted((ROOT / "src" / "musegen" / "presets").glob("*.toml"))[:6]]


@FUZZ
@given(text=mutated_text(_PRESET_TEXTS))
def test_mutated_preset_files_load_or_are_refused(text, tmp_path):
    from musegen.presets import load_preset

    path = tmp_path / "fuzz-preset.toml"
    path.write_bytes(text)
    try:
        load_preset(path)
    except PresetError:
        pass


@FUZZ
@given(text=mutated_text([(SAMPLES / "plan.toml").read_bytes()]))
def test_mutated_plan_files_load_or_are_refused(text, tmp_path):
    from musegen.batch.plan import load_plan

    path = tmp_path / "plan.toml"
    path.write_bytes(text.replace(b'"*.mid"', f'"{SAMPLES.as_posix()}/*.mid"'.encode()))
    try:
        load_plan(path)
    except PlanError:
        pass


# ---------------------------------------------------------------- audio


@pytest.mark.parametrize("name", sorted(AUDIO_EXPECTED))
def test_audio_corpus(name, tmp_path):
    import musegen.api as mg
    from musegen.audio.io import read_audio

    path = CORPUS / "audio" / name
    got = _expect(lambda: read_audio(path), AUDIO_EXPECTED[name], AudioError)
    out = tmp_path / "out.wav"
    if got is None:
        with pytest.raises(AudioError):
            mg.post(path, out, [{"op": "trim"}])
        assert not out.exists() and not list(tmp_path.iterdir())
        return
    y, sr = got
    assert np.isfinite(y).all() and 1 <= y.shape[0] <= 8
    info = mg.post(path, out, [{"op": "fade_in", "seconds": 0.01}, {"op": "loudness", "lufs": -20}])
    assert out.exists() and info["channels"] == y.shape[0] and math.isfinite(info["lufs"])
    assert mg.analyze(path)["duration_s"] == pytest.approx(y.shape[1] / sr, abs=1e-3)


@st.composite
def wav_files(draw) -> bytes:
    """A RIFF/WAVE header with arbitrary fields followed by arbitrary sample bytes."""
    fmt = draw(st.sampled_from([1, 3, 6, 7, 0xFFFE, 0, 2]))
    channels = draw(st.sampled_from([0, 1, 2, 8, 9, 255]))
    bits = draw(st.sampled_from([0, 8, 16, 24, 32, 64, 7]))
    sr = draw(st.sampled_from([0, 1, 999, 1000, 8000, 44100, 384000, 384001, 1_000_000, 0xFFFFFFFF]))
    n_bytes = draw(st.integers(0, 4000))
    payload = draw(st.binary(min_size=0, max_size=64)) * (n_bytes // 64 + 1)
    if fmt == 3 and bits == 32 and draw(st.booleans()):
        values = draw(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1, max_size=64))
        payload = np.asarray(values, dtype="<f4").tobytes() * 8
    block = max(1, channels * bits // 8)
    declared = draw(st.sampled_from([len(payload), 0, 0xFFFFFFFF, len(payload) * 3]))
    header = (b"RIFF" + struct.pack("<I", min(0xFFFFFFFF, 36 + declared)) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, fmt, channels, sr, (sr * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
              + b"data" + struct.pack("<I", declared))
    return header + payload


@FUZZ
@given(data=wav_files())
def test_arbitrary_wav_headers_read_or_are_refused(data, tmp_path):
    import musegen.api as mg
    from musegen.audio.io import read_audio

    path = tmp_path / "fuzz.wav"
    path.write_bytes(data)
    try:
        y, sr = read_audio(path)
    except AudioError:
        return
    assert np.isfinite(y).all() and 1 <= y.shape[0] <= 8 and 1000 <= sr <= 384000
    out = tmp_path / "out.wav"
    try:
        mg.post(path, out, [{"op": "trim"}, {"op": "loudness", "lufs": -16}])
    except MusegenError:
        assert not out.exists()
        return
    assert out.exists()


# ---------------------------------------------------------------- SoundFonts


@pytest.mark.parametrize("name", sorted(SOUNDFONT_EXPECTED))
def test_soundfont_corpus(name):
    from musegen.render.synth import resolve_soundfont

    _expect(lambda: resolve_soundfont(CORPUS / "soundfont" / name), SOUNDFONT_EXPECTED[name], SoundFontError)


def _bundled_soundfont() -> bytes:
    from musegen.render.synth import default_soundfont

    return default_soundfont().read_bytes()


def _pdta_tables(data: bytes) -> dict[str, tuple[int, int]]:
    """``{table: (offset, length)}`` of the bundled font's pdta sub-chunks."""
    pos = data.index(b"pdta") + 4
    out = {}
    while pos + 8 <= len(data):
        cid, length = data[pos:pos + 4].decode("latin-1"), struct.unpack("<I", data[pos + 4:pos + 8])[0]
        out[cid] = (pos + 8, length)
        pos += 8 + length
    return out


def broken_soundfonts(folder: Path) -> dict[str, tuple[Path, str]]:
    """Copies of the bundled font, each broken one way, with the words the error must hold."""
    real = _bundled_soundfont()
    tables = _pdta_tables(real)
    fonts = {}

    def write(name: str, data: bytes | bytearray, needle: str) -> None:
        path = folder / name
        path.write_bytes(bytes(data))
        fonts[name] = (path, needle)

    write("truncated-half.sf2", real[: len(real) // 2], "truncated")
    write("truncated-tail.sf2", real[:-100], "truncated")
    igen, _ = tables["igen"]
    data = bytearray(real)
    data[igen:igen + 2] = struct.pack("<H", 300)  # a generator the specification does not define
    write("unknown-generator.sf2", data, "generator 300")
    shdr, _ = tables["shdr"]
    data = bytearray(real)
    data[shdr + 24:shdr + 28] = struct.pack("<I", 0x7FFFFFF0)  # sample 0 ends far past the sample data
    write("sample-past-end.sf2", data, "sample 0 spans")
    phdr, _ = tables["phdr"]
    data = bytearray(real)
    data[phdr + 24:phdr + 26] = struct.pack("<H", 0xFFFF)  # preset 0's first bag past the bag table
    write("bag-past-end.sf2", data, "phdr")
    # sample 43's loop: one sample long (symusic rendered forever), or starting before the sample (segfault)
    record = shdr + 43 * 46
    start, _end, loop_start, _loop_end = struct.unpack_from("<4I", real, record + 20)
    data = bytearray(real)
    struct.pack_into("<II", data, record + 28, loop_start, loop_start + 1)
    write("loop-of-one-sample.sf2", data, "loops over 1 samples")
    data = bytearray(real)
    struct.pack_into("<I", data, record + 28, start - 1)
    write("loop-before-its-sample.sf2", data, "starting before the sample")
    return fonts


def test_broken_copies_of_the_bundled_soundfont_are_refused(tmp_path):
    from musegen.render.synth import resolve_soundfont

    for name, (path, needle) in broken_soundfonts(tmp_path).items():
        with pytest.raises(SoundFontError) as info:
            resolve_soundfont(path)
        assert needle in str(info.value) and str(path) in str(info.value), (name, str(info.value))


@st.composite
def pdta_mutations(draw) -> list[tuple[int, int]]:
    real_len = len(_BUNDLED)
    start = _BUNDLED.index(b"pdta")
    return [(draw(st.integers(start, real_len - 1)), draw(st.integers(0, 255)))
            for _ in range(draw(st.integers(1, 8)))]


_BUNDLED = _bundled_soundfont()


@FUZZ
@given(edits=pdta_mutations())
def test_soundfont_table_mutations_are_checked_without_loading(edits, tmp_path):
    """The structural check itself never fails with anything but a SoundFontError."""
    from musegen.render.sf2check import check_soundfont

    data = bytearray(_BUNDLED)
    for pos, value in edits:
        data[pos] = value
    path = tmp_path / "fuzz.sf2"
    path.write_bytes(bytes(data))
    try:
        check_soundfont(path)
    except SoundFontError:
        pass


@pytest.mark.slow
def test_soundfonts_the_check_accepts_do_not_crash_the_synthesizer(tmp_path):
    """About 3 minutes: 150 random pdta mutations; each one accepted must render in a subprocess."""
    from musegen.render.sf2check import check_soundfont

    rng = np.random.default_rng(2024)
    start = _BUNDLED.index(b"pdta")
    mid = SAMPLES / "melody-and-chords.mid"
    accepted = 0
    for i in range(150):
        data = bytearray(_BUNDLED)
        for _ in range(int(rng.integers(1, 8))):
            data[int(rng.integers(start, len(data)))] = int(rng.integers(0, 256))
        path = tmp_path / f"m{i}.sf2"
        path.write_bytes(bytes(data))
        try:
            check_soundfont(path)
        except SoundFontError:
            path.unlink()
            continue
        accepted += 1
        out = tmp_path / "out.wav"
        proc = run_limited("render", mid, "-o", out, "--soundfont", path, "--sample-rate", "8000", timeout=60)
        assert proc.returncode in (0, 1, 2), (path, proc.returncode, proc.stderr)
        if proc.returncode:
            assert_clean_error(proc, proc.returncode, "", left_out=[out])
        path.unlink()
    assert accepted > 10


# ---------------------------------------------------------------- the CLI, as a user runs it


def test_cli_refuses_broken_midi_cleanly(tmp_path):
    out = tmp_path / "x.wav"
    proc = run_limited("render", CORPUS / "midi" / "data-byte-over-127.mid", "-o", out)
    assert_clean_error(proc, 2, "data byte over 127", left_out=[out])
    proc = run_limited("render", CORPUS / "midi" / "hours-of-notes.mid", "-o", out)
    assert_clean_error(proc, 2, "MUSEGEN_MAX_AUDIO_SECONDS", left_out=[out])
    proc = run_limited("analyze", CORPUS / "midi" / "thousands-of-tracks.mid")
    assert_clean_error(proc, 2, "MUSEGEN_MAX_MIDI_TRACKS")
    # symusic's parser died with a segmentation fault on this one (exit -11, no message)
    proc = run_limited("analyze", CORPUS / "midi" / "pitch-byte-crashed-the-parser.mid")
    assert_clean_error(proc, 2, "data byte over 127")


def test_cli_refuses_broken_presets_and_plans_cleanly(tmp_path):
    out = tmp_path / "out"
    proc = run_limited("generate", "--preset", CORPUS / "preset" / "deep-nesting.toml", "-o", out)
    assert_clean_error(proc, 2, "too deeply")
    assert not out.exists() or not list(out.iterdir())
    proc = run_limited("batch", CORPUS / "plan" / "too-many-jobs.toml", "--dry-run")
    assert_clean_error(proc, 2, "MUSEGEN_MAX_BATCH_JOBS")
    assert proc.stdout == ""


def test_cli_refuses_broken_audio_cleanly(tmp_path):
    out = tmp_path / "out.wav"
    proc = run_limited("post", CORPUS / "audio" / "huge-float-samples.wav", "-o", out, "--trim")
    assert_clean_error(proc, 2, "far outside -1..1", left_out=[out])
    proc = run_limited("analyze", CORPUS / "audio" / "rate-1mhz.wav")
    assert_clean_error(proc, 2, "1000000 Hz")


def test_cli_refuses_broken_soundfonts_without_crashing(tmp_path):
    """Each of these crashed symusic's loader (exit -11, no message) before the structural check."""
    fonts = broken_soundfonts(tmp_path)
    out = tmp_path / "x.wav"
    for name in ("unknown-generator.sf2", "truncated-half.sf2", "sample-past-end.sf2", "loop-of-one-sample.sf2",
                 "loop-before-its-sample.sf2"):
        path, needle = fonts[name]
        proc = run_limited("render", SAMPLES / "melody.mid", "-o", out, "--soundfont", path)
        assert_clean_error(proc, 2, needle, left_out=[out])
    proc = run_limited("render", SAMPLES / "melody.mid", "-o", out, "--soundfont", CORPUS / "soundfont" / "riff-junk.sf2")
    assert_clean_error(proc, 2, "corrupt", left_out=[out])


def test_cli_gives_a_correct_result_for_an_odd_but_valid_sketch(tmp_path):
    proc = run_limited("extend", CORPUS / "midi" / "one-tick-per-quarter.mid", "--engine", "procedural",
                       "--bars", "1", "--seed", "2", "--no-post", "-o", tmp_path / "out", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    import json

    (result,) = json.loads(proc.stdout)["results"]
    assert Path(result["wav"]).stat().st_size > 1000


def test_fifos_and_devices_are_refused_without_waiting(tmp_path):
    """A named pipe would block a reader until something writes to it; nothing may try to read one."""
    from musegen.audio.io import read_audio
    from musegen.batch.plan import load_plan
    from musegen.midi.io import load_midi
    from musegen.presets import load_preset
    from musegen.render.synth import resolve_soundfont

    cases = [(read_audio, "x.wav", AudioError, "not a regular file"),
             (resolve_soundfont, "x.sf2", SoundFontError, "not a regular file"),
             (load_midi, "x.mid", MidiError, "not a regular file"),
             (load_plan, "x.toml", PlanError, "is not a file"),
             (load_preset, "y.toml", PresetError, "y.toml")]
    for fn, name, error, needle in cases:
        os.mkfifo(tmp_path / name)
        with pytest.raises(error, match=needle):
            fn(tmp_path / name)
    with pytest.raises(AudioError, match="not a regular file"):
        read_audio("/dev/zero")


def test_damaged_mp3_does_not_spill_decoder_messages(tmp_path):
    """libmpg123 prints '[src/libmpg123/layer3.c:...] error: ...' lines on fd 2; the CLI keeps stderr to its own line."""
    import soundfile as sf

    t = np.arange(16000) / 16000.0
    good = tmp_path / "good.mp3"
    sf.write(good, np.stack([0.3 * np.sin(2 * np.pi * 330 * t)] * 2, axis=1), 16000)
    data = bytearray(good.read_bytes())
    for i in range(600, len(data), 53):
        data[i] ^= 0x5A
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.wav"
    proc = run_limited("post", bad, "-o", out, "--trim")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "libmpg123" not in proc.stderr and len(lines) == 1, proc.stderr
    if proc.returncode:
        assert_clean_error(proc, proc.returncode, "", left_out=[out])
    else:
        assert out.exists() and lines[0].startswith(str(out))
