"""The pipeline's shape: one typed argument object, the same names and defaults as generate()."""

from __future__ import annotations

import dataclasses
import inspect

import pytest


def test_generate_takes_exactly_the_fields_of_generate_args_with_their_defaults():
    from musegen.pipeline import GenerateArgs, generate

    params = {n: p.default for n, p in inspect.signature(generate).parameters.items() if n != "progress"}
    fields = {f.name: f.default for f in dataclasses.fields(GenerateArgs)}
    assert params == fields


def test_an_unknown_argument_in_a_batched_call_stays_with_that_call(tmp_path):
    from musegen.pipeline import generate_many

    calls = [dict(preset="synthwave", bars=1, seed=1, engine="procedural", out_dir=tmp_path, post=[]),
             dict(preset="synthwave", bars=1, seed=2, engine="procedural", out_dir=tmp_path, tempo_bpm=90)]
    done = dict((i, out) for i, out, _ in generate_many(calls))
    assert done[0][0].wav.is_file()
    assert isinstance(done[1], TypeError) and "tempo_bpm" in str(done[1])


def test_generate_reads_as_plan_engine_finish():
    """generate() hands the work to planning and finishing; it holds no rendering or sidecar code itself."""
    from musegen import pipeline

    source = inspect.getsource(pipeline.generate)
    assert "plan(args)" in source and "finish(job" in source
    assert len(source.splitlines()) < 80
    for name in ("render_score", "write_audio", "sidecar"):
        assert name not in source.split('"""')[-1], name


@pytest.mark.parametrize("module", ["args", "planning", "finishing", "sidecar", "batching", "result"])
def test_each_stage_is_a_module_of_its_own(module):
    import importlib

    assert importlib.import_module(f"musegen.pipeline.{module}").__doc__


@pytest.mark.parametrize("field, value, words", [
    ("bars", 0, "bars"), ("bars", 2.5, "bars"), ("variations", 0, "variations"), ("tempo_bpm", 5, "tempo_bpm"),
    ("meter", (4, 3), "meter"), ("mode", "bogus", "mode"), ("tonic", 12, "tonic"), ("temperature", 9.0, "temperature"),
])
def test_a_request_out_of_range_is_refused_when_it_is_made(field, value, words):
    """One place checks a request's fields, so no engine re-checks them with bounds of its own."""
    from musegen.engines.base import Request
    from musegen.errors import ParameterError
    from musegen.presets import load_preset

    fields = dict(preset=load_preset("synthwave"), bars=2, tempo_bpm=100.0, meter=(4, 4), tonic=0, mode="major")
    with pytest.raises(ParameterError, match=words):
        Request(**{**fields, field: value})


def test_engines_hold_no_range_checks_of_their_own():
    from musegen.engines.procedural import engine

    assert "must be" not in inspect.getsource(engine)
