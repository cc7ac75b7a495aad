"""musegen never writes over a run's inputs, never gives two results one path,
deletes only what it made, and checks every file of its own that it reads back."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import make_sketch


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_error_line(r, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_extend_refuses_to_write_over_its_own_sketch(cli, tmp_path):
    idea = make_sketch(tmp_path / "idea.mid")
    before = _sha(idea)
    r = cli("extend", idea, "--name", "idea", "-o", tmp_path, "--engine", "procedural", "--bars", "1")
    _one_error_line(r, "idea.mid", "input")
    assert _sha(idea) == before
    linked = tmp_path / "sub"
    linked.mkdir()
    (linked / "same.mid").hardlink_to(idea)  # the same file under another name
    r = cli("extend", linked / "same.mid", "--name", "idea", "-o", tmp_path, "--engine", "procedural", "--bars", "1")
    _one_error_line(r, "input")
    assert _sha(idea) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idea.mid", "sub"]  # nothing half-made either


def test_analyze_plot_and_post_refuse_to_write_over_their_input(cli, tmp_path):
    song = make_sketch(tmp_path / "song.mid")
    before = _sha(song)
    _one_error_line(cli("analyze", song, "--plot", song), "song.mid")
    assert _sha(song) == before
    wav = tmp_path / "song.wav"
    assert cli("render", song, "-o", wav).returncode == 0
    wav_before = _sha(wav)
    (tmp_path / "o").mkdir()
    for target in (wav, tmp_path / "o" / ".." / "song.wav"):
        _one_error_line(cli("post", wav, "-o", target, "--lufs", "-14"), "input")
        assert _sha(wav) == wav_before


def test_variations_under_one_fixed_name_are_refused_before_anything_runs(cli, tmp_path):
    out = tmp_path / "out"
    r = cli("generate", "--engine", "procedural", "--bars", "1", "--variations", "3", "--name", "fixed", "-o", out)
    _one_error_line(r, "'fixed'", "{variation}")
    assert not out.exists() or not any(out.iterdir())
    ok = cli("generate", "--engine", "procedural", "--bars", "1", "--variations", "2",
             "--name", "fixed-v{variation}", "-o", out)
    assert ok.returncode == 0, ok.stderr
    assert len(list(out.glob("fixed-v*.wav"))) == 2


def test_style_remove_deletes_only_a_folder_style_learn_made(cli, tmp_path):
    styles = tmp_path / "styles"
    mine = styles / "my-notes"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my own file\n")
    env = {"MUSEGEN_STYLE_DIR": str(styles)}
    r = cli("style", "remove", "my-notes", env=env)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert (mine / "notes.txt").read_text() == "my own file\n"
    fake = styles / "looks-like-one"
    fake.mkdir()
    (fake / "preset.toml").write_text('name = "looks-like-one"\n')
    (fake / "thesis.pdf").write_bytes(b"%PDF-1.4 mine")
    r = cli("style", "remove", "looks-like-one", env=env)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert (fake / "thesis.pdf").is_file()


@pytest.mark.parametrize("bad", ["list", "missing", "wrong-type"])
def test_a_damaged_style_json_is_named_not_an_internal_error(cli, tmp_path, bad):
    styles = tmp_path / "styles"
    folder = styles / "broken"
    folder.mkdir(parents=True)
    (folder / "preset.toml").write_text('name = "broken"\n')
    info = {"list": [1, 2, 3], "missing": {"name": "broken"},
            "wrong-type": {"name": 7, "created": "x"}}[bad]
    (folder / "style.json").write_text(json.dumps(info))
    r = cli("style", "show", "broken", env={"MUSEGEN_STYLE_DIR": str(styles)})
    assert r.returncode != 0 and "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert "style.json" in r.stderr


def _model_folder(tmp_path: Path, **override) -> Path:
    from musegen.engines.symbolic.checkpoint import shipped_checkpoint

    folder = tmp_path / "model"
    shutil.copytree(shipped_checkpoint(), folder)
    config = json.loads((folder / "config.json").read_text())
    for key, value in override.items():
        if key == "model":
            config["model"] = value
        else:
            config["model"][key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("override, needle", [
    ({"n_head": 0}, "n_head"),
    ({"n_layer": 100000000}, "n_layer"),
    ({"n_layer": 2.5}, "n_layer"),
    ({"rope_base": 0}, "rope_base"),
    ({"context": -4}, "context"),
    ({"model": "big"}, "model"),
])
def test_a_model_config_out_of_bounds_is_refused_before_anything_is_built(cli, tmp_path, override, needle):
    model = _model_folder(tmp_path, **override)
    r = cli("generate", "--engine", "symbolic", "--model", model, "--bars", "1", "--seed", "1",
            "-o", tmp_path / "out", timeout=120)
    _one_error_line(r, "config.json", needle)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_resume_reruns_jobs_whose_manifest_rows_do_not_check_out(cli, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[defaults]\nengine = "procedural"\nbars = 1\n[[sweep]]\npreset = "lofi-chill"\ngrid.seed = [1, 2, 3]\n')
    out = tmp_path / "run"
    assert cli("batch", plan, "-o", out, "--workers", "1").returncode == 0
    manifest = out / "manifest.jsonl"
    rows = [json.loads(ln) for ln in manifest.read_text().splitlines() if ln.strip()]
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    rows[0]["outputs"] = "not a table"
    rows[1]["wall_s"] = "slow"
    shutil.rmtree(out / rows[2]["id"])  # a finished row whose folder is gone
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = cli("batch", plan, "-o", out, "--workers", "1", "--resume", "--json")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    again = [json.loads(ln) for ln in manifest.read_text().splitlines() if ln.strip()]
    assert sorted(x["id"] for x in again) == sorted(x["id"] for x in rows)
    for row in again:
        assert row["status"] == "ok" and (out / row["outputs"]["wav"]).is_file()
