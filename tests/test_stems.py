"""``--stems``: one WAV and one MIDI file per part that add up to the mix before its mastering steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import symusic

from conftest import make_sketch
from musegen.audio.chain import apply_chain
from musegen.audio.loop import fold_tail
from musegen.audio.wavmeta import read_metadata
from musegen.errors import ParameterError, PresetError
from musegen.pipeline import TAIL_SECONDS, generate, resolve_preset
from musegen.render.synth import render_score

MASTERING = ("loudness", "peak_normalize")


def read(path):
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return y.T, sr


def rel_db(a, b) -> float:
    """The level of ``a - b`` relative to ``b``, in dB."""
    err = np.sqrt(np.mean((a.astype(np.float64) - b) ** 2))
    return 20 * np.log10(max(err, 1e-30) / np.sqrt(np.mean(b.astype(np.float64) ** 2)))


def stems_of(result):
    side = result.sidecar["analysis"]["stems"]
    base = result.wav.parent
    return side, [read(base / p["wav"])[0] for p in side["parts"]]


def engine_score(preset, engine, **kw):
    """The score the engine makes for these arguments (seeded: the one the pipeline rendered).

    Not the result's MIDI file: a file cannot hold two overlapping notes of one pitch, which
    the symbolic engine writes, as they were rendered."""
    import tempfile

    from musegen.pipeline.args import GenerateArgs
    from musegen.pipeline.planning import plan

    job = plan(GenerateArgs(preset=preset, engine=engine, out_dir=tempfile.mkdtemp(), **kw))
    (item,) = job.engine.generate(job.request)
    return item.score


def pre_master(score, preset, steps, sr):
    """The mix before mastering: ``score`` rendered as the pipeline does, the chain without mastering."""
    y = render_score(score, sample_rate=sr, gain_db=resolve_preset(preset).render.gain_db, tail_seconds=TAIL_SECONDS)
    y, _ = apply_chain(y, sr=sr, steps=[s for s in steps if s["op"] not in MASTERING])
    return y


@pytest.mark.parametrize("engine", ["procedural", "symbolic"])
def test_stems_add_up_to_the_mix_before_mastering(engine, tmp_path):
    # pop-ballad's chain: trim, reverb, fade_out, loudness: a signal-dependent cut, linear steps, mastering
    (res,) = generate("pop-ballad", engine=engine, bars=4, seed=3, out_dir=tmp_path, stems=True)
    side, stems = stems_of(res)
    score = symusic.Score(str(res.mid))
    with_notes = [t for t in score.tracks if len(t.notes)]
    assert len(side["parts"]) == len(with_notes) >= 4
    assert side["separated"] is True and side["mastering_on_mix_only"] == ["loudness"]
    steps = res.sidecar["parameters"]["post"]
    ref = pre_master(engine_score("pop-ballad", engine, bars=4, seed=3), "pop-ballad", steps, 44100)
    mix, sr = read(res.wav)
    assert all(y.shape == mix.shape == ref.shape for y in stems)
    assert rel_db(np.sum(stems, axis=0), ref) < -60
    # the mastering steps ran on the mix alone: the mix is the stems' sum, mastered
    mastered, _ = apply_chain(np.sum(stems, axis=0), sr=sr, steps=[s for s in steps if s["op"] in MASTERING])
    assert rel_db(mix, mastered) < -60
    # and the stems were not mastered: they sit well below the mix, by the gain the sidecar gives
    assert max(float(np.abs(y).max()) for y in stems) < 0.5 * float(np.abs(mix).max())
    from musegen.audio.analysis import loudness_lufs

    gain = loudness_lufs(mix, sr=sr) - loudness_lufs(np.sum(stems, axis=0), sr=sr)
    assert side["master_gain_db"] == pytest.approx(gain, abs=0.05) and side["master_gain_db"] > 6


def test_stems_follow_a_cut_to_seconds(tmp_path):
    (res,) = generate("bach-chorale", engine="procedural", seconds=3, seed=2, out_dir=tmp_path, stems=True)
    _, stems = stems_of(res)
    mix, sr = read(res.wav)
    assert mix.shape[1] == 3 * sr and all(y.shape == mix.shape for y in stems)
    premaster = [s for s in res.sidecar["parameters"]["post"] if s["op"] not in MASTERING]
    (ref,) = generate("bach-chorale", engine="procedural", seconds=3, seed=2, out_dir=tmp_path / "ref",
                      post=premaster, stems=True)
    # the pre-master run's stems are these stems (its mastering-free chain is theirs)
    _, ref_stems = stems_of(ref)
    assert max(rel_db(a, b) for a, b in zip(stems, ref_stems)) < -100
    # and they add up to its mix, the pre-master mix (written as 16-bit PCM)
    assert rel_db(np.sum(stems, axis=0), read(ref.wav)[0]) < -60


def test_one_wav_and_one_midi_per_part_named_by_role_and_tagged(tmp_path):
    (res,) = generate("pop-ballad", engine="procedural", bars=4, seed=5, out_dir=tmp_path, stems=True)
    side = res.sidecar["analysis"]["stems"]
    folder = tmp_path / "pop-ballad-s5.stems"
    names = sorted(p.name for p in folder.iterdir())
    parts = side["parts"]
    assert names == sorted([Path(p["wav"]).name for p in parts] + [Path(p["mid"]).name for p in parts])
    assert {p["name"] for p in parts} >= {"lead-voice-oohs", "bass-finger-bass", "drums-standard-kit"}
    assert all(p["name"] == f"{p['role']}-{p['instrument']}" for p in parts)
    # the sidecar on disk lists them among the result's files
    on_disk = json.loads(res.json.read_text())
    assert on_disk["files"]["stems"] == [{"wav": p["wav"], "mid": p["mid"]} for p in parts]
    assert on_disk["parameters"]["stems"] is True
    mix_meta = read_metadata(res.wav)
    for p in parts:
        meta = read_metadata(tmp_path / p["wav"])
        assert meta["info"]["INAM"] == f"pop-ballad-s5 {p['name']}"
        assert meta["info"]["ICMT"] == mix_meta["info"]["ICMT"] and "musegen" in meta["info"]["ISFT"]
        assert meta["acid"]["tempo_bpm"] == pytest.approx(mix_meta["acid"]["tempo_bpm"])


def test_a_parts_midi_holds_only_that_parts_notes(tmp_path):
    (res,) = generate("pop-ballad", engine="procedural", bars=4, seed=5, out_dir=tmp_path, stems=True)
    full = symusic.Score(str(res.mid))
    by_name = {t.name: t for t in full.tracks}
    total = 0
    for p in res.sidecar["analysis"]["stems"]["parts"]:
        part = symusic.Score(str(tmp_path / p["mid"]))
        tracks = [t for t in part.tracks if len(t.notes)]
        assert [t.name for t in tracks] == p["tracks"]
        src = by_name[p["tracks"][0]]
        notes = lambda t: sorted((n.time, n.duration, n.pitch, n.velocity) for n in t.notes)
        assert notes(tracks[0]) == notes(src) and tracks[0].program == src.program
        assert tracks[0].is_drum == src.is_drum
        assert part.tempos[0].qpm == pytest.approx(full.tempos[0].qpm)
        total += len(tracks[0].notes)
    assert total == sum(len(t.notes) for t in full.tracks)


def test_a_quiet_part_keeps_the_mix_velocity_bands(tmp_path):
    """A part of few soft notes renders in the band the whole score put them in, as in the mix."""
    from musegen.render.synth import render_parts

    s = symusic.Score(480)
    loud = symusic.Track(name="lead", program=0)
    for i in range(60):
        loud.notes.append(symusic.Note(i * 240, 240, 60 + i % 12, 110))
    soft = symusic.Track(name="pad", program=48)
    soft.notes.append(symusic.Note(0, 1920, 48, 50))  # alone it would be a band of its own
    s.tracks.extend([loud, soft])
    mix, (a, b) = render_parts(s, ((0,), (1,)), sample_rate=22050)
    assert rel_db(a + b, mix) < -100
    assert np.abs(b).max() > 1e-3  # not silent


def test_stems_with_a_loop(tmp_path):
    (res,) = generate("pop-ballad", engine="procedural", bars=2, seed=4, out_dir=tmp_path, stems=True, loop=True)
    side, stems = stems_of(res)
    mix, sr = read(res.wav)
    loop = res.sidecar["analysis"]["loop"]
    assert all(y.shape == mix.shape for y in stems) and mix.shape[1] == loop["end"]
    # the loop's chain: no trim or fades, the tails folded onto the start, mastering on the mix only
    score = engine_score("pop-ballad", "procedural", bars=2, seed=4)
    y = render_score(score, sample_rate=sr, tail_seconds=TAIL_SECONDS)
    y, _ = apply_chain(y, sr=sr, steps=[s for s in res.sidecar["parameters"]["post"]
                                        if s["op"] not in MASTERING + ("trim", "fade_in", "fade_out")])
    assert rel_db(np.sum(stems, axis=0), fold_tail(y, loop["end"])) < -60
    for p in side["parts"]:
        assert read_metadata(tmp_path / p["wav"])["smpl"]["loops"] == [(loop["start"], loop["end"])]


def test_a_step_the_stems_cannot_follow_is_refused_before_anything_is_written(tmp_path):
    post = [{"op": "reverb"}, {"op": "pitch_shift", "semitones": 2}, {"op": "loudness"}]
    with pytest.raises(ParameterError, match=r"post\[1\] \(pitch_shift\).*not linear"):
        generate("pop-ballad", engine="procedural", bars=2, seed=1, out_dir=tmp_path, post=post, stems=True)
    assert list(tmp_path.iterdir()) == []


def test_cli_stems_flag_and_bad_chain(cli, tmp_path):
    proc = cli("generate", "-p", "pop-ballad", "--engine", "procedural", "--bars", "2", "--seed", "1",
               "-o", tmp_path, "--stems")
    assert proc.returncode == 0, proc.stderr
    assert str(tmp_path / "pop-ballad-s1.stems") in proc.stdout.splitlines()
    assert (tmp_path / "pop-ballad-s1.stems" / "bass-finger-bass.wav").is_file()
    preset = tmp_path / "shifted.toml"
    preset.write_text('name = "shifted"\nextends = "pop-ballad"\npost = [{op = "pitch_shift", semitones = 1}]\n'
                      '[render]\nstems = true\n')
    proc = cli("generate", "-p", preset, "--engine", "procedural", "--bars", "2", "-o", tmp_path / "x")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("Error: --stems cannot follow")
    assert "Traceback" not in proc.stderr
    # --no-stems overrides the preset's stems = true
    proc = cli("generate", "-p", preset, "--engine", "procedural", "--bars", "2", "--seed", "1", "--no-stems",
               "-o", tmp_path / "y")
    assert proc.returncode == 0, proc.stderr
    assert not any(p.suffix == ".stems" for p in (tmp_path / "y").iterdir())


def test_preset_stems_key_is_a_boolean(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\nextends = "pop-ballad"\n[render]\nstems = "yes"\n')
    with pytest.raises(PresetError, match=r"render\.stems must be true or false, got 'yes'"):
        resolve_preset(str(path))
    path.write_text('name = "p"\nextends = "pop-ballad"\n[render]\nstems = true\n')
    (res,) = generate(str(path), engine="procedural", bars=2, seed=1, out_dir=tmp_path / "out")
    assert res.sidecar["analysis"]["stems"]["parts"]


def test_a_stems_folder_holding_an_input_is_refused(tmp_path):
    (tmp_path / "sketch-pop-ballad-s1.stems").mkdir()
    inside = make_sketch(tmp_path / "sketch-pop-ballad-s1.stems" / "sketch.mid")
    with pytest.raises(ParameterError, match="holds an input"):
        generate("pop-ballad", engine="procedural", midi=inside, bars=2, seed=1, out_dir=tmp_path, stems=True)
    assert inside.is_file()


def test_a_rerun_replaces_the_stems_folder(tmp_path):
    stale = tmp_path / "pop-ballad-s1.stems" / "old-part.wav"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    generate("pop-ballad", engine="procedural", bars=2, seed=1, out_dir=tmp_path, stems=True)
    assert not stale.exists() and any(stale.parent.glob("*.wav"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_batch_key_stems(tmp_path):
    from musegen.batch.params import check_params

    assert check_params({"command": "generate", "stems": True})["stems"] is True
    with pytest.raises(ParameterError, match="stems must be true or false, got 'no'"):
        check_params({"command": "generate", "stems": "no"})


# -- an audio engine: no separated stems ---------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_musicgen(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from musegen.engines.musicgen.testing import make_model_dir

    return make_model_dir(tmp_path_factory.mktemp("musicgen") / "tiny-musicgen", "tiny")


def test_musicgen_without_a_seed_says_it_has_no_stems(tiny_musicgen, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (res,) = generate("lofi-chill", engine="musicgen", engine_options={"model": str(tiny_musicgen)}, seconds=1,
                      seed=1, out_dir=tmp_path, post=[], stems=True)
    side = json.loads(res.json.read_text())["analysis"]["stems"]
    assert side["separated"] is False and side["parts"] == []
    assert "no separated stems" in side["note"] and "no MIDI seed" in side["note"]
    assert not any(p.name.endswith(".stems") for p in tmp_path.iterdir())


def test_musicgen_with_a_seed_writes_the_seeds_parts_and_says_so(tiny_musicgen, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sketch = make_sketch(tmp_path / "sketch.mid", tempo=120, bars=1)
    (res,) = generate("lofi-chill", engine="musicgen", engine_options={"model": str(tiny_musicgen)}, seconds=1,
                      seed=1, midi=sketch, out_dir=tmp_path / "out", post=[{"op": "reverb"}], stems=True)
    side = res.sidecar["analysis"]["stems"]
    assert side["separated"] is False and side["source"] == "midi seed"
    assert "no separated stems" in side["note"] and "seed's parts" in side["note"]
    assert [p["role"] for p in side["parts"]] == ["lead", "bass"]
    mix, _ = read(res.wav)
    for p in side["parts"]:
        y, _ = read(tmp_path / "out" / p["wav"])
        assert y.shape == mix.shape and np.abs(y).max() > 1e-3


# -- the mix, the files, the names ----------------------------------------------------------------

def test_the_mix_is_the_same_with_or_without_stems(tmp_path):
    (a,) = generate("pop-ballad", engine="procedural", bars=2, seed=6, out_dir=tmp_path / "a", stems=True)
    (b,) = generate("pop-ballad", engine="procedural", bars=2, seed=6, out_dir=tmp_path / "b")
    assert read(a.wav)[0].tobytes() == read(b.wav)[0].tobytes()
    assert b.sidecar["parameters"]["stems"] is False and "stems" not in b.sidecar["analysis"]


def test_a_failed_stems_write_leaves_no_result(tmp_path):
    (tmp_path / "pop-ballad-s1.stems").write_text("a file where the folder goes")
    from musegen.errors import OutputError

    with pytest.raises(OutputError, match=r"pop-ballad-s1\.stems.*a file is in the way"):
        generate("pop-ballad", engine="procedural", bars=2, seed=1, out_dir=tmp_path, stems=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pop-ballad-s1.stems"]  # no wav/mid/json, no temp


def test_track_names_never_become_paths(tmp_path):
    sketch = make_sketch(tmp_path / "sketch.mid")
    score = symusic.Score(str(sketch))
    score.tracks[0].name = "../../evil"
    score.dump_midi(str(sketch))
    (res,) = generate("pop-ballad", engine="procedural", midi=sketch, bars=2, seed=1, out_dir=tmp_path / "out",
                      stems=True)
    folder = tmp_path / "out" / "sketch-pop-ballad-s1.stems"
    names = [p["name"] for p in res.sidecar["analysis"]["stems"]["parts"]]
    assert names[0] == "lead-flute"  # the guessed role, not the name
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.{x}" for n in names for x in ("wav", "mid"))
    assert not (tmp_path / "evil.wav").exists()


def test_a_batch_job_with_stems(tmp_path):
    from conftest import run_cli

    plan = tmp_path / "plan.toml"
    plan.write_text('[[job]]\nengine = "procedural"\npreset = "techno"\nbars = 2\nseed = 1\nstems = true\n')
    out = tmp_path / "run"
    proc = run_cli("batch", plan, "-o", out, "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines() if x.strip()]
    folder = out / row["outputs"]["stems"]
    side = json.loads((out / row["outputs"]["json"]).read_text())
    assert folder.is_dir() and side["parameters"]["stems"] is True
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        Path(p[k]).name for p in side["analysis"]["stems"]["parts"] for k in ("wav", "mid"))


@pytest.mark.skipif(__import__("shutil").which("fluidsynth") is None, reason="needs the FluidSynth program")
def test_fluidsynth_parts_add_up_to_its_mix():
    from musegen.render.synth import render_parts

    s = symusic.Score(480)
    lead, bass = symusic.Track(name="lead", program=73), symusic.Track(name="bass", program=33)
    for i in range(16):
        lead.notes.append(symusic.Note(i * 240, 240, 72 + i % 7, 100))
    for i in range(4):
        bass.notes.append(symusic.Note(i * 960, 960, 36, 90))
    s.tracks.extend([lead, bass])
    mix, (a, b) = render_parts(s, ((0,), (1,)), sample_rate=22050, backend="fluidsynth", tail_seconds=0.5)
    assert a.shape == b.shape == mix.shape
    assert rel_db(a + b, mix) < -60 and min(np.abs(a).max(), np.abs(b).max()) > 1e-3
