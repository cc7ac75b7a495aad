"""Engine options: declared once per engine, checked the same way from the CLI, presets and batch plans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from musegen.engines.registry import check_options, engine_options
from musegen.errors import ParameterError

ENGINES = ("symbolic", "procedural", "musicgen")


def _error_line(proc) -> str:
    """The one stderr line of a refused call (notes from the library may come before it)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize("engine", ["symbolic", "procedural"])
def test_a_mistyped_option_is_refused_with_the_known_ones(cli, tmp_path, engine):
    out = tmp_path / "out"
    proc = cli("generate", "--engine", engine, "--bars", "2", "--seed", "1", "--option", "tmperature=2",
               "--option", "bogus=1", "-o", out)
    assert proc.returncode == 2, proc.stderr
    line = _error_line(proc)
    assert f"unknown options for engine '{engine}': bogus, tmperature" in line
    assert "'tmperature': temperature is a setting of its own, not an engine option (--temperature)" in line
    for name in engine_options(engine).names:  # every known option is listed
        assert name in line.split("known:")[1]
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("engine, option, words", [
    ("symbolic", "top_p=1.5", "engine 'symbolic' option top_p must be greater than 0 and at most 1, got 1.5"),
    ("symbolic", "candidates=40", "engine 'symbolic' option candidates must be between 1 and 16, got 40"),
    ("procedural", "fills=3", "engine 'procedural' option fills must be true or false, got 3"),
    ("procedural", "swing_unit=quarter", "engine 'procedural' option swing_unit must be one of eighth, "
                                         "sixteenth, got 'quarter'"),
])
def test_an_out_of_range_value_names_the_option_and_its_range(cli, tmp_path, engine, option, words):
    proc = cli("generate", "--engine", engine, "--bars", "2", "--seed", "1", "--option", option,
               "-o", tmp_path / "out")
    assert proc.returncode == 2 and words in _error_line(proc)
    assert not (tmp_path / "out").exists()


def test_every_option_of_the_offline_engines_still_works(cli, tmp_path):
    proc = cli("generate", "--engine", "procedural", "--bars", "2", "--seed", "1", "--no-post", "--json",
               "--option", "bass_pattern=walking", "--option", "fills=false", "--option", "ending=no",
               "--option", "swing_unit=eighth", "-o", tmp_path / "p")
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)["results"]
    side = json.loads(Path(r["json"]).read_text(encoding="utf-8"))
    assert side["engine"]["info"]["bass_pattern"] == "walking"
    assert side["parameters"]["engine_options"]["fills"] is False
    proc = cli("generate", "--engine", "symbolic", "--bars", "2", "--seed", "1", "--no-post",
               "--option", "top_p=0.9", "--option", "top_k=40", "--option", "key_constraint=true",
               "--option", "tonal_prior=1", "--option", "accompany=false", "--option", "threads=1",
               "--option", "candidates=2", "--option", "reprise=0", "-o", tmp_path / "s")
    assert proc.returncode == 0, proc.stderr


def test_option_sets_parse_types_defaults_and_aliases():
    mg = engine_options("musicgen").parse({"guidance": 5, "transcribe": "yes", "prompts": "calm", "top_k": 10})
    assert (mg.guidance_scale, mg.transcribe, mg.prompts, mg.top_k, mg.window) == (5.0, True, ("calm",), 10, 30.0)
    assert mg.given == {"guidance_scale", "transcribe", "prompts", "top_k"}
    assert mg == engine_options("musicgen").parse({"guidance_scale": 5.0, "transcribe": True, "prompts": ["calm"],
                                                   "top_k": 10})
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(mg)) == copy.deepcopy(mg) == mg and copy.copy(mg).given == mg.given
    with pytest.raises(AttributeError, match="read-only"):
        mg.window = 5
    with pytest.raises(ParameterError, match="extend_stride .* less than the window"):
        engine_options("musicgen").parse({"window": 4, "extend_stride": 5})
    with pytest.raises(ParameterError, match="engine 'musicgen' option top_k must be an integer"):
        engine_options("musicgen").parse({"top_k": 2.5})
    with pytest.raises(ParameterError, match=r"did you mean 'guidance_scale'\?"):
        engine_options("musicgen").parse({"guidance_scal": 2})
    sym = engine_options("symbolic").parse({})
    assert (sym.top_p, sym.top_k, sym.accompany, sym.candidates) == (0.95, 0, True, None)
    for engine in ENGINES:  # every declared default passes its own check
        spec = engine_options(engine)
        spec.parse({o.name: o.default for o in spec.options.values() if o.default is not None})


