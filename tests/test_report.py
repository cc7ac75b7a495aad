"""The batch report page: static HTML checked as text and loaded in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import make_sketch, run_cli
from musegen.batch.report import render_report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium)")

PLAN = """
title = "report check"
[defaults]
engine = "procedural"
bars = 2
[[sweep]]
label = "seeds"
preset = "synthwave"
grid.seed = [1, 2]
[[job]]
command = "render"
midi = "sketch.mid"
lufs = -16
[[job]]
command = "extend"
midi = "missing.mid"
"""


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("report")
    make_sketch(base / "sketch.mid")
    (base / "plan.toml").write_text(PLAN, encoding="utf-8")
    out = base / "run"
    r = run_cli("batch", base / "plan.toml", "-o", out, "--workers", "2")
    assert r.returncode == 1, r.stderr  # the missing sketch fails; the others succeed
    return out


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
             f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout,
        )


def test_report_is_static_and_offline(run_folder):
    html = (run_folder / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert links and not [u for u in links if re.match(r"[a-z]+:", u) or u.startswith("/")], \
        "only relative links: the folder works offline, anywhere"
    for url in links:
        assert (run_folder / url.rstrip("/")).exists(), url
    assert html.count("<audio ") == 3 and html.count("<img ") == 6
    assert "missing.mid" in html and 'class="badge failed"' in html


def test_report_escapes_what_it_shows():
    rows = [{"id": "x-0123456789", "index": 0, "status": "failed", "command": "generate",
             "label": "<script>alert(1)</script>", "params": {"prompt": '"><img src=x onerror=alert(1)>'},
             "error": "<b>boom</b>"}]
    html = render_report(rows, title="<i>t</i>")
    assert "<script>alert(1)" not in html and "<img src=x" not in html and "<b>boom" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;i&gt;t&lt;/i&gt;" in html


# Appended to a copy of the page: waits until every picture and player has
# loaded (or failed) and writes what it found into the DOM for --dump-dom.
_PROBE = """
<script>
document.querySelectorAll('img').forEach(function (i) { i.loading = 'eager'; });
document.querySelectorAll('audio').forEach(function (a) { a.preload = 'metadata'; a.load(); });
(function poll() {
  var imgs = Array.prototype.slice.call(document.images);
  var auds = Array.prototype.slice.call(document.querySelectorAll('audio'));
  var settled = imgs.every(function (i) { return i.complete; }) &&
                auds.every(function (a) { return a.readyState >= 1 || a.error; });
  if (!settled) { setTimeout(poll, 50); return; }
  var probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({
    images: imgs.length, images_ok: imgs.filter(function (i) { return i.naturalWidth > 100; }).length,
    audio: auds.length, audio_ok: auds.filter(function (a) { return a.duration > 1; }).length,
    shown: document.getElementById('shown').textContent});
  document.body.appendChild(probe);
})();
</script>
"""


@needs_chromium
def test_report_in_headless_chromium(run_folder):
    import json

    page = run_folder / "_probe.html"
    page.write_text((run_folder / "report.html").read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
                    encoding="utf-8")
    try:
        r = chromium("--virtual-time-budget=20000", "--dump-dom", page.as_uri())
    finally:
        page.unlink()
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout)
    assert m, "the page's script did not run: " + r.stdout[-2000:]
    probe = json.loads(m.group(1).replace("&quot;", '"'))
    assert probe == {"images": 6, "images_ok": 6, "audio": 3, "audio_ok": 3, "shown": "4 of 4 shown"}

    # filters and sorting come from the address: only the failed job is left
    r = chromium("--dump-dom", (run_folder / "report.html").as_uri() + "#status=failed&sort=f-lufs&dir=desc")
    assert 'id="shown">1 of 4 shown<' in r.stdout
    visible = re.findall(r'<article class="job (\w+)"(?![^>]*\bhidden\b)[^>]*>', r.stdout)
    assert visible == ["failed"]


@needs_chromium
def test_report_screenshot(run_folder, tmp_path):
    shot = tmp_path / "report.png"
    r = chromium("--hide-scrollbars", "--window-size=1400,1800", f"--screenshot={shot}",
                 (run_folder / "report.html").as_uri())
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    import numpy as np
    from matplotlib.image import imread

    img = imread(shot)
    assert img.shape[:2] == (1800, 1400)
    assert float(np.std(img[:, :, :3])) > 0.05, "the page is not blank"


# Names and values a hand-edited or hostile manifest may hold, in every place the page shows one.
HOSTILE = ['x" onmouseover="alert(1)', "x' onclick='alert(1)", "a b=c", "<script>alert(1)</script>",
           "</script><script>alert(1)</script>", "<!--", "\u2028\u2029", "Seed", "seed", "p.x", "data-id",
           "onload", 'x"/><svg onload=alert(1)>', "\x00\x1b[31m"]


def hostile_rows() -> list[dict]:
    rows = []
    for i, word in enumerate(HOSTILE):
        rows.append({
            "id": f"{word}-{i}", "index": i, "status": "ok" if i % 2 else "failed", "command": word,
            "label": word, "error": word, "wall_s": 1.0,
            "params": {word: word, "prompt": f"v{i} {word}", "seed": i},
            "analysis": {"duration_s": 1.0, "key": word, "meter": word},
            "outputs": {"wav": ["javascript:alert(1)", "../../../etc/passwd", "/etc/passwd",
                                "data:text/html,<script>alert(1)</script>", f"{word}/x.wav"][i % 5],
                        "mid": f"{word}.mid", "spectrogram": "JaVaScRiPt:alert(1)", word: f"{word}.json"},
        })
    return rows


class _Page:
    """What html.parser sees: every tag's attributes and every script's text."""

    def __init__(self, text: str):
        from html.parser import HTMLParser

        self.attrs: list[tuple[str, str, str | None]] = []
        self.scripts: list[str] = []
        page = self

        class Parser(HTMLParser):
            in_script = False

            def handle_starttag(self, tag, attrs):
                page.attrs.extend((tag, k, v) for k, v in attrs)
                if tag == "script":
                    self.in_script = True
                    page.scripts.append("")

            def handle_endtag(self, tag):
                if tag == "script":
                    self.in_script = False

            def handle_data(self, data):
                if self.in_script:
                    page.scripts[-1] += data

        p = Parser(convert_charrefs=True)
        p.feed(text)
        p.close()


def test_hostile_names_and_values_stay_text():
    from musegen.batch.report import _JS

    text = render_report(hostile_rows(), title=HOSTILE[0], description=HOSTILE[4])
    page = _Page(text)
    names = {k for _, k, _ in page.attrs}
    handlers = [(t, k, v) for t, k, v in page.attrs if k.startswith("on")]
    assert handlers == [("form", "onsubmit", "return false")], handlers  # the page's own, and only it
    assert not [t for t, _, _ in page.attrs if t == "svg"]
    assert page.scripts == [_JS], "a value broke out into a script or out of one"
    for tag, k, v in page.attrs:
        if k in ("href", "src"):
            assert not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", v) and not v.startswith("/") and ".." not in v, v
    # the values are all still there, as text
    for word in ('x" onmouseover="alert(1)', "</script><script>alert(1)</script>"):
        assert f'data-label="{__import__("html").escape(word, quote=True)}"' in text
    # a filter per varying parameter, and each card carries the attribute that filter reads
    filters = [v for t, k, v in page.attrs if k == "data-filter" and v.startswith("p-")]
    for f in filters:
        assert re.fullmatch(r"p-[a-z0-9_.-]+", f), f
        assert f"data-{f}" in names, f
    assert len({f for f in filters}) == len(filters), "two parameter names share one filter"


@needs_chromium
def test_hostile_report_runs_no_script_of_theirs(tmp_path):
    page = tmp_path / "report.html"
    text = render_report(hostile_rows(), title=HOSTILE[0])
    # alert() is taken over before the page's own script: any call of it is a value that ran
    spy = ("<script>window.__calls = []; ['alert', 'confirm', 'prompt'].forEach(function (n) {"
           " window[n] = function () { window.__calls.push(n); }; });</script>")
    probe = ("<script>var ev = document.createEvent('MouseEvents');"
             "document.querySelectorAll('*').forEach(function (el) {"
             " ['mouseover', 'click', 'load', 'error'].forEach(function (t) { el.dispatchEvent(new Event(t)); }); });"
             "setTimeout(function () { var p = document.createElement('pre'); p.id = 'probe';"
             " p.textContent = 'calls=' + window.__calls.length + ' shown=' +"
             " document.getElementById('shown').textContent; document.body.appendChild(p); }, 500);</script>")
    page.write_text(text.replace("<head>", "<head>" + spy, 1).replace("</body>", probe + "</body>"),
                    encoding="utf-8")
    r = chromium("--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout)
    assert m, "the page's scripts did not run: " + r.stdout[-2000:]
    assert m.group(1) == f"calls=0 shown={len(HOSTILE)} of {len(HOSTILE)} shown"


# A manifest edited by hand (or torn by a crash) may hold any JSON where a number belongs.
NOT_NUMBERS = ["3.5 s", None, [1.0], {"s": 1}, True, "", 10**400, "nan"]


def edited_rows() -> list[dict]:
    rows = [{"id": "good", "index": 0, "status": "ok", "command": "generate", "wall_s": 2.25,
             "params": {"seed": 1}, "outputs": {"wav": "good/a.wav"},
             "analysis": {"duration_s": 12.5, "lufs": -14.0, "peak_dbfs": -1.0, "tempo_bpm": 90,
                          "bars": 8, "n_notes": 40}}]
    for i, bad in enumerate(NOT_NUMBERS, start=1):
        rows.append({"id": f"edited-{i}", "index": bad, "status": "ok", "command": "generate", "wall_s": bad,
                     "params": {"seed": i}, "outputs": {"wav": f"edited-{i}/a.wav"},
                     "analysis": {**{k: bad for k in ("duration_s", "lufs", "peak_dbfs", "tempo_bpm", "bars",
                                                      "n_notes")}, "key": "C major"}})
    # the tables themselves of the wrong type, and words that are lists
    rows.append({"id": "tables", "status": ["ok"], "command": {"x": 1}, "label": [1], "wall_s": "1",
                 "params": "seed=3", "analysis": [12.5], "outputs": "a.wav", "error": ["boom"]})
    rows.append({"id": "bare"})
    return rows


def test_report_takes_a_non_number_as_missing():
    text = render_report(edited_rows())
    articles = re.findall(r"<article [^>]*>", text)
    assert len(articles) == len(NOT_NUMBERS) + 3
    good = next(a for a in articles if 'data-id="good"' in a)
    assert 'data-wall="2.25"' in good and 'data-f-duration_s="12.5"' in good and 'data-f-bars="8"' in good
    assert "12.5 s · -14.0 LUFS · peak -1.0 dBFS · 90 BPM · 8 bars · 40 notes" in text
    assert "2.2 s</span>" in text or "2.3 s</span>" in text
    for i in range(1, len(NOT_NUMBERS) + 1):
        card = next(a for a in articles if f'data-id="edited-{i}"' in a)
        assert 'data-wall=""' in card and "data-f-" not in card, card  # nothing to sort by: missing
    # a figure that is not a number is not shown as one
    figures = re.findall(r'<p class="figures">(.*?)</p>', text)
    assert figures[0].startswith("12.5 s") and figures[1:] == ["C major"] * len(NOT_NUMBERS), figures


def test_batch_resume_reports_a_hand_edited_manifest(tmp_path):
    import json

    (tmp_path / "plan.toml").write_text('[[job]]\ncommand = "extend"\nmidi = "missing.mid"\n', encoding="utf-8")
    out = tmp_path / "run"
    r = run_cli("batch", tmp_path / "plan.toml", "-o", out)
    assert r.returncode == 1, r.stderr  # the one job fails: its sketch is missing
    manifest = out / "manifest.jsonl"
    with manifest.open("a", encoding="utf-8") as fh:  # rows of an earlier plan, edited by hand
        for row in edited_rows():
            fh.write(json.dumps(row) + "\n")
    r = run_cli("batch", tmp_path / "plan.toml", "-o", out, "--resume")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr and "no report" not in r.stderr, r.stderr
    text = (out / "report.html").read_text(encoding="utf-8")
    assert 'data-id="good"' in text and "12.5 s · -14.0 LUFS" in text
