"""Presets: every built-in loads; errors name the bad key or value."""

from __future__ import annotations

import pytest

from musegen.errors import PresetError
from musegen.presets import DEFAULT_PRESET, list_names, list_presets, load_preset, parse_key

REQUIRED = {
    "bach-chorale", "irish-reel", "renaissance-polyphony", "pop-ballad", "lofi-chill", "synthwave",
    "ambient", "jazz-trio", "bossa-nova", "techno", "cinematic", "chiptune",
}

MINIMAL = '''
name = "mine"
description = "a test style"
tempo = [90, 100]
meter = "3/4"
key = "D"
mode = "dorian"
[instruments]
lead = 73
bass = 32
'''


def test_builtins_cover_the_styles_and_all_load():
    names = set(list_names())
    assert REQUIRED <= names
    assert DEFAULT_PRESET in names
    for preset, name, origin in list_presets():
        assert preset is not None, f"{name}: {origin}"
        assert preset.description and preset.instruments.roles()
        assert preset.post, f"{name} has no post chain"


def test_presets_differ_in_what_makes_a_style():
    sigs = {}
    for p, name, _ in list_presets():
        sigs[name] = (p.tempo, p.meter, p.mode, p.instruments, p.groove.drum_pattern, p.harmony.chord_style)
    assert len(set(sigs.values())) == len(sigs)


def test_user_preset_by_path_and_env(tmp_path, monkeypatch):
    f = tmp_path / "mine.toml"
    f.write_text(MINIMAL)
    p = load_preset(str(f))
    assert p.tempo == (90.0, 100.0) and p.meter == (3, 4) and p.mode == "dorian"
    assert p.instruments.lead == 73 and p.instruments.drums is None
    monkeypatch.setenv("MUSEGEN_PRESET_PATH", str(tmp_path))
    assert load_preset("mine").source == "user"
    assert "mine" in list_names()


def test_extends_merges_tables(tmp_path, monkeypatch):
    (tmp_path / "slow-lofi.toml").write_text('extends = "lofi-chill"\nname = "slow-lofi"\ntempo = 60\n')
    monkeypatch.setenv("MUSEGEN_PRESET_PATH", str(tmp_path))
    base, child = load_preset("lofi-chill"), load_preset("slow-lofi")
    assert child.tempo == (60.0, 60.0)
    assert child.instruments == base.instruments and child.post == base.post


@pytest.mark.parametrize(
    "text, needle",
    [
        (MINIMAL + "colour = 3\n", "'colour'"),
        (MINIMAL.replace("[instruments]", "[groove]\nswung = 0.2\n[instruments]"), "'swung'"),
        (MINIMAL.replace('tempo = [90, 100]', 'tempo = 1000'), "tempo must be between"),
        (MINIMAL.replace('meter = "3/4"', 'meter = "7/3"'), "'7/3'"),
        (MINIMAL.replace('key = "D"', 'key = "H"'), "'H'"),
        (MINIMAL.replace('mode = "dorian"', 'mode = "happy"'), "'happy'"),
        (MINIMAL.replace("lead = 73", "lead = 200"), "instruments.lead"),
        (MINIMAL + '[harmony]\nprogressions = [["I", "Q"]]\n', "'Q'"),
        ('post = [{op = "loudness", lufz = -14}]\n' + MINIMAL, "lufz"),
        ('post = [{op = "explode"}]\n' + MINIMAL, "explode"),
        ("name = [unclosed", "not valid TOML"),
        (MINIMAL.replace("[instruments]\nlead = 73\nbass = 32", "[instruments]"), "names no role"),
    ],
)
def test_bad_presets_name_the_problem(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(PresetError) as err:
        load_preset(str(f))
    assert needle in str(err.value)
    assert str(f) in str(err.value) or "TOML" in str(err.value)


def test_binary_junk_and_unknown_name(tmp_path):
    f = tmp_path / "junk.toml"
    f.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(PresetError, match="not UTF-8|not valid TOML"):
        load_preset(str(f))
    with pytest.raises(PresetError, match="unknown preset 'nope'"):
        load_preset("nope")


def test_extends_loop_is_reported(tmp_path, monkeypatch):
    (tmp_path / "a.toml").write_text('extends = "b"\nname = "a"\n')
    (tmp_path / "b.toml").write_text('extends = "a"\nname = "b"\n')
    monkeypatch.setenv("MUSEGEN_PRESET_PATH", str(tmp_path))
    with pytest.raises(PresetError, match="loops"):
        load_preset("a")


@pytest.mark.parametrize("text, expect", [("F#m", (6, "minor")), ("Bb major", (10, "major")),
                                          ("d dorian", (2, "dorian")), ("C", (0, None))])
def test_parse_key(text, expect):
    assert parse_key(text) == expect


def test_extends_unknown_names_the_file_that_says_it(tmp_path, monkeypatch):
    (tmp_path / "top.toml").write_text('extends = "middle"\nname = "top"\n')
    (tmp_path / "middle.toml").write_text('extends = "nope"\nname = "middle"\n')
    monkeypatch.setenv("MUSEGEN_PRESET_PATH", str(tmp_path))
    with pytest.raises(PresetError) as info:
        load_preset("top")
    message = str(info.value)
    assert str(tmp_path / "middle.toml") in message and "'nope'" in message
    assert "top.toml" not in message


def test_inherited_scale_follows_an_overridden_mode(tmp_path, monkeypatch):
    """lofi-chill's pentatonic-major scale must not survive a child's minor mode (no E-naturals in C minor)."""
    from musegen.engines.base import Request
    from musegen.engines.procedural import ProceduralEngine

    (tmp_path / "dark-lofi.toml").write_text(
        'extends = "lofi-chill"\nname = "dark-lofi"\nkey = "C"\nmode = "minor"\n[engine]\nname = "procedural"\n')
    monkeypatch.setenv("MUSEGEN_PRESET_PATH", str(tmp_path))
    child = load_preset("dark-lofi")
    assert child.mode == "minor" and child.scale == "pentatonic-minor"
    req = Request(preset=child, bars=8, tempo_bpm=76.0, meter=(4, 4), tonic=0, mode="minor", random_seed=1)
    score = ProceduralEngine().generate(req)[0].score
    lead = next(t for t in score.tracks if t.name.lower().startswith("lead") or t.program == 11)
    pcs = [n.pitch % 12 for n in lead.notes]
    assert pcs and 4 not in pcs  # E natural
    # a child that overrides both keeps what it says
    (tmp_path / "both.toml").write_text('extends = "lofi-chill"\nname = "both"\nmode = "dorian"\nscale = "blues"\n')
    assert load_preset("both").scale == "blues"


def test_a_scale_that_contradicts_the_mode_is_refused(tmp_path):
    path = tmp_path / "clash.toml"
    path.write_text(MINIMAL.replace('mode = "dorian"', 'mode = "minor"\nscale = "pentatonic-major"'))
    with pytest.raises(PresetError) as info:
        load_preset(str(path))
    message = str(info.value)
    assert "'pentatonic-major'" in message and "'minor'" in message and "pentatonic-minor" in message
