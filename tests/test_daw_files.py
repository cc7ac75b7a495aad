"""Results a DAW can take as they are: tempo, key and provenance in the WAV and MIDI, names by BPM and key.

Issue 18 ("Tempo, key and names", "Provenance and licence"): the WAV carries
RIFF ``LIST/INFO`` and ``acid`` chunks (and ``smpl`` loop points when given),
read back here with musegen's own parser, libsndfile's and Python's ``wave``;
the MIDI carries tempo, time-signature, key-signature and text events, read
back with mido and symusic; the sidecar's ``provenance`` block has every field.
"""

from __future__ import annotations

import hashlib
import json
import re
import wave
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from symusic import Score

from musegen import __version__, pipeline
from musegen.audio.io import write_audio
from musegen.audio.wavmeta import WavMetadata, read_metadata
from musegen.errors import ParameterError
from musegen.midi.io import load_midi
from musegen.outputs import format_stem
from musegen.provenance import commercial_use, model_provenance
from tests.conftest import make_sketch, run_cli

PROVENANCE_FIELDS = {"musegen", "engine", "model", "licence", "licence_note", "commercial_use", "training_sources",
                     "model_card", "seed", "preset", "inputs", "text"}


def _shipped_card() -> tuple[dict[str, str], str | None, list[str]]:
    """The shipped symbolic weights' card: its front matter, its licence and its training sources.

    The licence is the card's ``license:``; a card without one (the first model's) is found by
    its id in :data:`musegen.provenance.KNOWN_LICENCES`, as the provenance module documents."""
    from musegen.engines.symbolic.checkpoint import shipped_checkpoint
    from musegen.provenance import KNOWN_LICENCES, front_matter

    front = front_matter(shipped_checkpoint() / "MODEL_CARD.md")
    licence = front.get("license", "").lower() or KNOWN_LICENCES.get(front.get("id"), (None, None))[0]
    sources = [x.strip() for x in front.get("training_sources", "").split(",") if x.strip()]
    return front, licence, sources


@pytest.fixture(scope="module")
def non_commercial_model(tmp_path_factory) -> Path:
    """The shipped symbolic weights under a card whose front matter says a non-commercial licence."""
    import shutil

    from musegen.engines.symbolic.checkpoint import shipped_checkpoint

    folder = tmp_path_factory.mktemp("nc") / "nc-model"
    folder.mkdir()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        shutil.copy(shipped_checkpoint() / name, folder / name)
    (folder / "MODEL_CARD.md").write_text("---\nid: nc-test-model\nlicense: cc-by-nc-4.0\n"
                                          "training_sources: pop909, essenFolksong\n---\n# A non-commercial model\n")
    return folder


@pytest.fixture(scope="module")
def procedural(tmp_path_factory):
    """One 2-bar procedural result in F# minor at 96 BPM."""
    out = tmp_path_factory.mktemp("procedural")
    (result,) = pipeline.generate("pop-ballad", engine="procedural", bars=2, seed=3, tempo=96, key="F#m",
                                  out_dir=out, name="{preset}-{bpm}bpm-{key}-s{seed}")
    return result


def _midi_meta(path: Path) -> list:
    return [m for track in mido.MidiFile(str(path), charset="utf-8").tracks for m in track if m.is_meta]


# -- the WAV ----------------------------------------------------------------------------------

