"""What the CLI prints is shown, never executed: a user's text reaches the terminal escaped.

A preset's description, a file name, a style or engine name, a batch job's
error can hold ESC (CSI and OSC sequences), BEL, CR and bidi overrides.  None
of them may reach stdout or stderr raw; TOML and JSON output still parse
back to the original text.
"""

from __future__ import annotations

import json
import tomllib

import pytest

from musegen.cli.text import shown
from musegen.tomlout import dumps

#: clear screen and ring the bell; set the window title (OSC, which click's own
#: ANSI stripping for pipes does not remove); carriage return; right-to-left override
HOSTILE = "calm \x1b[2J\x07 \x1b]0;pwned\x07 back\rover \u202eevil"
RAW = ("\x1b", "\x07", "\r", "\u202e", "\x9b")


def assert_nothing_raw(*texts: str) -> None:
    for text in texts:
        for c in RAW:
            assert c not in text, f"raw {c!r} in {text!r}"


@pytest.fixture
def hostile_preset(tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    path = folder / "evil.toml"
    path.write_text(f'name = "evil"\nextends = "ambient"\ndescription = {json.dumps(HOSTILE)}\n')
    return path


def test_shown_escapes_what_a_terminal_executes():
    assert shown("a\x1b[2Jb\x07") == "a\\x1b[2Jb\\x07"
    assert shown("x\ry\bz\x00\x7f\x9b") == "x\\x0dy\\x08z\\x00\\x7f\\x9b"
    assert shown("\u202eabc\u2066\u2028") == "\\u202eabc\\u2066\\u2028"
    assert shown("one\ntwo") == "one\\x0atwo"
    assert shown("one\ntwo", newlines=True) == "one\ntwo"
    # what executes nothing is kept as it is: tabs, accents, other scripts, emoji
    plain = "Café\tnaïve — 東京 🎹 [2J"
    assert shown(plain) == plain
    assert shown(3.5) == "3.5"


def test_presets_list_and_show_escape_a_description(cli, hostile_preset):
    env = {"MUSEGEN_PRESET_PATH": str(hostile_preset.parent)}
    r = cli("presets", "list", env=env)
    assert r.returncode == 0, r.stderr
    assert_nothing_raw(r.stdout, r.stderr)
    row = next(line for line in r.stdout.splitlines() if line.startswith("evil "))
    assert "calm \\x1b[2J\\x07 \\x1b]0;pwned\\x07 back\\x0dover" in row  # escaped, and on one line

    r = cli("presets", "show", "evil", env=env)
    assert r.returncode == 0, r.stderr
    assert_nothing_raw(r.stdout, r.stderr)
    assert tomllib.loads(r.stdout)["description"] == HOSTILE  # the TOML still says the same text

    for args in (("presets", "list", "--json"), ("presets", "show", "evil", "--json")):
        r = cli(*args, env=env)
        assert r.returncode == 0, r.stderr
        assert_nothing_raw(r.stdout, r.stderr)
        doc = json.loads(r.stdout)
        descs = [p.get("description") for p in doc] if isinstance(doc, list) else [doc["description"]]
        assert HOSTILE in descs


def test_toml_writer_round_trips_every_character():
    data = {
        "description": HOSTILE + "\x00\x1f\x7f\x85\x9f\u2029 \"quoted\" back\\slash\ttab\nline",
        "odd key \x1b": 1,
        "list": ["\x07", "plain"],
        "table": {"we ird\u202e": "\x1b[31m", "n": 2.5},
        "rows": [{"a\x1b": "\x07"}],
    }
    text = dumps(data)
    assert_nothing_raw(text)
    assert "\x7f" not in text and "\x85" not in text and "\x00" not in text
    assert tomllib.loads(text) == data


@pytest.mark.parametrize("args", [
    ("presets", "show", HOSTILE),
    ("generate", "--preset", HOSTILE, "--bars", "1"),
    ("analyze", f"/nonexistent/{HOSTILE}.wav"),
    ("style", "show", HOSTILE),
    (HOSTILE,),  # an unknown command: click's own message quotes it
    ("generate", f"--{HOSTILE}"),
])
def test_errors_that_name_a_users_text_escape_it(cli, tmp_path, args):
    r = cli(*args, env={"MUSEGEN_STYLE_DIR": str(tmp_path / "styles")})
    assert r.returncode != 0
    assert_nothing_raw(r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert "pwned" in lines[0]  # the text is named, in its escaped form


def test_batch_failure_lines_and_progress_labels_escape(capsys):
    from musegen.cli.batch_cmd import BatchBar
    from musegen.cli.progress import ProgressBar

    BatchBar(enabled=False)(None, {"id": "job\x1b[2J", "status": "failed", "error": f"preset {HOSTILE}"})
    err = capsys.readouterr().err
    assert_nothing_raw(err)
    assert err.startswith("failed: job\\x1b[2J: preset calm \\x1b[2J\\x07")
    assert_nothing_raw(ProgressBar(f"learning {HOSTILE}", enabled=False).label)


# --------------------------------------------------------------------------
# click's usage errors: one `Error:` line too, exit code 2


@pytest.mark.parametrize("args, needles", [
    (("generate", "--bogus"), ["No such option '--bogus'", "musegen generate --help"]),
    (("generate", "--bar", "3"), ["No such option '--bar'", "'--bars'"]),
    (("extend",), ["Missing argument 'MIDI'", "musegen extend --help"]),
    (("generate", "--engine", "nope"), ["unknown engine 'nope'", "symbolic"]),
    (("render", "x.mid", "-o", "x.wav", "--backend", "nope"), ["'nope' is not one of", "--backend"]),
    (("generate", "--bars", "many"), ["'many' is not a valid integer", "--bars"]),
    (("nosuchcommand",), ["No such command 'nosuchcommand'", "musegen --help"]),
    (("batch", "plan.toml", "--ray-address", "1.2.3.4:1"), ["--ray-address needs --executor ray."]),
])
def test_usage_errors_are_one_line(cli, tmp_path, args, needles):
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: ") and "Usage:" not in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_group_without_its_command_still_shows_its_help(cli):
    r = cli("presets")
    assert r.returncode == 2
    assert "Usage: musegen presets" in r.stderr + r.stdout and "list" in r.stderr + r.stdout


@pytest.mark.parametrize("folder, escaped", [("a\x1b]0;pwned\x07b", "a\\x1b]0;pwned\\x07b"),
                                             ("a\nError: forged", "a\\x0aError: forged")])
def test_a_file_name_in_an_error_is_escaped(cli, tmp_path, folder, escaped):
    folder = tmp_path / folder
    folder.mkdir()
    (folder / "p.toml").write_text("tempi = 1\n")
    r = cli("presets", "show", folder / "p.toml")
    assert r.returncode == 2
    assert_nothing_raw(r.stdout, r.stderr)
    assert len(r.stderr.splitlines()) == 1, r.stderr  # a newline in a name cannot forge a second line
    assert r.stderr.startswith("Error: preset ") and escaped in r.stderr, r.stderr


@pytest.mark.parametrize("name, needle", [
    ("control-chars-in-unknown-key.toml", "unknown key '\\x1b[2Jkey'"),
    ("control-chars-in-extends.toml", "unknown preset '\\x1b]0;pwned\\x07'"),
    ("control-chars-in-post-op.toml", "unknown op '\\x07\\x1b[31m'"),
    ("bidi-override-in-mode.toml", "got '\\u202eevil'"),
])
def test_corpus_presets_with_controls_are_named_escaped(cli, name, needle):
    from conftest import ROOT

    r = cli("presets", "show", ROOT / "tests" / "corpus" / "preset" / name)
    assert r.returncode == 2
    assert_nothing_raw(r.stdout, r.stderr)
    assert len(r.stderr.splitlines()) == 1 and needle in r.stderr, r.stderr
