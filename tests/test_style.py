"""Learned styles (``musegen style learn/show/remove``): derived presets, fine-tunes, the styles folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import INTERRUPTIBLE, POP909, run_cli
from musegen.errors import InputError, ParameterError
from musegen.engines.symbolic.finetune import add_adapters, merge_adapters
from musegen.style.profile import preset_table, profile_files, roman, summarize

TPQ = 480


def write_song(path: Path, *, tempo=90.0, meter=(3, 4), bars=16, lead=24, bass=33, swing=0.33,
               tonic=2, drums=True, velocity=70) -> Path:
    """A melody on swung eighths over a bass line (and a drum part), in D major by default."""
    from symusic import Note, Score, Tempo, TimeSignature, Track

    s = Score(TPQ)
    s.tempos.append(Tempo(0, tempo))
    s.time_signatures.append(TimeSignature(0, meter[0], meter[1]))
    bar = TPQ * meter[0] * 4 // meter[1]
    major = [0, 2, 4, 5, 7, 9, 11]
    mel = Track(name="lead", program=lead)
    off = int(TPQ * (0.5 + swing / 2))
    deg = 0
    for b in range(bars):
        for beat in range(meter[0]):
            t = b * bar + beat * TPQ
            for start, dur in ((t, off), (t + off, TPQ - off)):
                deg = (deg + (2 if (start // TPQ) % 3 else -1)) % 7
                mel.notes.append(Note(start, dur, 72 + tonic + major[deg], velocity))
    s.tracks.append(mel)
    low = Track(name="bass", program=bass)
    for b in range(bars):
        root = [0, 7, 5, 7][b % 4]
        low.notes.append(Note(b * bar, bar, 38 + root, velocity))
    s.tracks.append(low)
    if drums:
        kit = Track(name="drums", program=0, is_drum=True)
        for b in range(bars):
            for beat in range(meter[0]):
                kit.notes.append(Note(b * bar + beat * TPQ, TPQ // 4, 36 if beat == 0 else 42, 80))
        s.tracks.append(kit)
    s.dump_midi(str(path))
    return path


@pytest.fixture
def songs(tmp_path) -> list[Path]:
    folder = tmp_path / "artist"
    folder.mkdir()
    return [write_song(folder / f"song{i}.mid", tempo=88 + 2 * i, bars=16 + 4 * i) for i in range(4)]


@pytest.fixture
def styles(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "styles"
    monkeypatch.setenv("MUSEGEN_STYLE_DIR", str(root))
    return root


def test_profile_reads_tempo_meter_key_instruments_swing_and_drums(songs):
    profiles, skipped = profile_files(songs)
    assert not skipped and len(profiles) == 4
    stats = summarize(profiles)
    assert 88 <= stats["tempo_bpm"]["p10"] <= stats["tempo_bpm"]["p90"] <= 94
    assert stats["meters"] == {"3/4": 4}
    assert next(iter(stats["keys"])) == "D major"
    assert stats["files_with_drums"] == 4
    assert 0.2 < stats["swing"] < 0.45, stats["swing"]
    assert stats["velocity"]["mean"] == pytest.approx(70, abs=1)
    table = preset_table("my-band", stats, {"engine": {"name": "symbolic"}, "groove": {}, "harmony": {},
                                            "melody": {}})
    assert table["tempo"] == [89, 93]  # 10th-90th percentile of 88, 90, 92, 94
    assert table["meter"] == "3/4" and table["key"] == "D" and table["mode"] == "major"
    assert table["instruments"]["lead"] == 24 and table["instruments"]["bass"] == 33
    assert "drums" in table["instruments"] and table["groove"]["drum_pattern"] != "none"
    assert "my-band" in table["description"] and "3/4" in table["description"]


def test_roman_numerals_follow_the_key():
    assert roman(7, "maj", 0) == "V"
    assert roman(9, "min", 0) == "vi"
    assert roman(0, "maj", 9) == "bIII"       # C major in A minor
    assert roman(11, "dim", 0) == "vii°"


def test_adapters_start_as_the_base_model_and_merge_exactly():
    from musegen.engines.symbolic.model import ModelConfig, MusicTransformer

    torch.manual_seed(0)
    model = MusicTransformer(ModelConfig(vocab_size=50, d_model=32, n_head=2, n_layer=2, context=16)).eval()
    x = torch.randint(0, 50, (2, 12))
    before = model(x)
    add_adapters(model, rank=4, alpha=8)
    assert torch.allclose(model(x), before, atol=1e-6)  # B starts at zero
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith((".a", ".b")) for n in trainable)
    for blk in model.blocks:
        torch.nn.init.normal_(blk.qkv.b, std=0.1)
    adapted = model(x)
    assert not torch.allclose(adapted, before, atol=1e-3)
    merged = merge_adapters(model)
    assert torch.allclose(merged(x), adapted, atol=1e-5)
    assert set(merged.state_dict()) == set(MusicTransformer(model.cfg).state_dict())


def test_learn_show_generate_remove(songs, styles, tmp_path):
    """The whole round trip through the CLI, with a short real fine-tune."""
    proc = run_cli("style", "learn", str(songs[0].parent), "--name", "my-band", "--steps", "3", "--json",
                   env={"MUSEGEN_STYLE_DIR": str(styles)})
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    folder = styles / "my-band"
    assert info["folder"] == str(folder) and len(info["files"]) == 4
    for name in ("preset.toml", "style.json", "model/model.safetensors", "model/config.json", "model/tokenizer.json"):
        assert (folder / name).is_file(), name
    assert info["training"]["steps"] <= 3 and info["training"]["best_valid_loss"] < 10
    by_style = info["training"]["base_valid_loss_by_style"]  # no --from-preset: the base model's losses pick
    assert len(by_style) == 5 and info["model_style"] == min(by_style, key=by_style.get)
    assert not [p for p in styles.iterdir() if p.name.startswith(".")]  # no work folders left

    listing = run_cli("presets", "list", env={"MUSEGEN_STYLE_DIR": str(styles)})
    row = next(line for line in listing.stdout.splitlines() if line.startswith("my-band"))
    assert "style" in row and "3/4" in row
    shown = run_cli("style", "show", "my-band", env={"MUSEGEN_STYLE_DIR": str(styles)})
    assert shown.returncode == 0 and "3/4" in shown.stdout and "fine-tune: full" in shown.stdout

    out = tmp_path / "out"
    gen = run_cli("generate", "--preset", "my-band", "--bars", "2", "--seed", "1", "-o", str(out), "--json",
                  env={"MUSEGEN_STYLE_DIR": str(styles)})
    assert gen.returncode == 0, gen.stderr
    (result,) = json.loads(gen.stdout)["results"]
    sidecar = json.loads(Path(result["json"]).read_text())
    assert sidecar["preset"]["name"] == "my-band"
    assert sidecar["preset"]["engine"]["options"]["model"] == str(folder / "model")
    assert sidecar["analysis"]["duration_s"] > 1.0

    ext = run_cli("extend", str(songs[0]), "--preset", "my-band", "--bars", "1", "--seed", "2", "-o", str(out),
                  "--name", "ext", "--json", env={"MUSEGEN_STYLE_DIR": str(styles)})
    assert ext.returncode == 0, ext.stderr
    (result,) = json.loads(ext.stdout)["results"]
    assert json.loads(Path(result["json"]).read_text())["preset"]["name"] == "my-band"

    gone = run_cli("style", "remove", "my-band", env={"MUSEGEN_STYLE_DIR": str(styles)})
    assert gone.returncode == 0 and not folder.exists()
    again = run_cli("style", "show", "my-band", env={"MUSEGEN_STYLE_DIR": str(styles)})
    assert again.returncode == 2 and again.stderr.startswith("Error:") and "my-band" in again.stderr


def test_too_few_files_is_explained(songs, styles):
    from musegen.style.learn import learn_style

    with pytest.raises(InputError, match="at least 3 MIDI files; found 2"):
        learn_style([str(p) for p in songs[:2]], "two")
    assert not styles.exists() or not any(styles.iterdir())


def test_files_without_notes_are_named(songs, styles, tmp_path):
    from symusic import Score, Tempo

    empty = []
    for i in range(2):
        s = Score(TPQ)
        s.tempos.append(Tempo(0, 100))
        path = tmp_path / f"empty{i}.mid"
        s.dump_midi(str(path))
        empty.append(path)
    proc = run_cli("style", "learn", *map(str, songs[:2] + empty), "--name", "holes",
                   env={"MUSEGEN_STYLE_DIR": str(styles)})
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert "only 2 of 4 are usable" in err[-1] and "empty0.mid" in err[-1] and "no notes" in err[-1]
    assert "Traceback" not in proc.stderr
    assert not (styles / "holes").exists()


@pytest.mark.parametrize("name", ["Bad Name", "../escape", "", "a/b"])
def test_bad_style_names_are_refused(songs, styles, name):
    from musegen.style.learn import learn_style

    with pytest.raises(ParameterError, match="style name"):
        learn_style([str(p) for p in songs], name)


def test_a_builtin_preset_name_is_refused(songs, styles):
    from musegen.style.learn import learn_style

    with pytest.raises(InputError, match="already a built-in preset"):
        learn_style([str(p) for p in songs], "pop-ballad")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_interrupted_learning_leaves_no_style(songs, styles):
    """Ctrl-C during the fine-tune: no style, no work folder, a one-line message."""
    proc = subprocess.Popen([sys.executable, "-m", "musegen", "style", "learn", str(songs[0].parent),
                             "--name", "cut", "--steps", "500"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MUSEGEN_STYLE_DIR": str(styles)}, **INTERRUPTIBLE)
    deadline = time.time() + 120
    while time.time() < deadline and not (styles.is_dir() and any(styles.iterdir())):
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert list(styles.iterdir()) == []


@pytest.mark.skipif(not (POP909 / "001" / "001.mid").is_file(), reason="needs ../shared/data/pop909")
def test_pop909_songs_give_a_pop_style(styles):
    files = [POP909 / f"{i:03d}" / f"{i:03d}.mid" for i in (1, 2, 3, 4)]
    profiles, skipped = profile_files(files)
    assert not skipped
    stats = summarize(profiles)
    table = preset_table("pop-songs", stats, {"groove": {}, "harmony": {}, "melody": {}})
    assert table["meter"] == "2/4"  # what POP909's MIDI files declare
    assert {"lead", "bass"} <= set(table["instruments"])
    assert stats["progressions"] and all(len(p) == 4 for p in stats["progressions"])