def test_generated_wav_has_info_and_acid_chunks_matching_the_sidecar(procedural):
    side = json.loads(procedural.json.read_text())
    meta = read_metadata(procedural.wav)
    assert meta["chunks"][:1] == ["fmt "] and meta["chunks"][-1] == "data"
    assert {"LIST", "acid"} <= set(meta["chunks"]) and meta["smpl"] is None  # no loop asked for
    acid = meta["acid"]
    assert acid["tempo_bpm"] == pytest.approx(side["analysis"]["tempo_bpm"]) == pytest.approx(96.0)
    assert acid["meter"] == tuple(side["parameters"]["meter"]) == (4, 4)
    assert acid["beats"] == 8  # 2 bars of 4/4
    assert acid["root_note"] % 12 == 6 and not acid["one_shot"]  # F#
    info = meta["info"]
    text = side["provenance"]["text"]
    assert info["ICMT"] == text and info["ISFT"] == f"musegen {__version__}"
    assert info["INAM"] == procedural.stem and info["IGNR"] == side["preset"]["style"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", info["ICRD"])
    for part in ("engine=procedural", "seed=3", "preset=pop-ballad", "licence=MIT"):
        assert part in text
    # libsndfile parses the chunks itself (its header log) and reads the INFO strings
    log = sf.info(str(procedural.wav)).extra_info
    assert re.search(r"Tempo\s*:\s*96\.0", log) and re.search(r"Meter\s*:\s*4/4", log), log
    with sf.SoundFile(str(procedural.wav)) as f:
        assert f.comment == text and f.software == f"musegen {__version__}"
        frames = f.frames
    with wave.open(str(procedural.wav)) as w:  # stops at the data chunk, skipping the ones before it
        assert w.getnframes() == frames and w.getframerate() == side["analysis"]["sample_rate"]


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_metadata_leaves_the_samples_bit_identical(tmp_path, subtype):
    y = (np.random.default_rng(0).standard_normal((2, 20001)) * 0.2).astype(np.float32)
    meta = WavMetadata(title="t", software="musegen", comment="made with musegen; ünïcode", genre="pop",
                       date="2026-12-02", tempo_bpm=120.0, beats=10, meter=(3, 4), root_note=62, loop=(10, 20000))
    write_audio(tmp_path / "plain.wav", y, sr=44100, subtype=subtype)
    write_audio(tmp_path / "tagged.wav", y, sr=44100, subtype=subtype, metadata=meta)
    plain, tagged = read_metadata(tmp_path / "plain.wav"), read_metadata(tmp_path / "tagged.wav")

    def data(path, where):
        raw = path.read_bytes()
        return raw[where[0]: where[0] + where[1]]

    assert data(tmp_path / "plain.wav", plain["data"]) == data(tmp_path / "tagged.wav", tagged["data"])
    a, _ = sf.read(str(tmp_path / "plain.wav"), dtype="float32")
    b, _ = sf.read(str(tmp_path / "tagged.wav"), dtype="float32")
    assert np.array_equal(a, b)
    assert tagged["info"]["ICMT"] == "made with musegen; ünïcode"
    assert tagged["acid"]["meter"] == (3, 4) and tagged["acid"]["tempo_bpm"] == 120.0
    assert tagged["smpl"] == {"unity_note": 62, "loops": [(10, 20000)]}
    log = sf.info(str(tmp_path / "tagged.wav")).extra_info  # libsndfile's own reading: end is inclusive
    assert re.search(r"Start\s*:\s*10\s+End\s*:\s*19999", log), log
    if subtype == "PCM_16":  # Python's wave reads PCM only
        with wave.open(str(tmp_path / "plain.wav")) as w1, wave.open(str(tmp_path / "tagged.wav")) as w2:
            assert w1.readframes(20001) == w2.readframes(20001)


def test_text_tags_go_into_a_flac_too(tmp_path):
    y = np.zeros((1, 4410), np.float32)
    write_audio(tmp_path / "a.flac", y, sr=44100, metadata=WavMetadata(title="take 1", comment="made with musegen"))
    with sf.SoundFile(str(tmp_path / "a.flac")) as f:
        assert f.title == "take 1" and f.comment == "made with musegen"


@pytest.mark.parametrize("meta, named", [
    (WavMetadata(loop=(100, 50)), "loop (100, 50)"),
    (WavMetadata(loop=(0, 5000)), "4410"),
    (WavMetadata(tempo_bpm=-3.0), "-3.0"),
    (WavMetadata(tempo_bpm=100.0, root_note=200), "200"),
])
def test_a_bad_metadata_field_is_refused_before_any_file_is_written(tmp_path, meta, named):
    with pytest.raises(ParameterError, match=re.escape(named)):
        write_audio(tmp_path / "a.wav", np.zeros((1, 4410), np.float32), sr=44100, metadata=meta)
    assert list(tmp_path.iterdir()) == []


# -- the MIDI ---------------------------------------------------------------------------------

def test_midi_has_tempo_meter_key_and_provenance_text(procedural):
    side = json.loads(procedural.json.read_text())
    meta = _midi_meta(procedural.mid)
    first = {m.type: m for m in reversed(meta) if m.time == 0}
    assert mido.tempo2bpm(first["set_tempo"].tempo) == pytest.approx(96.0, abs=1e-3)
    assert (first["time_signature"].numerator, first["time_signature"].denominator) == (4, 4)
    assert first["key_signature"].key == "F#m"
    assert first["text"].text == side["provenance"]["text"]
    score = Score(str(procedural.mid))  # symusic reads them too
    assert score.tempos[0].qpm == pytest.approx(96.0, abs=1e-3)
    assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == (4, 4)
    assert (score.key_signatures[0].key, score.key_signatures[0].tonality) == (3, 1)
    assert load_midi(procedural.mid).note_num() == score.note_num()  # musegen still reads its own result


def test_a_sketch_without_key_or_meter_events_gets_them_in_the_result(tmp_path):
    from symusic import Tempo

    path = make_sketch(tmp_path / "bare.mid", tempo=110, tonic=2, minor=True)
    bare = Score(str(path))
    bare.time_signatures = bare.time_signatures.__class__()  # no time signature either
    bare.tempos = bare.tempos.__class__()
    bare.tempos.append(Tempo(0, 110.0))
    bare.dump_midi(str(path))
    assert len(Score(str(path)).key_signatures) == 0
    (result,) = pipeline.generate("pop-ballad", engine="procedural", midi=path, bars=2, seed=1, key="D minor",
                                  out_dir=tmp_path / "out")
    types = {m.type: m for m in _midi_meta(result.mid)}
    assert types["key_signature"].key == "Dm"
    assert types["time_signature"].numerator == 4
    assert mido.tempo2bpm(types["set_tempo"].tempo) == pytest.approx(110.0, abs=1e-3)
    assert "midi sha256=" + hashlib.sha256(path.read_bytes()).hexdigest() in types["text"].text


# -- provenance -------------------------------------------------------------------------------

def test_procedural_provenance_block_has_every_field(procedural):
    prov = json.loads(procedural.json.read_text())["provenance"]
    assert PROVENANCE_FIELDS <= set(prov)
    assert prov["musegen"] == __version__ and prov["engine"] == "procedural" and prov["model"] is None
    assert prov["licence"] == "MIT" and prov["commercial_use"] is True and prov["training_sources"] == []
    assert prov["seed"] == 3 and prov["preset"] == "pop-ballad" and prov["inputs"] == []


def test_symbolic_provenance_names_the_card_its_sources_and_the_inputs(tmp_path, sketch):
    (result,) = pipeline.generate("pop-ballad", engine="symbolic", midi=sketch, bars=1, seed=2,
                                  out_dir=tmp_path)
    prov = json.loads(result.json.read_text())["provenance"]
    front, licence, sources = _shipped_card()
    assert PROVENANCE_FIELDS <= set(prov)
    assert prov["model"] == front["id"] and licence
    assert prov["licence"] == licence and prov["commercial_use"] is commercial_use(licence)
    assert prov["training_sources"] == sources and "pop909" in sources
    assert prov["model_card"].endswith("MODEL_CARD.md") and Path(prov["model_card"]).is_file()
    assert prov["inputs"] == [{"kind": "midi", "path": str(sketch),
                               "sha256": hashlib.sha256(sketch.read_bytes()).hexdigest()}]
    assert f"weights licence={licence}" in read_metadata(result.wav)["info"]["ICMT"]


def test_batched_jobs_carry_the_provenance_block(tmp_path):
    calls = [dict(preset="pop-ballad", engine="procedural", bars=1, seed=s, out_dir=tmp_path) for s in (1, 2)]
    done = {i: out for i, out, _ in pipeline.generate_many(calls)}
    for i, seed in enumerate((1, 2)):
        (result,) = done[i]
        prov = json.loads(result.json.read_text())["provenance"]
        assert prov["seed"] == seed and PROVENANCE_FIELDS <= set(prov)
        assert read_metadata(result.wav)["info"]["ICMT"] == prov["text"]


def _tiny_folder(path: Path, *, readme: str | None = None, base: str | None = None) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "musicgen", "_name_or_path": base or ""}))
    if readme is not None:
        (path / "README.md").write_text(readme)
    return path


