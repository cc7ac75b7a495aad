"""Fuzz campaign over every input musegen reads: each case must give a correct result or a clean error.

    python scripts/robustness.py [--seconds 120] [--seed 0] [--cli-every 20] [--keep DIR]

Cases come from the corpus (``tests/corpus/``) and from mutating valid files:
byte flips, truncation, chunk-length edits, inserted junk and structured
edits (header fields, TOML values, SoundFont table records).  Most run
in-process through the Python API, where anything but a result or a
:class:`musegen.errors.MusegenError` is a failure, and so is a result that
breaks an invariant (a pitch outside 0-127, a non-finite sample, a missing
output).  Every ``--cli-every``-th case also runs through the CLI in a
subprocess under a memory limit and a timeout, where the only acceptable
endings are exit 0 with its output, or exit 1/2 with exactly one
``Error:`` line, no traceback and no output file.  SoundFonts that pass
musegen's structural check are always loaded in a subprocess, because a
corrupt one can crash the synthesizer outright.

The time is shared evenly between the kinds (midi, preset, plan, audio,
soundfont, env: limit settings, scenario: commands on files set up for them, and "faults" when ``scripts/fault_campaign.py`` exposes
``run(seconds, seed)``).  A table goes to stdout; every failure prints the
path of the input that reproduces it.  The exit code is 1 when any case
failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CORPUS = ROOT / "tests" / "corpus"
sys.path.insert(0, str(ROOT / "tests"))  # corpus.scenarios: the scenario kind's runner, shared with the tests
PRESETS = ROOT / "src" / "musegen" / "presets"
MEMORY_LIMIT = 4 << 30  # address space of each CLI subprocess
CASE_TIMEOUT = 60  # seconds one in-process case may take before it counts as a hang
KINDS = ("midi", "preset", "plan", "audio", "soundfont", "env", "scenario")

# in-process renders stay short: the campaign is about many odd files, not long ones
os.environ.setdefault("MUSEGEN_MAX_AUDIO_SECONDS", "300")


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no result after {CASE_TIMEOUT} s")


# ---------------------------------------------------------------- mutations


def flip(rng: random.Random, data: bytearray, lo: int = 0) -> None:
    for _ in range(rng.randint(1, 8)):
        if len(data) > lo:
            data[rng.randrange(lo, len(data))] = rng.randrange(256)


def truncate(rng: random.Random, data: bytearray, lo: int = 0) -> None:
    del data[rng.randrange(0, max(1, len(data))):]


def insert_junk(rng: random.Random, data: bytearray, lo: int = 0) -> None:
    pos = rng.randrange(0, len(data) + 1)
    junk = rng.choice([bytes(rng.randrange(256) for _ in range(rng.randint(1, 32))), b"\x00" * 64, b"\xff" * 9,
                       b"MTrk\x00\x00\x00\x04", b"RIFF", b"LIST\xff\xff\xff\x7f", b"[[", b"= nan\n"])
    data[pos:pos] = junk


def duplicate(rng: random.Random, data: bytearray, lo: int = 0) -> None:
    if data:
        a = rng.randrange(len(data))
        data[a:a] = data[a:a + rng.randint(1, 256)]


def chunk_length(rng: random.Random, data: bytearray, lo: int = 0) -> None:
    """Rewrite the length field of a chunk (SMF: big-endian; RIFF: little-endian)."""
    tags = (b"MThd", b"MTrk") if data[:4] == b"MThd" else (b"RIFF", b"LIST", b"fmt ", b"data", b"smpl", b"shdr",
                                                           b"igen", b"phdr", b"pbag", b"ibag", b"inst", b"pgen")
    spots = [i for t in tags for i in _find_all(data, t)]
    if not spots:
        return flip(rng, data, lo)
    at = rng.choice(spots) + 4
    fmt = ">I" if data[:4] == b"MThd" else "<I"
    old = struct.unpack_from(fmt, data, at)[0] if at + 4 <= len(data) else 0
    new = rng.choice([0, 1, 3, 6, old - 1, old + 1, old * 2, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)])
    data[at:at + 4] = struct.pack(fmt, new & 0xFFFFFFFF)


def _find_all(data: bytes | bytearray, tag: bytes, limit: int = 64) -> list[int]:
    out, pos = [], data.find(tag)
    while pos >= 0 and len(out) < limit:
        out.append(pos)
        pos = data.find(tag, pos + 1)
    return out


BYTE_MUTATORS = (flip, flip, truncate, insert_junk, duplicate, chunk_length)


def mutate_bytes(rng: random.Random, data: bytes, extra: tuple[Callable, ...] = (), lo: int = 0) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        rng.choice(BYTE_MUTATORS + extra)(rng, out, lo)
    return bytes(out)


# -- structured edits per format


def midi_header(rng: random.Random, data: bytearray, lo: int = 0) -> None:
    if len(data) >= 14:
        field = rng.choice([8, 10, 12])
        data[field:field + 2] = struct.pack(">H", rng.choice([0, 1, 2, 3, 7, 256, 0x7FFF, 0xFFFF, 0xE728, 0x8000]))


def midi_events(rng: random.Random, data: bytearray, lo: int = 0) -> None:
    """Splice a plausible-but-odd event into a track (giant delta, meta, sysex, stray data bytes)."""
    spots = _find_all(data, b"MTrk")
    if not spots:
        return insert_junk(rng, data)
    at = rng.choice(spots) + 8
    event = rng.choice([
        b"\x8f\xff\xff\x7f\x90\x3c\x40", b"\x00\xff\x51\x03\x00\x00\x00", b"\x00\xff\x51\x03\x00\x00\x01",
        b"\x00\xff\x58\x04\x00\x00\x18\x08", b"\x00\xff\x58\x04\x04\x7f\x18\x08", b"\x00\xff\x01\x8f\xff\xff\x7f",
        b"\x00\xf0\xff\xff\xff\x7f", b"\x00\x3c\x40", b"\x00\x90\xbc\xc0", b"\x00\xf4", b"\x00\xff\x2f\x00",
        b"\x00\x99\x24\x7f", b"\x00\xe0\x7f\x7f", b"\x00\xff\x59\x02\x7f\x05",
        # meta events shorter than their type, sysex escapes holding status bytes, running status
        # after a sysex, a note of no length (issue 20)
        b"\x00\xff\x51\x00", b"\x00\xff\x51\x01\x07", b"\x00\xff\x58\x01\x03", b"\x00\xff\x59\x00",
        b"\x00\xf7\x01\x90", b"\x00\xf7\x03\x90\x3c\x50", b"\x00\xf0\x01\xf7\x00\x3c\x40",
        b"\x00\x90\x3c\x40\x00\x80\x3c\x00",
    ])
    if at <= len(data):
        pos = rng.randrange(at, len(data) + 1)
        data[pos:pos] = event


def wav_header(rng: random.Random, data: bytearray, lo: int = 0) -> None:
    fmt = data.find(b"fmt ")
    if fmt < 0 or fmt + 24 > len(data):
        return flip(rng, data)
    field, size, values = rng.choice([
        (10, "H", [0, 2, 3, 6, 7, 0xFFFE, 0x55]),                 # format tag
        (12, "H", [0, 1, 2, 8, 9, 64, 0xFFFF]),                    # channels
        (14, "I", [0, 1, 999, 1000, 8000, 384001, 1_000_000, 0xFFFFFFFF]),  # sample rate
        (22, "H", [0, 1, 7, 8, 12, 16, 24, 32, 64, 0xFFFF]),       # bits per sample
        (20, "H", [0, 1, 3, 0xFFFF]),                              # block align
    ])
    struct.pack_into("<" + size, data, fmt + field - 2, rng.choice(values))


def wav_samples(rng: random.Random, data: bytearray, lo: int = 0) -> None:
    """Overwrite a run of samples with NaN, inf, huge or denormal float32 values."""
    at = data.find(b"data")
    if at < 0 or at + 12 > len(data):
        return flip(rng, data)
    value = struct.pack("<f", rng.choice([float("nan"), float("inf"), -float("inf"), 3e38, 1e-40, 1e5, -2.0]))
    pos = rng.randrange(at + 8, len(data) - 3)
    for i in range(rng.randint(1, 16)):
        if pos + 4 * i + 4 <= len(data):
            data[pos + 4 * i:pos + 4 * i + 4] = value


SF2_RECORDS = {b"phdr": (38, (24,)), b"pbag": (4, (0, 2)), b"pgen": (4, (0, 2)), b"inst": (22, (20,)),
               b"ibag": (4, (0, 2)), b"igen": (4, (0, 2)), b"shdr": (46, (20, 24, 28, 32, 36, 42, 44)),
               b"pmod": (10, (0, 2, 6, 8)), b"imod": (10, (0, 2, 6, 8))}


def sf2_record(rng: random.Random, data: bytearray, lo: int = 0) -> None:
    """Set one index or offset field of a pdta record to an edge value."""
    tag = rng.choice(list(SF2_RECORDS))
    pos = data.find(tag, lo)
    if pos < 0 or pos + 8 > len(data):
        return flip(rng, data, lo)
    length = struct.unpack_from("<I", data, pos + 4)[0]
    size, fields = SF2_RECORDS[tag]
    n = max(1, length // size)
    at = pos + 8 + rng.randrange(n) * size + rng.choice(fields)
    if at + 4 > len(data):
        return
    if tag == b"shdr" and (at - pos - 8) % size in (20, 24, 28, 32, 36):
        struct.pack_into("<I", data, at, rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << 24)]))
    else:
        struct.pack_into("<H", data, at, rng.choice([0, 1, 41, 53, 60, 61, 255, 300, 0x7FFF, 0xFFFF,
                                                     rng.randrange(1 << 16)]))


def toml_dump(table: dict) -> str:
    """TOML for a parsed table: nested tables as [sections], lists of tables as [[arrays]]."""

    def key(k: str) -> str:
        return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else json.dumps(k)

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + "}"
        return json.dumps(str(v))

    lines, sections = [], []
    for k, v in table.items():
        if isinstance(v, dict):
            sections.append(f"\n[{key(k)}]\n" + "".join(f"{key(a)} = {value(b)}\n" for a, b in v.items()))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                sections.append(f"\n[[{key(k)}]]\n" + "".join(f"{key(a)} = {value(b)}\n" for a, b in item.items()))
        else:
            lines.append(f"{key(k)} = {value(v)}\n")
    return "".join(lines) + "".join(sections)


JUNK_VALUES = (None, True, 0, -1, 1, 7, 999999, 2**62, 0.0, -0.5, 0.5, 1e308, float("nan"), float("inf"), "",
               "x", "C#", "4/4", "../../etc/passwd", "*", "\u00e9", [], [1, 2], ["I", "V"], {}, {"op": "trim"},
               {"a": 1}, [{"op": "explode"}])


def mutate_table(rng: random.Random, table: dict) -> dict:
    table = json.loads(json.dumps(table, default=str))  # deep copy, dates as text
    for _ in range(rng.randint(1, 3)):
        node = table
        for _depth in range(rng.randint(0, 3)):
            kids = [v for v in node.values() if isinstance(v, dict)]
            kids += [x for v in node.values() if isinstance(v, list) for x in v if isinstance(x, dict)]
            if not kids:
                break
            node = rng.choice(kids)
        action = rng.choice(["replace", "replace", "delete", "unknown"])
        keys = list(node)
        # a copy: the same junk table inserted twice (or into itself) made a cycle, and toml_dump recursed forever
        junk = json.loads(json.dumps(rng.choice(JUNK_VALUES)))
        if action == "replace" and keys:
            node[rng.choice(keys)] = junk if junk is not None else "none"
        elif action == "delete" and keys:
            del node[rng.choice(keys)]
        else:
            node[rng.choice(["tempi", "x", "swung", "Name", "grid", "job", "extends"])] = junk if junk is not None else 1
    return table


# ---------------------------------------------------------------- the kinds


def _is_error(exc: BaseException) -> bool:
    from musegen.errors import MusegenError

    return isinstance(exc, MusegenError)


class Kind:
    """One input kind: its cases, how to run one in-process, and how to run one through the CLI."""

    name = ""
    suffix = ""

    def __init__(self, rng: random.Random, work: Path):
        self.rng = rng
        self.work = work
        self.corpus = sorted((CORPUS / self.name).glob("*")) if (CORPUS / self.name).is_dir() else []
        self.count = 0

    def next_case(self) -> bytes:
        self.count += 1
        if self.count <= len(self.corpus):
            return self.corpus[self.count - 1].read_bytes()
        return self.mutate()

    def mutate(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, path: Path) -> str:
        """``"error"`` for a clean MusegenError, ``"ok"`` when :meth:`check` passes; anything else raises."""
        try:
            self.check(path)
        except Exception as exc:
            if _is_error(exc):
                return "error"
            raise
        return "ok"

    def check(self, path: Path) -> None:
        """Use the input as a user would and check the result; raise AssertionError if it is wrong."""
        raise NotImplementedError

    def cli(self, path: Path, out: Path) -> list[str]:
        raise NotImplementedError


class MidiKind(Kind):
    name, suffix = "midi", ".mid"

    def __init__(self, rng, work):
        super().__init__(rng, work)
        self.bases = [p.read_bytes() for p in sorted(SAMPLES.glob("*.mid"))]
        self.valid = 0

    def mutate(self) -> bytes:
        return mutate_bytes(self.rng, self.rng.choice(self.bases), (midi_header, midi_events, midi_events))

    def check(self, path: Path) -> None:
        import numpy as np

        from musegen.midi.analysis import analyze_score
        from musegen.midi.io import load_midi
        from musegen.render.synth import render_score

        score = load_midi(path)
        for track in score.tracks:
            cols = track.notes.numpy()
            if cols["pitch"].size and not (0 <= cols["pitch"].min() and cols["pitch"].max() <= 127):
                raise AssertionError("a note pitch outside 0-127 was accepted")
            if cols["duration"].size and cols["duration"].min() < 1:
                raise AssertionError("a note of no length was accepted (it weighs nothing where notes are weighed)")
        analysis = analyze_score(score)
        y = render_score(score, sample_rate=8000)
        if y.shape[0] != 2 or y.shape[1] == 0 or not np.isfinite(y).all():
            raise AssertionError(f"bad render: shape {y.shape}")
        if not math.isfinite(analysis.duration_s):
            raise AssertionError("non-finite duration")
        self.valid += 1
        if self.valid % 8 == 1:  # now and then, continue it with the procedural engine
            import musegen.api as mg

            out = self.work / "gen"
            (result,) = mg.generate("pop-ballad", midi=path, bars=1, seed=self.valid, engine="procedural",
                                    out_dir=out, post=[])
            if not result.wav.exists():
                raise AssertionError("generate returned a result without its WAV")
            shutil.rmtree(out, ignore_errors=True)

    def cli(self, path: Path, out: Path) -> list[str]:
        return ["render", str(path), "-o", str(out / "x.wav"), "--sample-rate", "8000"]


class TomlKind(Kind):
    """Inputs that are TOML files: structured edits of their tables, or byte-level damage."""

    suffix = ".toml"
    texts: list[bytes]
    tables: list[dict]

    def mutate(self) -> bytes:
        if self.rng.random() < 0.5:
            return toml_dump(mutate_table(self.rng, self.rng.choice(self.tables))).encode("utf-8", "replace")
        return mutate_bytes(self.rng, self.rng.choice(self.texts))


class PresetKind(TomlKind):
    name = "preset"

    def __init__(self, rng, work):
        super().__init__(rng, work)
        import tomllib

        self.texts = [p.read_bytes() for p in sorted(PRESETS.glob("*.toml"))]
        self.tables = [tomllib.loads(t.decode()) for t in self.texts]

    def check(self, path: Path) -> None:
        from musegen.pipeline import plan_request
        from musegen.presets import Preset, load_preset

        preset = load_preset(path)
        if not isinstance(preset, Preset) or not 20 <= preset.tempo[0] <= preset.tempo[1] <= 400:
            raise AssertionError(f"invalid preset accepted: {preset!r}")
        request = plan_request(preset, bars=4, random_seed=1)
        if not (request.bars == 4 and 0 <= request.tonic <= 11):
            raise AssertionError("bad request from a valid preset")

    def cli(self, path: Path, out: Path) -> list[str]:
        return ["generate", "--preset", str(path), "--bars", "1", "--seed", "1", "--engine", "procedural",
                "--no-post", "-o", str(out / "gen")]


class PlanKind(TomlKind):
    name = "plan"

    def __init__(self, rng, work):
        super().__init__(rng, work)
        import tomllib

        # the plan's relative paths (sample sketches) resolve in the work folder
        for p in SAMPLES.glob("*.mid"):
            shutil.copy(p, work / p.name)
        self.texts = [(SAMPLES / "plan.toml").read_bytes(),
                      b'[defaults]\nengine = "procedural"\nbars = 4\n[[job]]\npreset = "lofi-chill"\nseed = 3\n'
                      b'[[sweep]]\npreset = "synthwave"\ngrid.seed = [1, 2]\ngrid.tempo = [90, 120]\n'
                      b'[[job]]\ncommand = "render"\nmidi = "melody.mid"\nlufs = -16\n']
        self.tables = [tomllib.loads(t.decode()) for t in self.texts]

    def check(self, path: Path) -> None:
        from musegen.batch.plan import load_plan

        plan = load_plan(path)
        if not plan.jobs or len({j.id for j in plan.jobs}) != len(plan.jobs):
            raise AssertionError("a plan without jobs, or with repeated ids, was accepted")

    def cli(self, path: Path, out: Path) -> list[str]:
        return ["batch", str(path), "--dry-run"]


class AudioKind(Kind):
    name, suffix = "audio", ".wav"

    def __init__(self, rng, work):
        super().__init__(rng, work)
        import numpy as np
        import soundfile as sf

        t = np.arange(8000) / 8000.0
        tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
        self.bases = []
        for channels, subtype, sr in ((1, "PCM_16", 8000), (2, "FLOAT", 8000), (8, "PCM_16", 8000),
                                      (2, "PCM_24", 44100), (1, "PCM_U8", 1000)):
            path = work / f"base-{channels}-{subtype}.wav"
            sf.write(path, np.stack([tone] * channels, axis=1), sr, subtype=subtype)
            self.bases.append(path.read_bytes())
        for ext in ("flac", "ogg", "mp3"):  # compressed: their decoders see the damage too
            path = work / f"base.{ext}"
            try:
                sf.write(path, np.stack([tone] * 2, axis=1), 16000)
            except (RuntimeError, TypeError, ValueError):  # a libsndfile built without it
                continue
            self.bases.append(path.read_bytes())
            if ext == "flac":  # as a streaming encoder writes it: STREAMINFO's total samples 0, "unknown"
                stream = bytearray(self.bases[-1])
                stream[21] &= 0xF0
                stream[22:26] = bytes(4)
                self.bases.append(bytes(stream))
        self.valid = 0

    def mutate(self) -> bytes:
        return mutate_bytes(self.rng, self.rng.choice(self.bases), (wav_header, wav_header, wav_samples))

    def check(self, path: Path) -> None:
        import numpy as np

        import musegen.api as mg
        from musegen.audio.io import read_audio
        from musegen.errors import MusegenError

        out = self.work / "out.wav"
        try:
            y, sr = read_audio(path)
            if not (np.isfinite(y).all() and 1 <= y.shape[0] <= 8 and 1000 <= sr <= 384000):
                raise AssertionError(f"bad audio accepted: shape {y.shape}, {sr} Hz")
            info = mg.post(path, out, [{"op": "trim"}, {"op": "fade_out", "seconds": 0.01},
                                       {"op": "loudness", "lufs": -16}])
            if not out.exists() or not math.isfinite(info["lufs"]):
                raise AssertionError("post gave no file or a non-finite loudness")
            self.valid += 1
            if self.valid % 5 == 1:
                mg.analyze(path)
        except MusegenError as exc:
            if out.exists():
                raise AssertionError(f"post failed ({exc}) but left {out}") from None
            raise
        finally:
            out.unlink(missing_ok=True)

    def cli(self, path: Path, out: Path) -> list[str]:
        return ["post", str(path), "-o", str(out / "x.wav"), "--trim", "--lufs", "-16"]


class SoundFontKind(Kind):
    name, suffix = "soundfont", ".sf2"

    def __init__(self, rng, work):
        super().__init__(rng, work)
        from musegen.render.synth import default_soundfont

        self.real = default_soundfont().read_bytes()
        self.pdta = self.real.find(b"pdta")
        self.mid = SAMPLES / "melody-and-chords.mid"

    def mutate(self) -> bytes:
        data = bytearray(self.real)
        r = self.rng.random()
        if r < 0.1:
            truncate(self.rng, data)
        elif r < 0.2:
            chunk_length(self.rng, data)
        else:  # the tables, where damage reaches the loader
            for _ in range(self.rng.randint(1, 4)):
                self.rng.choice((flip, sf2_record, sf2_record))(self.rng, data, self.pdta)
        return bytes(data)

    def check(self, path: Path) -> None:
        from musegen.render.synth import resolve_soundfont

        resolve_soundfont(path)
        # accepted: loading it may still crash a process, so only ever in a subprocess
        problem = cli_problem(self.cli(path, self.work), self.work / "x.wav")
        if problem:
            raise AssertionError(problem)

    def cli(self, path: Path, out: Path) -> list[str]:
        return ["render", str(self.mid), "-o", str(out / "x.wav"), "--soundfont", str(path), "--sample-rate", "8000"]


class EnvKind(Kind):
    """Limit settings, ``MUSEGEN_MAX_<NAME>=value``: used, or refused naming the variable.

    A limit bounds what is read, never a buffer to allocate: this kind's process runs under
    the CLI's address-space limit, so reading a small file under a huge limit that allocated
    a buffer of its size fails here with MemoryError instead of passing.
    """

    name, suffix = "env", ".env"
    VALUES = ("1e10", "1e15", "1e16", "1e30", "2e15", "1000000000000000001", "-1", "-1e30", "0", "nan", "inf",
              "1e999", "1_000", "0x10", " 64 ", "1e3", "2.5", "ten", "", "99999999999999999999999")

    def __init__(self, rng, work):
        super().__init__(rng, work)
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))  # this kind's child process only
        from musegen import limits

        self.variables = [lim.env for lim in limits.LIMITS.values()]
        self.plan = work / "plan.toml"
        self.plan.write_text('[[job]]\npreset = "lofi-chill"\nseed = 1\n')

    def mutate(self) -> bytes:
        rng = self.rng
        value = rng.choice(self.VALUES) if rng.random() < 0.7 else f"{rng.uniform(0, 10):.{rng.randint(0, 3)}f}e{rng.randint(0, 40)}"
        return f"{rng.choice(self.variables)}={value}\n".encode()

    @staticmethod
    def parse(path: Path) -> tuple[str, str]:
        variable, _, value = path.read_text().rstrip("\n").partition("=")
        return variable, value

    def check(self, path: Path) -> None:
        from musegen import limits
        from musegen.batch.plan import load_plan
        from musegen.errors import ParameterError
        from musegen.midi.io import load_midi
        from musegen.presets import load_preset

        variable, value = self.parse(path)
        old = os.environ.get(variable)
        os.environ[variable] = value
        try:
            try:
                limits.get(variable.removeprefix("MUSEGEN_MAX_").lower())
            except ParameterError as exc:
                if variable not in str(exc):
                    raise AssertionError(f"the refusal does not name {variable}: {exc}") from None
                raise
            load_midi(SAMPLES / "melody.mid")  # each may refuse its input under a tiny limit, cleanly
            load_preset(PRESETS / "lofi-chill.toml")
            load_plan(self.plan)
        finally:
            if old is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = old

    def cli(self, path: Path, out: Path) -> list[str]:
        return ["batch", str(self.plan), "--dry-run"]  # reads a plan, its presets and (by name) nothing else

    def cli_env(self, path: Path) -> dict[str, str]:
        variable, value = self.parse(path)
        return {variable: value}


class ScenarioKind(Kind):
    """A command on files set up for it (``tests/corpus/scenario/``, run by ``tests/corpus/scenarios.py``).

    The corpus cases are checked as written (exit code, message, files kept or
    made); a mutation gives a case a hostile ``--name``, output folder or home
    and keeps only the rules that hold for any input: a clean ending, no raw
    terminal control, no temporary file left, and every file the set-up made
    for the user unchanged.  Each case runs ``musegen`` in a subprocess, so this
    kind has no separate CLI pass.
    """

    name, suffix = "scenario", ".json"
    timeout = 400  # a case may run two batches
    NAMES = ("\x1b]0;pwned\x07", "a\nb", "take[1]", "*", "?", "-rf", "--help", ".", "", " ", "a/b", "\u202eevil",
             "x" * 300, "{seed}{seed}", "{preset:>300}", "{0}", "{", "}", "a:b", "ü名前", "-", "{variation}",
             "..x", "NUL", "song.mid", "idea")
    FOLDERS = ("out[1]", "*", "a b", "ü", "-o", "--", ".", "o/../o", "idea.mid", "song.wav", "x" * 250,
               "styles", "sub/same.mid")
    HOMES = ("/nonexistent", "", "/proc", "/dev/null", "relative/home")

    def __init__(self, rng, work):
        super().__init__(rng, work)
        self.specs = [json.loads(p.read_text()) for p in self.corpus]

    def mutate(self) -> bytes:
        import copy

        rng = self.rng
        spec = copy.deepcopy(rng.choice(self.specs))
        args = spec["args"]
        how = rng.choice(("name", "folder", "home"))
        if how == "name" and args[0] in ("generate", "extend"):
            name = rng.choice(self.NAMES) + rng.choice(("", "{seed}", "-{variation}"))
            if "--name" in args:
                args[args.index("--name") + 1] = name
            else:
                args += ["--name", name]
        elif how in ("name", "folder") and "-o" in args:
            args[args.index("-o") + 1] = rng.choice(self.FOLDERS)
        else:
            spec.setdefault("env", {})["HOME"] = rng.choice(self.HOMES)
        made = [v if isinstance(v, str) else v[0]  # every file the set-up made for the user
                for step in spec.get("setup", []) for k, v in step.items() if k in ("midi", "wav", "text", "json")]
        spec["unchanged"] = sorted(set(spec.get("unchanged", [])) | {m for m in made if not m.startswith("run/")})
        spec["mutated"] = how
        return (json.dumps(spec, indent=1, ensure_ascii=True) + "\n").encode()

    def run(self, path: Path) -> str:
        from corpus.scenarios import run_scenario

        spec = json.loads(path.read_text())
        folder = self.work / f"s{self.count}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        try:
            rc, problems = run_scenario(spec, folder, strict="mutated" not in spec, timeout=self.timeout - 40)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))
        return "ok" if rc == 0 else "error"


CLASSES: dict[str, type[Kind]] = {"midi": MidiKind, "preset": PresetKind, "plan": PlanKind, "audio": AudioKind,
                                   "soundfont": SoundFontKind, "env": EnvKind, "scenario": ScenarioKind}


# ---------------------------------------------------------------- the CLI check


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


#: what a terminal executes instead of showing (no progress bar draws: stderr is not a terminal here)
TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def cli_problem(args: list[str], output: Path, timeout: float = 120, env: dict[str, str] | None = None) -> str | None:
    """What is wrong with how ``musegen ARGS`` ended (with ``env`` added to the environment), or ``None``."""
    try:
        proc = subprocess.run([sys.executable, "-m", "musegen", *args], capture_output=True, text=True,
                              timeout=timeout, preexec_fn=_limit_memory, cwd=output.parent,
                              env={**os.environ, **env} if env else None)
    except subprocess.TimeoutExpired:
        return f"CLI hung (no exit after {timeout} s)"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    try:
        raw = TERMINAL_CONTROLS.search(proc.stdout + proc.stderr)
        if raw:  # a name or value from the input, printed so that a terminal executes it
            return f"CLI printed a raw {raw.group()!r}: {(proc.stdout + proc.stderr)[-300:]!r}"
        if proc.returncode == 0:
            return None
        if proc.returncode not in (1, 2):
            return f"CLI exit code {proc.returncode}: {proc.stderr[-300:]}"
        if "Traceback" in proc.stderr:
            return f"CLI traceback: {proc.stderr[-300:]}"
        if len(lines) != 1 or not lines[0].startswith("Error: "):
            return f"CLI stderr is not one 'Error:' line: {proc.stderr[-300:]!r}"
        if output.is_file() or (output.is_dir() and any(output.iterdir())):
            return f"CLI failed but left {output}"
        parts = [p.name for p in output.parent.glob(".*.part")]
        if parts:
            return f"CLI failed but left temporary files {parts}"
        return None
    finally:
        if output.is_dir():
            shutil.rmtree(output, ignore_errors=True)
        else:
            output.unlink(missing_ok=True)


# ---------------------------------------------------------------- the campaign


def campaign(kind: Kind, seconds: float, cli_every: int, keep: Path, stats: dict | None = None,
             state: Path | None = None) -> dict:
    """Run cases of ``kind`` for ``seconds``; ``state`` gets the counts after every case."""
    stats = stats or {"tried": 0, "clean_errors": 0, "correct": 0, "failures": 0, "cli": 0}
    kind.count = stats["tried"]  # after a crash, carry on past the cases already run
    deadline = time.monotonic() + seconds
    case_dir = kind.work / "case"
    case_dir.mkdir(exist_ok=True)
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        while time.monotonic() < deadline or stats["tried"] < len(kind.corpus):
            data = kind.next_case()
            stats["tried"] += 1
            path = case_dir / f"case{kind.suffix}"
            path.write_bytes(data)
            if state is not None:  # written first: if the case kills the process, the parent knows which
                state.write_text(json.dumps({"stats": stats, "running": True}))
            problem = None
            verdict = None
            signal.alarm(getattr(kind, "timeout", CASE_TIMEOUT))
            try:
                verdict = kind.run(path)
            except Exception as exc:  # noqa: BLE001 - every escape is what we are looking for
                problem = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                tb = traceback.format_exc().strip().splitlines()
                problem += " | " + " / ".join(line.strip() for line in tb[-3:-1])
            finally:
                signal.alarm(0)
            if problem is None and cli_every and stats["tried"] % cli_every == 0 and kind.name not in ("soundfont", "scenario"):
                stats["cli"] += 1
                out = case_dir / "cli"
                out.mkdir(exist_ok=True)
                args = kind.cli(path, out)
                target = Path(args[args.index("-o") + 1]) if "-o" in args else out / "none"
                problem = cli_problem(args, target, env=getattr(kind, "cli_env", lambda p: None)(path))
            if problem is None:
                stats["correct" if verdict == "ok" else "clean_errors"] += 1
            else:
                record_failure(kind, stats, path, problem, keep)
            if state is not None:
                state.write_text(json.dumps({"stats": stats, "running": False}))
    finally:
        signal.signal(signal.SIGALRM, old)
    return stats


def record_failure(kind: Kind, stats: dict, path: Path, problem: str, keep: Path) -> None:
    stats["failures"] += 1
    keep.mkdir(parents=True, exist_ok=True)
    saved = keep / f"{kind.name}-{stats['tried']:05d}{kind.suffix}"
    shutil.copy(path, saved)
    print(f"FAILURE {kind.name}: {problem}\n  reproduce with: {saved}", file=sys.stderr, flush=True)


def _child(name: str, seed: str, seconds: float, cli_every: int, keep: Path, work: Path, state: Path) -> None:
    stats = json.loads(state.read_text())["stats"] if state.exists() else None
    kind = CLASSES[name](random.Random(seed), work)
    campaign(kind, seconds, cli_every, keep, stats, state)


def isolated_campaign(name: str, seed: int, seconds: float, cli_every: int, keep: Path, work: Path) -> dict:
    """Run a kind's campaign in a child process, so that an input that crashes the process
    (a segmentation fault in a C++ parser) is recorded as a failure instead of ending the run."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    state = work / "state.json"
    deadline = time.monotonic() + seconds
    restarts = 0
    while True:
        left = max(0.0, deadline - time.monotonic())
        proc = ctx.Process(target=_child, args=(name, f"{seed}-{name}-{restarts}", left, cli_every, keep, work, state))
        proc.start()
        proc.join(left + 10 * CASE_TIMEOUT)
        if proc.is_alive():
            proc.kill()
            proc.join()
        doc = json.loads(state.read_text()) if state.exists() else {"stats": None, "running": False}
        if proc.exitcode == 0 and not doc["running"]:
            return doc["stats"]
        stats = doc["stats"] or {"tried": 1, "clean_errors": 0, "correct": 0, "failures": 0, "cli": 0}
        kind_stub = type("Stub", (), {"name": name, "suffix": CLASSES[name].suffix})()
        case = work / "case" / f"case{CLASSES[name].suffix}"
        record_failure(kind_stub, stats, case, f"the process died (exit code {proc.exitcode}) on this input", keep)
        state.write_text(json.dumps({"stats": stats, "running": False}))
        restarts += 1
        if time.monotonic() >= deadline or restarts > 50:
            return stats


