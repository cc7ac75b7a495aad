"""Write the corpus of broken (and a few odd but valid) input files.

    python tests/corpus/make_corpus.py            # rewrites tests/corpus/{midi,preset,plan,audio,soundfont,env}/

Every file is small and deterministic (no randomness without a fixed seed),
so the committed outputs match what this script writes.  ``EXPECTED`` says
what each file must give: ``("ok", None)`` for a correct result, or
``(exit_code, needle)`` for a clean error whose message contains ``needle``.
Files too large to commit (a huge preset, a truncated or patched copy of the
bundled SoundFont) are made by the tests themselves, in a temporary folder.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


# -- MIDI ------------------------------------------------------------------------

def mtrk(body: bytes) -> bytes:
    return b"MTrk" + struct.pack(">I", len(body)) + body


def smf(fmt: int, n_tracks: int, division: int, *tracks: bytes) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, fmt, n_tracks, division) + b"".join(tracks)


END = b"\x00\xff\x2f\x00"
TEMPO_120 = b"\x00\xff\x51\x03\x07\xa1\x20"


def notes(n: int, *, step: bytes = b"\x60", pitch0: int = 60) -> bytes:
    """``n`` quarter notes (at 96 ticks per quarter) climbing a C major scale."""
    scale = (0, 2, 4, 5, 7, 9, 11, 12)
    out = b""
    for i in range(n):
        p = pitch0 + scale[i % len(scale)]
        out += b"\x00\x90" + bytes([p]) + b"\x50" + step + b"\x80" + bytes([p]) + b"\x00"
    return out


def on_off(pitches, *, status: bool = True) -> bytes:
    """Quarter notes whose note-offs are note-ons of velocity 0; ``status=False`` writes them with running status."""
    head = b"\x90" if status else b""
    return b"".join(b"\x00" + head + bytes([p]) + b"\x50\x60" + head + bytes([p]) + b"\x00" for p in pitches)


def midi_files() -> dict[str, bytes]:
    good = smf(0, 1, 96, mtrk(TEMPO_120 + notes(16) + END))
    rng = np.random.default_rng(7)
    long_track = b"".join(b"\x00\x90\x3c\x50\x83\x60\x80\x3c\x00" for _ in range(4000))  # 480 ticks each
    return {
        "truncated.mid": good[: len(good) // 2],
        "chunk-length-too-long.mid": good[:18] + struct.pack(">I", 0xFFFFFF00) + good[22:],
        "chunk-length-too-short.mid": good[:18] + struct.pack(">I", 5) + good[22:],
        "running-status-without-status.mid": smf(0, 1, 96, mtrk(b"\x00\x3c\x50\x60\x3c\x00" + END)),
        "data-byte-over-127.mid": smf(0, 1, 96, mtrk(b"\x00\x90\xbc\xd0\x60\x80\xbc\x00" + END)),
        "giant-meta-length.mid": smf(0, 1, 96, mtrk(notes(2) + b"\x00\xff\x01\x8f\xff\xff\x7fabc" + END)),
        "giant-sysex-length.mid": smf(0, 1, 96, mtrk(notes(2) + b"\x00\xf0\xff\xff\xff\x7f" + END)),
        "division-zero.mid": smf(0, 1, 0, mtrk(notes(4) + END)),
        "smpte-division.mid": smf(0, 1, 0xE728, mtrk(notes(4) + END)),
        "type-2.mid": smf(2, 1, 96, mtrk(notes(4) + END)),
        "thousands-of-tracks.mid": smf(1, 3000, 96, *[mtrk(notes(1) + END)] * 3000),
        "hours-of-notes.mid": smf(0, 1, 96, mtrk(b"\x00\xff\x51\x03\x0f\x42\x40" + long_track + END)),
        "notes-never-released.mid": smf(0, 1, 96, mtrk(b"\x00\x90\x3c\x50\x00\x90\x40\x50\x00\x90\x43\x50")),
        "random-bytes.mid": rng.integers(0, 256, 2000, dtype=np.uint8).tobytes(),
        "mthd-only.mid": b"MThd" + struct.pack(">IHHH", 6, 1, 1, 96),
        "empty.mid": b"",
        # found by fuzzing: a note-on whose pitch byte is 0x99 crashed symusic's parser (segfault)
        "pitch-byte-crashed-the-parser.mid": bytes.fromhex(
            "4d546864000000060001000101e04d54726b0000000900992468f80b9f992a"),
        "system-message-in-track.mid": smf(0, 1, 96, mtrk(notes(2) + b"\x00\xf8" + notes(2) + END)),
        "note-a-day-later.mid": smf(0, 1, 96, mtrk(notes(2) + b"\xff\xff\xff\x7f\x90\x3c\x50\x60\x80\x3c\x00" + END)),
        # odd but usable: each gives a correct result
        "tempo-zero.mid": smf(0, 1, 96, mtrk(b"\x00\xff\x51\x03\x00\x00\x00" + notes(16) + END)),
        "one-tick-per-quarter.mid": smf(0, 1, 1, mtrk(notes(16, step=b"\x01") + END)),
        "bad-time-signature.mid": smf(0, 1, 96, mtrk(b"\x00\xff\x58\x04\x04\x7f\x18\x08" + notes(16) + END)),
        "no-end-of-track.mid": smf(0, 1, 96, mtrk(TEMPO_120 + notes(8))),
        # meta events shorter than their type: symusic read their fields from the bytes after them
        "short-tempo.mid": smf(0, 1, 96, mtrk(b"\x00\xff\x51\x00" + notes(8) + END)),
        "short-tempo-at-end-of-file.mid": smf(0, 1, 96, mtrk(notes(8) + b"\x00\xff\x51\x01\x07")),
        "short-time-signature.mid": smf(0, 1, 96, mtrk(b"\x00\xff\x58\x01\x03" + notes(8) + END)),
        "short-key-signature.mid": smf(0, 1, 96, mtrk(b"\x00\xff\x59\x00" + notes(8) + END)),
        # running status after sysex, sysex escapes, end-of-track mid-track: symusic lost notes or failed
        "running-status-across-sysex.mid": smf(0, 1, 96, mtrk(
            on_off((60, 62, 64)) + b"\x00\xf0\x03\x7e\x7f\xf7" + on_off((65, 67, 69, 71, 72, 74), status=False)
            + END)),
        "running-status-across-sysex-escape.mid": smf(0, 1, 96, mtrk(
            on_off((60, 62, 64)) + b"\x00\xf7\x02\x01\x02" + on_off((65, 67, 69, 71, 72, 74), status=False)
            + END)),
        "sysex-escape-at-end.mid": smf(0, 1, 96, mtrk(notes(4) + b"\x00\xf7\x01\x90")),
        "end-of-track-mid-track.mid": smf(0, 1, 96, mtrk(notes(4) + END + notes(4, pitch0=72) + END)),
        "zero-length-notes.mid": smf(0, 1, 96, mtrk(b"".join(  # note-on and note-off at one tick
            b"\x00\x90" + bytes([p]) + b"\x50\x00\x80" + bytes([p]) + b"\x00\x60\xff\x01\x00"
            for p in (60, 62, 64, 65, 67, 69, 71, 72)) + END)),
        "sysex-past-track-end.mid": smf(0, 1, 96, mtrk(notes(4) + b"\x00\xf0\x10\x7e\x7f\xf7")),
        "event-past-2-31-ticks.mid": smf(0, 1, 96, mtrk(
            notes(2) + b"\xff\xff\xff\x7f\xff\x01\x00" * 9 + notes(2) + END)),
    }


#: what ``musegen analyze`` (and ``render``) make of each MIDI file: "ok" or (exit code, needle)
MIDI_EXPECTED: dict[str, tuple] = {
    "truncated.mid": (2, "truncated"),
    "chunk-length-too-long.mid": (2, "truncated MIDI file"),
    "chunk-length-too-short.mid": (2, "corrupt or truncated"),
    "running-status-without-status.mid": (2, "corrupt or truncated"),
    "data-byte-over-127.mid": (2, "data byte over 127"),
    "giant-meta-length.mid": (2, "corrupt or truncated"),
    "giant-sysex-length.mid": (2, "corrupt or truncated"),
    "division-zero.mid": (2, "0 ticks per quarter"),
    "smpte-division.mid": (2, "SMPTE"),
    "type-2.mid": (2, "type-2"),
    "thousands-of-tracks.mid": (2, "midi_tracks"),
    "hours-of-notes.mid": ("ok", None),  # analysis is cheap; render is refused (audio_seconds)
    "notes-never-released.mid": (2, "holds no notes"),
    "random-bytes.mid": (2, "not a MIDI file"),
    "mthd-only.mid": (2, "truncated MIDI file"),
    "empty.mid": (2, "empty file"),
    "note-a-day-later.mid": (2, "max_bars"),
    "pitch-byte-crashed-the-parser.mid": (2, "data byte over 127"),
    "system-message-in-track.mid": (2, "system message (0xf8)"),
    "tempo-zero.mid": ("ok", None),
    "one-tick-per-quarter.mid": ("ok", None),
    "bad-time-signature.mid": ("ok", None),
    "no-end-of-track.mid": ("ok", None),
    "short-tempo.mid": ("ok", None),
    "short-tempo-at-end-of-file.mid": ("ok", None),
    "short-time-signature.mid": ("ok", None),
    "short-key-signature.mid": ("ok", None),
    "running-status-across-sysex.mid": ("ok", None),
    "running-status-across-sysex-escape.mid": ("ok", None),
    "sysex-escape-at-end.mid": ("ok", None),
    "end-of-track-mid-track.mid": ("ok", None),
    "zero-length-notes.mid": ("ok", None),
    "sysex-past-track-end.mid": (2, "runs past the end of the track"),
    "event-past-2-31-ticks.mid": (2, "past the 2147483647 ticks"),
}

#: what a correct reading of some of the files above gives (tests/test_midi_bytes.py checks it):
#: notes, shortest note (ticks), tempo map, meter map and key signatures as symusic holds them
MIDI_READS: dict[str, dict] = {
    "short-tempo.mid": {"notes": 8, "tempos": [], "meters": []},
    "short-tempo-at-end-of-file.mid": {"notes": 8, "tempos": []},
    "short-time-signature.mid": {"notes": 8, "meters": []},
    "short-key-signature.mid": {"notes": 8, "keys": []},
    "running-status-across-sysex.mid": {"notes": 9},
    "running-status-across-sysex-escape.mid": {"notes": 9},
    "sysex-escape-at-end.mid": {"notes": 4},
    "end-of-track-mid-track.mid": {"notes": 8},
    "zero-length-notes.mid": {"notes": 8, "shortest": 1},
}


# -- presets and plans -------------------------------------------------------------

PRESET_HEAD = 'name = "fuzz"\ndescription = "a test preset"\n[instruments]\nlead = 0\n'

PRESETS = {
    "bad-toml.toml": ('name = "x\ndescription = = 3\n', "not valid TOML"),
    "wrong-type.toml": (PRESET_HEAD.replace("lead = 0", 'lead = "piano"'), "instruments.lead must be an integer"),
    "out-of-range.toml": ('tempo = 9000\n' + PRESET_HEAD, "tempo must be between 20 and 400"),
    "nan-tempo.toml": ('tempo = nan\n' + PRESET_HEAD, "tempo must be between"),
    "unknown-key.toml": ('tempi = 100\n' + PRESET_HEAD, "unknown key 'tempi'"),
    "unknown-table-key.toml": (PRESET_HEAD + "[groove]\nswung = 0.2\n", "unknown key 'swung' in [groove]"),
    "binary-junk.toml": (bytes(range(256)) * 4, "not UTF-8"),
    "nul-byte.toml": ('name = "a\x00"\n', "not valid TOML"),
    "deep-nesting.toml": ("x = " + "[" * 3000 + "]" * 3000 + "\n" + PRESET_HEAD, "too deeply"),
    "table-not-table.toml": ('groove = 5\n' + PRESET_HEAD, "[groove] must be a table"),
    "bad-post-step.toml": (PRESET_HEAD.replace("[instruments]", 'post = [{op = "explode"}]\n[instruments]'), "explode"),
    # terminal controls in a value: the message names it escaped (shown, never executed)
    "control-chars-in-unknown-key.toml": ('"\\u001b[2Jkey" = 1\n' + PRESET_HEAD, "unknown key '\\x1b[2Jkey'"),
    "control-chars-in-extends.toml": ('extends = "\\u001b]0;pwned\\u0007"\n',
                                      "unknown preset '\\x1b]0;pwned\\x07'"),
    "control-chars-in-post-op.toml": (PRESET_HEAD.replace("[instruments]", 'post = [{op = "\\u0007\\u001b[31m"}]\n'
                                                          "[instruments]"), "unknown op '\\x07\\x1b[31m'"),
    "bidi-override-in-mode.toml": ('mode = "\\u202eevil"\n' + PRESET_HEAD, "got '\\u202eevil'"),
}

PLANS = {
    "bad-toml.toml": ("[[job]\nseed = 1\n", "not valid TOML"),
    "wrong-type.toml": ('[[job]]\npreset = "lofi-chill"\nbars = "eight"\n', "bars must be an integer"),
    "out-of-range.toml": ('[[job]]\npreset = "lofi-chill"\ntempo = 9000\n', "tempo must be between 20 and 400"),
    "over-bars-limit.toml": ('[[job]]\npreset = "lofi-chill"\nbars = 5000\n', "MUSEGEN_MAX_BARS"),
    "unknown-key.toml": ('[[job]]\npreset = "lofi-chill"\nbpm = 90\n', "unknown key 'bpm'"),
    "unknown-top-key.toml": ('jobs = 3\n[[job]]\npreset = "lofi-chill"\n', "unknown key 'jobs'"),
    "binary-junk.toml": (bytes(range(256)) * 4, "not UTF-8"),
    "deep-nesting.toml": ('[[job]]\noptions = {a = ' + "{b = " * 2000 + "1" + "}" * 2000 + "}\n", "too deeply"),
    "too-many-jobs.toml": ('[[sweep]]\npreset = "lofi-chill"\ngrid.seed = [' + ", ".join(map(str, range(500)))
                           + "]\ngrid.bars = [" + ", ".join(map(str, range(1, 401))) + "]\n", "MUSEGEN_MAX_BATCH_JOBS"),
    "no-jobs.toml": ('title = "nothing"\n', "no jobs"),
    "job-not-table.toml": ("job = [1, 2]\n", "[[job]] tables"),
    # a list or a table where a name belongs used to escape as "TypeError: unhashable type"
    "command-is-a-table.toml": ('[[job]]\ncommand = {}\npreset = "lofi-chill"\n', "command must be one of"),
    "engine-is-a-list.toml": ('[[job]]\npreset = "lofi-chill"\nengine = ["procedural"]\n', "unknown engine"),
}


# -- limits set in the environment (tests/test_limits.py runs each with the CLI) -----------

#: file -> (its ``VARIABLE=value`` line, ``("ok", None)`` or ``(exit code, needle)``)
ENVS = {
    "midi-bytes-1e10.env": ("MUSEGEN_MAX_MIDI_BYTES=1e10\n", ("ok", None)),  # allocated 10 GB to read 161 bytes
    "preset-bytes-1e10.env": ("MUSEGEN_MAX_PRESET_BYTES=1e10\n", ("ok", None)),
    "plan-bytes-1e10.env": ("MUSEGEN_MAX_PLAN_BYTES=1e10\n", ("ok", None)),
    "midi-bytes-1e15.env": ("MUSEGEN_MAX_MIDI_BYTES=1e15\n", ("ok", None)),  # the largest accepted
    "midi-bytes-1e30.env": ("MUSEGEN_MAX_MIDI_BYTES=1e30\n", (2, "MUSEGEN_MAX_MIDI_BYTES must be at most")),
    "preset-bytes-1e30.env": ("MUSEGEN_MAX_PRESET_BYTES=1e30\n", (2, "MUSEGEN_MAX_PRESET_BYTES must be at most")),
    "plan-bytes-2e15.env": ("MUSEGEN_MAX_PLAN_BYTES=2e15\n", (2, "MUSEGEN_MAX_PLAN_BYTES must be at most")),
    "plan-bytes-nan.env": ("MUSEGEN_MAX_PLAN_BYTES=nan\n", (2, "MUSEGEN_MAX_PLAN_BYTES must be a positive")),
    "midi-bytes-negative.env": ("MUSEGEN_MAX_MIDI_BYTES=-1e30\n", (2, "MUSEGEN_MAX_MIDI_BYTES must be a positive")),
}


# -- audio -------------------------------------------------------------------------------

def wav_header(sr: int, channels: int, bits: int, n_frames: int, fmt: int = 1) -> bytes:
    block = channels * bits // 8
    data_len = n_frames * block
    return (b"RIFF" + struct.pack("<I", 36 + data_len) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, fmt, channels, sr, sr * block, block, bits)
            + b"data" + struct.pack("<I", data_len))


def tone(sr: int, seconds: float, channels: int) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([0.3 * np.sin(2 * np.pi * (220 * (c + 1)) * t) for c in range(channels)], axis=1)


def float_wav(y: np.ndarray, sr: int) -> bytes:
    """A 32-bit float WAV (format 3) of ``y`` (frames, channels), written by hand."""
    data = np.asarray(y, dtype="<f4").tobytes()
    channels = y.shape[1]
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 3, channels, sr, sr * 4 * channels, 4 * channels, 32)
            + b"data" + struct.pack("<I", len(data)) + data)


def pcm16(y: np.ndarray) -> bytes:
    return np.round(np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()


def flac(y: np.ndarray, sr: int, *, total: int = 0) -> bytes:
    """A 16-bit FLAC of ``y`` (frames, channels) whose STREAMINFO says ``total`` samples.

    0 is "unknown", as a streaming encoder writes it; libsndfile then reports
    a length of 2**63 - 1 frames, and only decoding can tell the real one.
    """
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, y, sr, format="FLAC", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    # "fLaC", STREAMINFO's 4-byte block header, then its bytes 13-17 end in the 36-bit total
    data[8 + 13] = (data[8 + 13] & 0xF0) | (total >> 32 & 0x0F)
    data[8 + 14:8 + 18] = (total & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes(data)


def audio_files() -> dict[str, bytes]:
    rng = np.random.default_rng(11)
    nan = tone(8000, 0.5, 2)
    nan[100, 1] = np.nan
    inf = tone(8000, 0.5, 2)
    inf[200, 0] = np.inf
    return {
        "not-audio.wav": b"this is a text file, not a WAV\n" * 20,
        "zero-length.wav": b"",
        "header-only.wav": wav_header(44100, 2, 16, 0),
        "truncated-header.wav": wav_header(44100, 2, 16, 100)[:30],
        "riff-junk.wav": b"RIFF\x00\x10\x00\x00WAVE" + rng.integers(0, 256, 400, dtype=np.uint8).tobytes(),
        "nan-samples.wav": float_wav(nan, 8000),
        "inf-samples.wav": float_wav(inf, 8000),
        "huge-float-samples.wav": float_wav(tone(8000, 0.5, 1) * 1e38, 8000),
        "rate-1hz.wav": wav_header(1, 1, 16, 10) + b"\0" * 20,
        "rate-1mhz.wav": wav_header(1_000_000, 1, 16, 1000) + pcm16(tone(1_000_000, 0.001, 1)),
        "channels-0.wav": wav_header(44100, 0, 16, 10) + b"\0" * 40,
        "channels-9.wav": wav_header(8000, 9, 16, 800) + pcm16(tone(8000, 0.1, 9)),
        # odd but usable
        "channels-8.wav": wav_header(8000, 8, 16, 2000) + pcm16(tone(8000, 0.25, 8)),
        "float-loud.wav": float_wav(tone(8000, 0.5, 2) * 3.0, 8000),
        "rate-1000hz.wav": wav_header(1000, 1, 16, 1000) + pcm16(tone(1000, 1.0, 1)),
        "data-length-lies.wav": wav_header(8000, 1, 16, 100_000_000 // 2)[:44] + pcm16(tone(8000, 0.25, 1)),
        # a FLAC whose header does not give its length: decoded and counted
        "flac-length-unknown.flac": flac(tone(8000, 0.5, 1), 8000),
        "flac-length-unknown-stereo.flac": flac(tone(22050, 1.25, 2), 22050),
        "flac-length-unknown-truncated.flac": flac(tone(8000, 2.0, 2), 8000)[:3000],
        "flac-length-36-bits.flac": flac(tone(8000, 0.5, 1), 8000, total=2**36 - 1),  # the header is believed
    }


AUDIO_EXPECTED: dict[str, tuple] = {
    "not-audio.wav": (2, "not a readable audio file"),
    "zero-length.wav": (2, "empty"),
    "header-only.wav": (2, "holds no samples"),
    "truncated-header.wav": (2, "not a readable audio file"),
    "riff-junk.wav": (2, "not a readable audio file"),
    "nan-samples.wav": (2, "NaN or infinite"),
    "inf-samples.wav": (2, "NaN or infinite"),
    "huge-float-samples.wav": (2, "far outside -1..1"),
    "rate-1hz.wav": (2, "sample rate of 1 Hz"),
    "rate-1mhz.wav": (2, "sample rate of 1000000 Hz"),
    "channels-0.wav": (2, "not a readable audio file"),
    "channels-9.wav": (2, "9 channels"),
    "channels-8.wav": ("ok", None),
    "float-loud.wav": ("ok", None),
    "rate-1000hz.wav": ("ok", None),
    "data-length-lies.wav": ("ok", None),
    "flac-length-unknown.flac": ("ok", None),
    "flac-length-unknown-stereo.flac": ("ok", None),
    "flac-length-unknown-truncated.flac": (2, "cannot decode"),
    "flac-length-36-bits.flac": (2, "audio_seconds"),
}


# -- SoundFonts (small ones only; see the module docs) -------------------------------

def soundfont_files() -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    return {
        "junk.sf2": rng.integers(0, 256, 1000, dtype=np.uint8).tobytes(),
        "riff-junk.sf2": b"RIFF" + struct.pack("<I", 1004) + b"sfbk" + rng.integers(0, 256, 1000, dtype=np.uint8).tobytes(),
        "riff-header-only.sf2": b"RIFF" + struct.pack("<I", 4) + b"sfbk",
        "list-claims-4gb.sf2": b"RIFF" + struct.pack("<I", 16) + b"sfbkLIST" + struct.pack("<I", 0xFFFFFFF0) + b"INFO",
        "empty.sf2": b"",
    }


SOUNDFONT_EXPECTED: dict[str, tuple] = {
    "junk.sf2": (2, "no RIFF sfbk header"),
    "riff-junk.sf2": (2, "corrupt"),
    "riff-header-only.sf2": (2, "corrupt"),
    "list-claims-4gb.sf2": (2, "corrupt"),
    "empty.sf2": (2, "no RIFF sfbk header"),
}


# -- scenarios: a command on files set up for it (tests/corpus/scenarios.py runs them) -----

_GEN = ["--engine", "procedural", "--bars", "1", "--seed", "1"]
_PLAN3 = '[defaults]\nengine = "procedural"\nbars = 1\n[[sweep]]\npreset = "lofi-chill"\ngrid.seed = [1, 2]\n'
_HOSTILE = 'x" onmouseover="alert(1)'

#: file -> the scenario (see tests/corpus/scenarios.py for its keys); "class" is issue 20's class
SCENARIOS: dict[str, dict] = {
    # -- data loss: a user's file is never written over or deleted
    "extend-over-its-sketch.json": {
        "class": "data loss", "setup": [{"midi": "idea.mid"}],
        "args": ["extend", "idea.mid", "--name", "idea", "-o", ".", *_GEN], "expect": 2, "needle": "input",
        "unchanged": ["idea.mid"]},
    "extend-over-a-hard-link-of-its-sketch.json": {
        "class": "data loss", "setup": [{"midi": "idea.mid"}, {"hardlink": ["idea.mid", "sub/same.mid"]}],
        "args": ["extend", "sub/same.mid", "--name", "idea", "-o", ".", *_GEN], "expect": 2, "needle": "input",
        "unchanged": ["idea.mid"]},
    "extend-out-through-a-symlink-to-its-sketch.json": {
        "class": "data loss", "setup": [{"midi": "idea.mid"}, {"symlink": ["../idea.mid", "out/idea.mid"]}],
        "args": ["extend", "idea.mid", "--name", "idea", "-o", "out", *_GEN], "expect": 2, "needle": "input",
        "unchanged": ["idea.mid"]},
    "generate-over-a-symlink-to-a-user-file.json": {
        "class": "data loss", "setup": [{"text": ["thesis.txt", "my own words\n"]},
                                        {"symlink": ["../thesis.txt", "out/lofi-chill-s1.wav"]}],
        "args": ["generate", "--preset", "lofi-chill", *_GEN, "-o", "out"], "expect": "ok",
        "unchanged": ["thesis.txt"], "present": ["out/lofi-chill-s1.wav"]},
    "analyze-plot-over-its-input.json": {
        "class": "data loss", "setup": [{"midi": "song.mid"}],
        "args": ["analyze", "song.mid", "--plot", "song.mid"], "expect": 2, "needle": "song.mid",
        "unchanged": ["song.mid"]},
    "post-over-its-input-by-another-path.json": {
        "class": "data loss", "setup": [{"wav": "song.wav"}, {"mkdir": "o"}],
        "args": ["post", "song.wav", "-o", "o/../song.wav", "--fade-in", "0.1"], "expect": 2, "needle": "input",
        "unchanged": ["song.wav"]},
    "render-over-its-input.json": {
        "class": "data loss", "setup": [{"midi": "song.mid"}, {"hardlink": ["song.mid", "song.wav"]}],
        "args": ["render", "song.mid", "-o", "song.wav"], "expect": 2, "needle": "input",
        "unchanged": ["song.mid"]},
    "variations-under-one-name.json": {
        "class": "data loss", "args": ["generate", *_GEN, "--variations", "3", "--name", "fixed", "-o", "out"],
        "expect": 2, "needle": "{variation}", "absent": ["out/fixed.wav"]},
    "variations-under-one-name-with-seed.json": {
        "class": "data loss", "args": ["generate", *_GEN, "--variations", "2", "--name", "take-{seed}",
                                       "-o", "out"],
        "expect": 2, "needle": "{variation}", "absent": ["out/take-1.wav"]},
    "style-remove-of-a-folder-without-preset.json": {
        "class": "data loss", "setup": [{"text": ["styles/my-notes/notes.txt", "mine\n"]}],
        "args": ["style", "remove", "my-notes"], "expect": 2, "unchanged": ["styles/my-notes/notes.txt"]},
    "style-remove-of-a-folder-with-a-user-file.json": {
        "class": "data loss", "setup": [{"text": ["styles/looks-like-one/preset.toml", 'name = "looks-like-one"\n']},
                                        {"text": ["styles/looks-like-one/thesis.pdf", "%PDF-1.4 mine"]}],
        "args": ["style", "remove", "looks-like-one"], "expect": 2,
        "unchanged": ["styles/looks-like-one/thesis.pdf", "styles/looks-like-one/preset.toml"]},
    "train-into-a-folder-of-user-files.json": {
        "class": "data loss", "setup": [{"midi": "data/a.mid"}, {"midi": ["data/b.mid", "chord-loop.mid"]},
                                        {"text": ["model/notes.txt", "mine\n"]}],
        "args": ["train", "--data", "data", "-o", "model", "--steps", "1"], "expect": 2,
        "needle": "not a model folder", "unchanged": ["model/notes.txt"]},
    # -- files musegen wrote and reads back
    "style-json-a-list.json": {
        "class": "read back", "setup": [{"text": ["styles/broken/preset.toml", 'name = "broken"\n']},
                                        {"json": ["styles/broken/style.json", [1, 2, 3]]}],
        "args": ["style", "show", "broken"], "expect": 2, "needle": "style.json"},
    "style-json-missing-keys.json": {
        "class": "read back", "setup": [{"text": ["styles/broken/preset.toml", 'name = "broken"\n']},
                                        {"json": ["styles/broken/style.json", {"name": "broken"}]}],
        "args": ["style", "show", "broken"], "expect": 2, "needle": "style.json"},
    "style-json-wrong-types.json": {
        "class": "read back", "setup": [{"text": ["styles/broken/preset.toml", 'name = "broken"\n']},
                                        {"json": ["styles/broken/style.json",
                                                  {"name": 7, "created": [], "files": "all", "stats": 3}]}],
        "args": ["style", "show", "broken"], "expect": 2, "needle": "style.json"},
    "model-config-no-heads.json": {
        "class": "read back", "setup": [{"model": "model", "config": {"n_head": 0}}],
        "args": ["generate", "--engine", "symbolic", "--model", "model", "--bars", "1", "--seed", "1", "-o", "out"],
        "expect": 2, "needle": "n_head", "absent": ["out/lofi-chill-s1.wav"]},
    "model-config-negative-context.json": {
        "class": "read back", "setup": [{"model": "model", "config": {"context": -4}}],
        "args": ["generate", "--engine", "symbolic", "--model", "model", "--bars", "1", "--seed", "1", "-o", "out"],
        "expect": 2, "needle": "context"},
    "model-config-heads-not-dividing.json": {
        "class": "read back", "setup": [{"model": "model", "config": {"n_head": 7}}],
        "args": ["generate", "--engine", "symbolic", "--model", "model", "--bars", "1", "--seed", "1", "-o", "out"],
        "expect": 2, "needle": "config.json"},
    "model-config-model-a-string.json": {
        "class": "read back", "setup": [{"model": "model", "top": True, "config": {"model": "big"}}],
        "args": ["generate", "--engine", "symbolic", "--model", "model", "--bars", "1", "--seed", "1", "-o", "out"],
        "expect": 2, "needle": "config.json"},
    "manifest-rows-damaged.json": {
        "class": "read back", "setup": [{"text": ["plan.toml", _PLAN3]},
                                        {"musegen": ["batch", "plan.toml", "-o", "run", "--workers", "1", "--no-images"]},
                                        {"jsonl": ["run/manifest.jsonl", 0, {"outputs": "not a table"}]},
                                        {"jsonl": ["run/manifest.jsonl", 1, {"wall_s": "slow", "duration_s": "x"}]}],
        "args": ["batch", "plan.toml", "-o", "run", "--workers", "1", "--no-images", "--resume"],
        "expect": "ok", "all_jobs_ok": "run"},
    "manifest-row-whose-folder-is-gone.json": {
        "class": "read back", "setup": [{"text": ["plan.toml", _PLAN3]},
                                        {"musegen": ["batch", "plan.toml", "-o", "run", "--workers", "1", "--no-images"]},
                                        {"drop_job": ["run", 1]},
                                        {"jsonl": ["run/manifest.jsonl", 0, {"outputs": {"wav": 5}}]}],
        "args": ["batch", "plan.toml", "-o", "run", "--workers", "1", "--no-images", "--resume"],
        "expect": "ok", "all_jobs_ok": "run"},
    # -- output and names
    "report-with-a-hostile-label.json": {
        "class": "names", "setup": [{"text": ["plan.toml", '[[job]]\npreset = "lofi-chill"\nengine = "procedural"\n'
                                                  'bars = 1\nlabel = ' + json.dumps(_HOSTILE) + "\n"]}],
        "args": ["batch", "plan.toml", "-o", "run", "--workers", "1", "--no-images"], "expect": "ok",
        "lacks": {"run/report.html": ['" onmouseover="', "<script>alert"]}},
    "name-with-a-nested-field.json": {
        "class": "names", "args": ["generate", *_GEN, "--name", "{preset:{seed}}", "-o", "out"],
        "expect": 2, "needle": "a field inside a field", "absent": ["out/lofi-chill-s1.wav"]},
    "name-with-terminal-controls.json": {
        "class": "names", "args": ["generate", *_GEN, "--name", "\x1b]0;pwned\x07{seed}", "-o", "out"],
        "expect": "ok"},
    "preset-description-with-terminal-controls.json": {
        "class": "names", "setup": [{"text": ["evil.toml", 'name = "evil"\nextends = "lofi-chill"\n'
                                                           'description = "\\u001b[2J\\u0007gone"\n']}],
        "args": ["presets", "show", "evil.toml"], "expect": "ok"},
    "plan-midi-path-like-a-glob.json": {
        "class": "names", "setup": [{"midi": "take[1].mid"}, {"midi": ["take1.mid", "drum-groove.mid"]},
                                    {"text": ["plan.toml", '[[job]]\ncommand = "render"\nmidi = "take[1].mid"\n']}],
        "args": ["batch", "plan.toml", "-o", "run", "--dry-run", "--json"], "expect": "ok",
        "stdout_has": ["take[1].mid"]},
    "name-leaving-the-folder.json": {
        "class": "names", "args": ["generate", *_GEN, "--name", "../../escaped-{seed}", "-o", "out"],
        "expect": "ok", "absent": ["../escaped-1.wav", "escaped-1.wav"], "present": ["out/escaped-1.wav"]},
    # -- environment: no usable home, read-only places
    "analyze-without-a-home.json": {
        "class": "environment", "setup": [{"midi": "song.mid"}, {"wav": "song.wav"}],
        "env": {"HOME": "/nonexistent"}, "unset": ["XDG_CACHE_HOME", "NUMBA_CACHE_DIR", "MUSEGEN_CACHE_DIR"],
        "args": ["analyze", "song.wav", "--json"], "expect": "ok"},
    "post-pitch-shift-without-a-home.json": {
        "class": "environment", "setup": [{"wav": "song.wav"}],
        "env": {"HOME": "/nonexistent"}, "unset": ["XDG_CACHE_HOME", "NUMBA_CACHE_DIR", "MUSEGEN_CACHE_DIR"],
        "args": ["post", "song.wav", "-o", "out.wav", "--pitch-shift", "2"], "expect": "ok",
        "present": ["out.wav"]},
    "presets-list-with-no-home-at-all.json": {
        "class": "environment", "unset": ["HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "MUSEGEN_STYLE_DIR"],
        "args": ["presets", "list"], "expect": "ok", "stdout_has": ["lofi-chill"]},
    "generate-into-a-read-only-place.json": {
        "class": "environment", "args": ["generate", *_GEN, "-o", "/proc/musegen-out"], "expect": 1,
        "needle": "/proc/musegen-out"},
    "styles-folder-in-a-read-only-place.json": {
        "class": "environment", "env": {"MUSEGEN_STYLE_DIR": "/proc/musegen-styles"},
        "args": ["presets", "list"], "expect": "ok", "stdout_has": ["lofi-chill"]},
}


def write_all(root: Path = HERE) -> list[Path]:
    written = []
    groups = {
        "midi": midi_files(),
        "preset": {k: v for k, (v, _) in PRESETS.items()},
        "plan": {k: v for k, (v, _) in PLANS.items()},
        "audio": audio_files(),
        "soundfont": soundfont_files(),
        "env": {k: v for k, (v, _) in ENVS.items()},
        "scenario": {k: json.dumps(v, indent=1, ensure_ascii=True) + "\n" for k, v in SCENARIOS.items()},
    }
    for folder, files in groups.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            path = root / folder / name
            path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
            written.append(path)
    return written


if __name__ == "__main__":
    paths = write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    total = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} files, {total / 1024:.0f} KiB", file=sys.stderr)