def test_engines_refuse_unknown_options_when_called_from_python():
    from musegen.engines.procedural import ProceduralEngine
    from musegen.engines.symbolic.engine import SymbolicEngine

    with pytest.raises(ParameterError, match="unknown option for engine 'procedural': colour"):
        ProceduralEngine(colour="red")
    with pytest.raises(ParameterError, match="unknown option for engine 'symbolic': tmperature"):
        SymbolicEngine(tmperature=2)


def _user_preset(folder, name, engine_table):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(f'name = "{name}"\nextends = "pop-ballad"\n\n{engine_table}', encoding="utf-8")


def test_a_presets_options_are_checked_and_kept_to_its_own_engine(cli, tmp_path):
    presets = tmp_path / "presets"
    _user_preset(presets, "typo", '[engine]\nname = "symbolic"\noptions = { tmperature = 2 }\n')
    _user_preset(presets, "tuned", '[engine]\nname = "symbolic"\noptions = { top_p = 0.9 }\n')
    env = {"MUSEGEN_PRESET_PATH": str(presets)}
    proc = cli("generate", "--preset", "typo", "--bars", "2", "--seed", "1", "-o", tmp_path / "a", env=env)
    assert proc.returncode == 2
    assert _error_line(proc).startswith("Error: preset 'typo' [engine.options]: unknown option for engine "
                                        "'symbolic': tmperature")
    # with another engine, the preset's options (its engine's) are not handed on, and that is said
    proc = cli("generate", "--preset", "tuned", "--engine", "procedural", "--bars", "2", "--seed", "1",
               "--no-post", "--json", "-o", tmp_path / "b", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "the preset's [engine.options] (top_p) are for engine 'symbolic'; not handed to 'procedural'" \
        in proc.stderr
    (r,) = json.loads(proc.stdout)["results"]
    assert json.loads(Path(r["json"]).read_text(encoding="utf-8"))["parameters"]["engine_options"] == {}


def test_a_batch_plan_with_a_bad_option_is_refused_before_any_job_runs(cli, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[job]]\nengine = "procedural"\nbars = 2\noptions = { bogus = 1 }\n\n'
                    '[[job]]\nengine = "symbolic"\nbars = 2\noptions = { top_k = -1 }\n', encoding="utf-8")
    proc = cli("batch", plan, "-o", tmp_path / "run")
    assert proc.returncode == 2
    assert "[[job]] #1: unknown option for engine 'procedural': bogus; known: " in _error_line(proc)
    assert not (tmp_path / "run").exists()
    plan.write_text('[[job]]\nengine = "symbolic"\nbars = 2\noptions = { top_k = -1 }\n', encoding="utf-8")
    proc = cli("batch", plan, "--dry-run")
    assert proc.returncode == 2 and "engine 'symbolic' option top_k must be between 0 and 100000, got -1" \
        in _error_line(proc)


def test_engines_show_prints_every_option(cli):
    for engine in ENGINES:
        proc = cli("engines", "show", engine)
        assert proc.returncode == 0, proc.stderr
        header, *rows = proc.stdout.splitlines()[1:]
        assert header.split() == ["OPTION", "TYPE", "ALLOWED", "DEFAULT", "HELP"]
        assert sorted(r.split()[0] for r in rows) == engine_options(engine).names
    proc = cli("engines", "show", "symbolic")
    (top_p,) = [r for r in proc.stdout.splitlines() if r.startswith("top_p ")]
    assert "float" in top_p and "greater than 0 and at most 1" in top_p and "0.95" in top_p and "nucleus" in top_p
    doc = json.loads(cli("engines", "show", "musicgen", "--json").stdout)
    window = next(o for o in doc["options"] if o["name"] == "window")
    assert window == {"name": "window", "type": "float", "range": [1, 60], "choices": None,
                      "allowed": "between 1 and 60", "default": 30.0, "help": window["help"], "aliases": []}
    listed = json.loads(cli("engines", "list", "--json").stdout)
    assert [e["name"] for e in listed] == sorted(ENGINES) and all(e["description"] for e in listed)
    proc = cli("engines", "show", "nope")
    assert proc.returncode == 2 and _error_line(proc) == \
        "Error: unknown engine 'nope' (available: musicgen, procedural, symbolic)"


def test_showing_and_checking_options_imports_no_torch():
    code = ("import sys; from musegen.engines.registry import check_options, engine_options; "
            "check_options('musicgen', {'window': 10}); check_options('musicgen', {'window': 4, 'extend_stride': 3}); engine_options('symbolic').parse({}); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_check_options_names_where_the_options_came_from():
    with pytest.raises(ParameterError, match=r"^job 3: unknown option for engine 'procedural': x;"):
        check_options("procedural", {"x": 1}, where="job 3")
    check_options("procedural", {"fills": "on"})