def fault_row(seconds: float, seed: int) -> dict | None:
    """The other half of the campaign (kill, disk full, locks...), when scripts/fault_campaign.py offers it."""
    path = ROOT / "scripts" / "fault_campaign.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("fault_campaign", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken neighbour must not hide our table
        print(f"faults: cannot import {path}: {exc}", file=sys.stderr)
        return None
    run = getattr(module, "run", None)
    if not callable(run):
        return None
    try:
        row = run(seconds, seed)
    except Exception as exc:  # noqa: BLE001
        print(f"FAILURE faults: fault_campaign.run raised {type(exc).__name__}: {exc}", file=sys.stderr)
        return {"tried": 1, "clean_errors": 0, "correct": 0, "failures": 1}
    return {k: int(row.get(k, 0)) for k in ("tried", "clean_errors", "correct", "failures")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="total time for the campaign")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cli-every", type=int, default=20, help="run every Nth case through the CLI too (0: never)")
    parser.add_argument("--kinds", default=",".join(KINDS + ("faults",)), help="comma-separated kinds to run")
    parser.add_argument("--keep", type=Path, help="folder for failing inputs (default: a new temporary folder)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    wanted = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = set(wanted) - set(KINDS) - {"faults"}
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")

    keep = args.keep or Path(tempfile.mkdtemp(prefix="musegen-robustness-failures-"))
    share = args.seconds / len(wanted)
    rows: dict[str, dict] = {}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="musegen-robustness-") as tmp:
        for i, name in enumerate(wanted):
            if name == "faults":
                row = fault_row(share, args.seed)
                if row is None:
                    print("faults: scripts/fault_campaign.py has no run(seconds, seed); row skipped", file=sys.stderr)
                    continue
                rows[name] = row
                continue
            work = Path(tmp) / name
            work.mkdir()
            rows[name] = isolated_campaign(name, args.seed, share, args.cli_every, keep, work)
            print(f"{name}: {rows[name]['tried']} cases in {time.monotonic() - t0:.0f} s", file=sys.stderr,
                  flush=True)

    header = ("kind", "cases tried", "clean errors", "correct results", "failures")
    table = [header] + [(name, str(r["tried"]), str(r["clean_errors"]), str(r["correct"]), str(r["failures"]))
                        for name, r in rows.items()]
    total = {k: sum(r[k] for r in rows.values()) for k in ("tried", "clean_errors", "correct", "failures")}
    table.append(("total", str(total["tried"]), str(total["clean_errors"]), str(total["correct"]),
                  str(total["failures"])))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for n, r in enumerate(table):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if n == 0 or n == len(table) - 2:
            print("  ".join("-" * w for w in widths))
    cli_runs = sum(r.get("cli", 0) for r in rows.values())
    print(f"seed {args.seed}, {time.monotonic() - t0:.0f} s, {cli_runs} cases also run through the CLI",
          file=sys.stderr)
    if total["failures"]:
        print(f"failing inputs are in {keep}", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(keep, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