def test_musicgen_licences_from_card_known_id_and_base(tmp_path):
    carded = _tiny_folder(tmp_path / "carded", readme="---\nlicense: apache-2.0\ntags:\n- music\n---\n# A model\n")
    got = model_provenance("musicgen", {"model": str(carded)})
    assert got["licence"] == "apache-2.0" and commercial_use(got["licence"]) is True
    tuned = _tiny_folder(tmp_path / "tuned", base="facebook/musicgen-small")  # save_pretrained of a fine-tune
    got = model_provenance("musicgen", {"model": str(tuned)})
    assert got["licence"] == "cc-by-nc-4.0" and "facebook/musicgen-small" in got["licence_note"]
    got = model_provenance("musicgen", {"model": "facebook/musicgen-melody"})  # not cached here: the table
    assert got["licence"] == "cc-by-nc-4.0" and commercial_use(got["licence"]) is False
    unknown = model_provenance("musicgen", {"model": str(_tiny_folder(tmp_path / "mine"))})
    assert unknown["licence"] is None and commercial_use(unknown["licence"]) is None


def test_musicgen_result_records_the_licence_and_the_audio_prompt(tmp_path):
    pytest.importorskip("transformers")
    from musegen.engines.musicgen.testing import make_model_dir

    model = make_model_dir(tmp_path / "tiny", "tiny")
    (model / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n")
    prompt = tmp_path / "prompt.wav"
    sf.write(str(prompt), (0.1 * np.sin(np.arange(16000) / 10)).astype(np.float32), 32000)
    (result,) = pipeline.generate("lofi-chill", engine="musicgen", seconds=1, seed=4, post=[], out_dir=tmp_path,
                                  engine_options={"model": str(model), "audio_prompt": str(prompt)})
    side = json.loads(result.json.read_text())
    prov = side["provenance"]
    assert PROVENANCE_FIELDS <= set(prov) and prov["engine"] == "musicgen" and prov["model"] == str(model)
    assert prov["licence"] == "cc-by-nc-4.0" and prov["commercial_use"] is False
    assert prov["inputs"] == [{"kind": "audio_prompt", "path": str(prompt),
                               "sha256": hashlib.sha256(prompt.read_bytes()).hexdigest()}]
    meta = read_metadata(result.wav)
    assert meta["info"]["ICMT"] == prov["text"] and "weights licence=cc-by-nc-4.0" in prov["text"]
    assert meta["acid"]["tempo_bpm"] == pytest.approx(side["analysis"]["tempo_bpm"])


# -- names ------------------------------------------------------------------------------------

def test_bpm_and_key_name_fields(procedural):
    assert procedural.stem == "pop-ballad-96bpm-Fsharp-minor-s3"
    assert procedural.wav.name == "pop-ballad-96bpm-Fsharp-minor-s3.wav"
    assert format_stem("{bpm:0>3}bpm-{key}", bpm="96", key="Eb-major") == "096bpm-Eb-major"


@pytest.mark.parametrize("template, named", [
    ("{preset}-{bpms}", "{bpms}"),
    ("{preset}-{bpm:{seed}}", "a field inside a field"),
    ("{key:>300}", "wider than 255"),
])
def test_a_bad_name_field_is_refused_naming_it(template, named):
    with pytest.raises(ParameterError, match=re.escape(named)):
        format_stem(template, preset="p", bpm="96", key="Eb-major", seed=1)


def test_cli_refuses_an_unknown_name_field_with_one_line(tmp_path):
    proc = run_cli("generate", "--engine", "procedural", "--bars", "1", "-o", tmp_path / "out",
                   "--name", "{preset}-{bpm}bpm-{tonality}")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: ") and "{tonality}" in proc.stderr
    assert "Traceback" not in proc.stderr and not list((tmp_path / "out").glob("*"))


def test_a_symbolic_fine_tune_inherits_its_base_s_terms(tmp_path, non_commercial_model):
    tuned = tmp_path / "my-style"
    tuned.mkdir()
    (tuned / "config.json").write_text(json.dumps({"name": "my-style", "base": "shipped",
                                                   "base_model": "musegen-symbolic"}))
    info = {"model": "my-style", "model_card": None, "model_card_id": None, "training_sources": []}
    got = model_provenance("symbolic", info, {"model": str(tuned)})
    _, licence, sources = _shipped_card()
    assert got["licence"] == licence and "fine-tune" in got["licence_note"]
    assert got["base_training_sources"] == sources
    (tuned / "config.json").write_text(json.dumps({"name": "my-style", "base": str(non_commercial_model)}))
    got = model_provenance("symbolic", info, {"model": str(tuned)})
    assert got["licence"] == "cc-by-nc-4.0" and commercial_use(got["licence"]) is False
    assert "fine-tune" in got["licence_note"] and "essenFolksong" in got["base_training_sources"]
    (tuned / "config.json").write_text(json.dumps({"name": "my-style", "base": "none"}))
    got = model_provenance("symbolic", info, {"model": str(tuned)})
    assert got["licence"] is None and "from scratch" in got["licence_note"]



@pytest.mark.parametrize("engine, options, licence", [
    ("symbolic", {"model": "NON_COMMERCIAL"}, "'cc-by-nc-4.0'"),
    ("musicgen", {}, "'cc-by-nc-4.0'"),
    ("musicgen", {"model": "/no/such/model"}, "licence is unknown"),
])
def test_commercial_use_refuses_a_model_that_forbids_it_or_says_no_licence(engine, options, licence,
                                                                           non_commercial_model):
    from musegen.provenance import check_commercial_use, licence_notice

    if options.get("model") == "NON_COMMERCIAL":
        options = {"model": str(non_commercial_model)}
    with pytest.raises(ParameterError, match=re.escape(licence)) as err:
        check_commercial_use(engine, options)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    notice = licence_notice(engine, options)
    assert (notice is None) == ("unknown" in licence) and (notice is None or "non-commercial" in notice)


def test_commercial_use_lets_the_procedural_engine_run():
    from musegen.provenance import check_commercial_use, licence_notice

    assert check_commercial_use("procedural")["licence"] == "MIT" and licence_notice("procedural") is None


def test_commercial_use_of_the_shipped_symbolic_model_follows_its_card():
    from musegen.provenance import check_commercial_use, licence_notice

    front, licence, _ = _shipped_card()
    if commercial_use(licence):
        assert check_commercial_use("symbolic")["licence"] == licence and licence_notice("symbolic") is None
    else:
        with pytest.raises(ParameterError, match=re.escape(f"model {front['id']!r}, whose weights licence "
                                                           f"{licence!r} forbids commercial use")):
            check_commercial_use("symbolic")
        assert f"{licence!r}" in licence_notice("symbolic")

def test_acid_beats_count_the_music_of_a_result_cut_to_seconds(tmp_path):
    (result,) = pipeline.generate("pop-ballad", engine="procedural", seconds=5, tempo=120, seed=1, out_dir=tmp_path)
    assert read_metadata(result.wav)["acid"]["beats"] == 10  # 5 s at 2 beats a second, not the 3 bars generated


def test_a_batch_job_s_files_carry_the_provenance(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('title = "daw"\n[defaults]\nengine = "procedural"\nbars = 1\n\n'
                    '[[sweep]]\nlabel = "seeds"\npreset = "synthwave"\ngrid.seed = [5]\n', encoding="utf-8")
    proc = run_cli("batch", plan, "-o", tmp_path / "run", "--workers", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in (tmp_path / "run" / "manifest.jsonl").read_text().splitlines()]
    prov = json.loads((tmp_path / "run" / row["outputs"]["json"]).read_text())["provenance"]
    assert PROVENANCE_FIELDS <= set(prov) and prov["seed"] == 5 and prov["preset"] == "synthwave"
    assert read_metadata(tmp_path / "run" / row["outputs"]["wav"])["info"]["ICMT"] == prov["text"]
    texts = [m.text for m in _midi_meta(tmp_path / "run" / row["outputs"]["mid"]) if m.type == "text"]
    assert texts == [prov["text"]]


def test_acid_tempo_and_root_follow_a_post_chain_that_stretches_and_shifts(tmp_path):
    post = [{"op": "stretch", "rate": 1.5}, {"op": "pitch_shift", "semitones": 2}]
    (result,) = pipeline.generate("pop-ballad", engine="procedural", bars=1, tempo=100, key="C", seed=1,
                                  post=post, out_dir=tmp_path)
    acid = read_metadata(result.wav)["acid"]
    assert acid["tempo_bpm"] == pytest.approx(150.0) and acid["beats"] == 4  # played 1.5x faster, same bar
    assert acid["root_note"] % 12 == 2  # C shifted up to D


def test_render_and_post_outputs_say_what_made_them(procedural, tmp_path):
    from musegen.actions import post_file, render_file

    text = json.loads(procedural.json.read_text())["provenance"]["text"]
    render_file(procedural.mid, tmp_path / "r.wav")
    meta = read_metadata(tmp_path / "r.wav")
    sha = hashlib.sha256(procedural.mid.read_bytes()).hexdigest()
    assert meta["info"]["ICMT"].startswith(f"rendered with musegen {__version__} from {procedural.mid.name} "
                                           f"(sha256={sha})")
    assert meta["info"]["ICMT"].endswith(f"; the MIDI: {text}")
    assert meta["acid"]["tempo_bpm"] == pytest.approx(96.0, abs=1e-3) and meta["acid"]["root_note"] % 12 == 6
    post_file(procedural.wav, tmp_path / "p.wav", [{"op": "gain", "db": -3}, {"op": "tempo", "tempo_from": 96,
                                                                            "tempo_to": 120}])
    meta = read_metadata(tmp_path / "p.wav")
    assert meta["info"]["ICMT"] == f"{text}; post-processed with musegen {__version__}: gain, tempo"
    assert meta["acid"]["tempo_bpm"] == pytest.approx(120.0) and meta["acid"]["root_note"] % 12 == 6
    assert meta["info"]["INAM"] == procedural.stem


def test_cli_commercial_use_refuses_a_non_commercial_model_naming_its_licence(tmp_path, non_commercial_model):
    proc = run_cli("generate", "--engine", "symbolic", "--option", f"model={non_commercial_model}", "--bars", "1",
                   "--commercial-use", "-o", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("Error: --commercial-use: engine 'symbolic' uses model 'nc-test-model'")
    assert "'cc-by-nc-4.0'" in line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    ok = run_cli("generate", "--engine", "procedural", "--bars", "1", "--commercial-use", "-o", tmp_path / "ok")
    assert ok.returncode == 0 and "non-commercial" not in ok.stderr, ok.stderr


def test_without_commercial_use_a_non_commercial_model_is_named_once_per_run(tmp_path, non_commercial_model):
    proc = run_cli("generate", "--engine", "symbolic", "--option", f"model={non_commercial_model}", "--bars", "1",
                   "--variations", "2", "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    notes = [ln for ln in proc.stderr.splitlines() if "for non-commercial use only" in ln]
    assert notes == ["musegen: note: model 'nc-test-model' (symbolic) has weights licence "
                     "'cc-by-nc-4.0': what it makes is for non-commercial use only (see the sidecar's provenance)"]


def test_a_batch_key_commercial_use_fails_the_job_naming_the_licence(tmp_path, non_commercial_model):
    plan = tmp_path / "plan.toml"
    plan.write_text('title = "c"\n[defaults]\nbars = 1\ncommercial_use = true\n\n'
                    f'[[job]]\nengine = "symbolic"\nmodel = "{non_commercial_model}"\n\n'
                    '[[job]]\nengine = "procedural"\n', encoding="utf-8")
    proc = run_cli("batch", plan, "-o", tmp_path / "run", "--workers", "1")
    assert proc.returncode == 1, proc.stderr
    rows = {json.loads(line)["params"]["engine"]: json.loads(line)
            for line in (tmp_path / "run" / "manifest.jsonl").read_text().splitlines()}
    assert rows["procedural"]["status"] == "ok" and rows["symbolic"]["status"] == "failed"
    assert "'cc-by-nc-4.0' forbids commercial use" in rows["symbolic"]["error"]


def test_a_preset_key_commercial_use_refuses_like_the_flag(tmp_path, non_commercial_model):
    from musegen.errors import PresetError
    from musegen.presets import load_preset

    strict = tmp_path / "strict.toml"
    strict.write_text('name = "strict"\nextends = "pop-ballad"\n[engine]\nname = "symbolic"\ncommercial_use = true\n'
                      f'[engine.options]\nmodel = "{non_commercial_model}"\n')
    assert load_preset(str(strict)).engine.commercial_use is True
    with pytest.raises(ParameterError, match="'cc-by-nc-4.0' forbids commercial use"):
        pipeline.generate(str(strict), bars=1, seed=1, out_dir=tmp_path / "out")
    (result,) = pipeline.generate(str(strict), engine="procedural", bars=1, seed=1, out_dir=tmp_path / "ok")
    assert json.loads(result.json.read_text())["provenance"]["commercial_use"] is True
    strict.write_text('name = "strict"\nextends = "pop-ballad"\n[engine]\ncommercial_use = "yes"\n')
    with pytest.raises(PresetError, match=r"engine\.commercial_use must be true or false, got 'yes'"):
        load_preset(str(strict))
