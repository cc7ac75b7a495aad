"""``report.html``: a static page to listen through a batch run.

One card per job with an HTML5 audio player, the spectrogram and piano-roll
pictures, the key figures and the parameters; filters for every parameter
that varies, a search box and sorting by any parameter or figure.  Plain
HTML, CSS and JavaScript in one file with relative links, so the run folder
can be copied anywhere and opened offline.
"""

from __future__ import annotations

import html
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from musegen.batch.manifest import MANIFEST, MANIFEST_CSV, atomic_write_text

REPORT = "report.html"
#: Numeric figures offered for sorting, with their labels.
SORT_FIGURES = {"duration_s": "duration", "lufs": "loudness (LUFS)", "peak_dbfs": "peak (dBFS)",
                "tempo_bpm": "tempo", "n_notes": "notes", "bars": "bars"}


def _fmt(value: Any) -> str:
    """A parameter value as text: 80.0 -> '80', lists and tables as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)
    return str(value)


def _e(value: Any) -> str:
    return html.escape(_fmt(value), quote=True)


def _href(path: Any) -> str | None:
    """A relative link to a file of the run, or None for anything else (absolute, ``..``, a scheme).

    Every path part is percent-encoded, so ``javascript:`` or a ``#`` in a
    name can only ever be a file name inside the run folder.
    """
    if not isinstance(path, str) or not path or path.startswith(("/", "\\")) or "\\" in path:
        return None
    parts = path.split("/")
    if any(p in ("..", ".") for p in parts) or any(ord(c) < 0x20 or c == "\x7f" for c in path):
        return None
    return html.escape("/".join(quote(p, safe="") for p in parts), quote=True)


_ATTR_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def _attr_key(name: Any) -> str:
    """A parameter name as the tail of a ``data-`` attribute name (and a filter key).

    Attribute names cannot be escaped, only spelled safely: every character
    outside ``a-z0-9_-`` becomes ``.<hex>.``, so ``x" onmouseover="`` stays
    inside one name and two names never share one spelling.
    """
    return "".join(c if c in _ATTR_SAFE else f".{ord(c):x}." for c in str(name))


def _number(value: Any) -> int | float | None:
    """``value`` if it is a finite number, else None (missing).

    A manifest edited by hand can say ``"wall_s": "3 s"``, ``null``, ``[1]``,
    ``true`` or ``1e999``; none of them is a figure to format or sort by.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return value if math.isfinite(float(value)) else None
    except OverflowError:  # an integer too large for a float
        return None


def _text(value: Any) -> str:
    """A field that should be a word (id, status, command, label) as text; a table or list is ``""``."""
    if value is None or isinstance(value, (list, dict)):
        return ""
    return _fmt(value)


def _clean(r: dict[str, Any]) -> dict[str, Any]:
    """A manifest row with every field the page reads of the type it reads, or missing.

    Rows come from the manifest, which a user may edit and a crash may
    tear: a field of the wrong type shows as missing, never as an error.
    """
    out = dict(r)
    for key in ("id", "command", "label"):
        out[key] = _text(r.get(key))
    out["status"] = _text(r.get("status")) or "pending"
    index = _number(r.get("index"))
    out["index"] = index if index is not None else 0
    out["wall_s"] = _number(r.get("wall_s"))
    out["error"] = r.get("error") if r.get("error") not in (None, "", [], {}) else None
    for key in ("params", "analysis", "outputs"):
        out[key] = r.get(key) if isinstance(r.get(key), dict) else {}
    a = dict(out["analysis"])
    for key in (*SORT_FIGURES, "tempo_bpm"):
        if key in a:
            a[key] = _number(a[key])
    for key in ("key", "meter"):
        if key in a:
            a[key] = _text(a[key])
    out["analysis"] = {k: v for k, v in a.items() if v is not None}
    return out


def _figures_line(a: dict[str, Any]) -> str:
    parts = []
    if a.get("duration_s") is not None:
        parts.append(f"{a['duration_s']:.1f} s")
    if a.get("lufs") is not None:
        parts.append(f"{a['lufs']:.1f} LUFS")
    if a.get("peak_dbfs") is not None:
        parts.append(f"peak {a['peak_dbfs']:.1f} dBFS")
    if a.get("tempo_bpm") is not None:
        parts.append(f"{float(a['tempo_bpm']):g} BPM")
    if a.get("key"):
        parts.append(str(a["key"]))
    if a.get("meter"):
        parts.append(str(a["meter"]))
    if a.get("bars") is not None:
        parts.append(f"{_fmt(a['bars'])} bars")
    if a.get("n_notes") is not None:
        parts.append(f"{_fmt(a['n_notes'])} notes")
    return " · ".join(html.escape(p) for p in parts)


def _varying(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Parameters whose value differs between jobs, with their distinct values."""
    names: dict[str, None] = {}
    for r in rows:
        for k in r.get("params") or {}:
            names.setdefault(k, None)
    out = {}
    for k in names:
        values = [_fmt(r["params"][k]) if k in (r.get("params") or {}) else "" for r in rows]
        distinct = sorted(set(values), key=lambda v: (v == "", _sort_key(v)))
        if len(distinct) > 1:
            out[k] = distinct
    return out


def _sort_key(v: str):
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, 0.0, v)


def _card(r: dict[str, Any], varying: set[str]) -> str:
    rid = str(r["id"])
    status = str(r.get("status", "pending"))
    params = r.get("params") or {}
    a = r.get("analysis") or {}
    outputs = r.get("outputs") or {}
    # a manifest may have been edited by hand: what is not a table shows as nothing
    params, a, outputs = (x if isinstance(x, dict) else {} for x in (params, a, outputs))
    outputs = {str(k): _href(p) for k, p in outputs.items()}  # links inside the run folder only
    outputs = {k: p for k, p in outputs.items() if p is not None}
    attrs = {
        "id": f"job-{rid}", "data-id": rid, "data-index": r.get("index", 0), "data-status": status,
        "data-command": r.get("command", ""), "data-label": r.get("label", ""),
        "data-wall": "" if r.get("wall_s") is None else r["wall_s"],
        "data-text": " ".join([rid, str(r.get("label", "")), status,
                               *(f"{k}={_fmt(v)}" for k, v in params.items())]).lower(),
    }
    for k, v in params.items():
        attrs[f"data-p-{_attr_key(k)}"] = _fmt(v)
    for k in SORT_FIGURES:
        if a.get(k) is not None:
            attrs[f"data-f-{k}"] = a[k]
    attr_text = " ".join(f'{k}="{_e(v)}"' for k, v in attrs.items())
    folder = _href(rid + "/")
    name = f'<a href="{folder}">{html.escape(rid)}</a>' if status == "ok" and folder else html.escape(rid)
    head = [f'<h2>{name}</h2>',
            f'<span class="badge {html.escape(status)}">{html.escape(status)}</span>']
    if r.get("label"):
        head.append(f'<span class="tag">{_e(r["label"])}</span>')
    head.append(f'<span class="tag">{_e(r.get("command", ""))}</span>')
    info = [f'<div class="head">{"".join(head)}</div>']
    if status == "ok" and "wav" in outputs:
        info.append(f'<audio controls preload="none" src="{outputs["wav"]}"></audio>')
        info.append(f'<p class="figures">{_figures_line(a)}</p>')
    if r.get("error"):
        info.append(f'<pre class="error">{html.escape(str(r["error"]))}</pre>')
    rows_html = "".join(
        f'<tr class="{"vary" if k in varying else ""}"><th>{html.escape(k)}</th><td>{_e(v)}</td></tr>'
        for k, v in params.items()
    )
    info.append(f'<table class="params">{rows_html}</table>')
    links = [f'<a href="{p}">{html.escape(k)}</a>' for k, p in outputs.items()
             if k in ("wav", "mid", "json")]
    timing = f'{float(r["wall_s"]):.1f} s' if r.get("wall_s") is not None else ""
    if links or timing:
        info.append(f'<p class="files">{" ".join(links)} <span class="muted">{timing}</span></p>')
    pictures = []
    for kind, alt in (("spectrogram", "spectrogram"), ("pianoroll", "piano roll")):
        if kind in outputs:
            src = outputs[kind]
            pictures.append(f'<figure class="{kind}"><a href="{src}"><img src="{src}" loading="lazy" '
                            f'alt="{alt} of {html.escape(rid)}"></a></figure>')
        elif status == "ok":
            pictures.append(f'<figure class="{kind} none"><span>no {alt}</span></figure>')
    return (f'<article class="job {html.escape(status)}" {attr_text}>'
            f'<div class="info">{"".join(info)}</div>{"".join(pictures)}</article>')


_CSS = """
:root { color-scheme: light; --ok: #2f7d32; --failed: #c62828; --stopped: #b26a00; --muted: #666; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #f4f5f7; }
header { padding: 16px 24px 8px; background: #fff; border-bottom: 1px solid #ddd; }
h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 4px 0; }
.muted, .summary { color: var(--muted); }
#controls { position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap; gap: 8px 16px;
            align-items: end; padding: 10px 24px; background: #fff; border-bottom: 1px solid #ddd; }
#controls label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
#controls select, #controls input, #controls button { font: inherit; padding: 3px 6px; }
#shown { margin-left: auto; color: var(--muted); }
main { padding: 16px 24px; display: flex; flex-direction: column; gap: 14px; }
.job { display: grid; grid-template-columns: minmax(300px, 360px) 1fr 1fr; gap: 12px; background: #fff;
       border: 1px solid #ddd; border-left: 5px solid #bbb; border-radius: 6px; padding: 12px; }
.job.ok { border-left-color: var(--ok); }
.job.failed { border-left-color: var(--failed); }
.job.interrupted { border-left-color: var(--stopped); }
.job[hidden] { display: none; }
.head { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin-bottom: 8px; }
h2 { font-size: 14px; margin: 0; word-break: break-all; }
h2 a { color: inherit; }
.badge, .tag { font-size: 11px; padding: 1px 7px; border-radius: 9px; background: #eee; }
.badge.ok { background: #e3f3e4; color: var(--ok); }
.badge.failed { background: #fde7e7; color: var(--failed); }
.badge.interrupted { background: #fff1dc; color: var(--stopped); }
audio { width: 100%; }
.figures { font-weight: 600; margin: 6px 0; }
.error { white-space: pre-wrap; color: var(--failed); background: #fff6f6; padding: 6px; margin: 6px 0;
         font-size: 12px; }
.params { border-collapse: collapse; font-size: 12px; width: 100%; }
.params th { text-align: left; font-weight: normal; color: var(--muted); padding: 1px 8px 1px 0;
             white-space: nowrap; vertical-align: top; }
.params td { word-break: break-word; }
.params tr.vary td { font-weight: 600; }
.files a { margin-right: 6px; }
figure { margin: 0; display: flex; align-items: center; justify-content: center; min-height: 120px; }
figure img { width: 100%; height: auto; display: block; }
figure.none { color: var(--muted); background: #fafafa; border: 1px dashed #ddd; }
@media (max-width: 1000px) { .job { grid-template-columns: 1fr; } }
"""

_JS = """
(function () {
  var box = document.getElementById('jobs');
  var jobs = Array.prototype.slice.call(box.querySelectorAll('article.job'));
  var search = document.getElementById('q');
  var filters = Array.prototype.slice.call(document.querySelectorAll('select[data-filter]'));
  var sort = document.getElementById('sort');
  var dir = document.getElementById('dir');
  var shown = document.getElementById('shown');
  var descending = false;
  function get(el, key) { var v = el.getAttribute('data-' + key); return v === null ? '' : v; }
  function apply() {
    var text = search.value.trim().toLowerCase(), n = 0;
    jobs.forEach(function (el) {
      var ok = !text || get(el, 'text').indexOf(text) >= 0;
      filters.forEach(function (f) {
        if (ok && f.value !== '' && get(el, f.getAttribute('data-filter')) !== f.value) { ok = false; }
      });
      el.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = n + ' of ' + jobs.length + ' shown';
  }
  function compare(a, b) {
    var key = sort.value, x = get(a, key), y = get(b, key);
    if (x === '' || y === '') { return (x === '') - (y === ''); }  // missing values last
    var nx = Number(x), ny = Number(y);
    var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y, undefined, {numeric: true});
    if (c === 0) { c = Number(get(a, 'index')) - Number(get(b, 'index')); }
    return descending ? -c : c;
  }
  function order() { jobs.slice().sort(compare).forEach(function (el) { box.appendChild(el); }); }
  // The view lives in the address (#p-preset=lofi-chill&sort=f-lufs&dir=desc): links to it can be shared.
  function save() {
    var parts = [];
    if (search.value) { parts.push('q=' + encodeURIComponent(search.value)); }
    filters.forEach(function (f) {
      if (f.value !== '') {
        parts.push(encodeURIComponent(f.getAttribute('data-filter')) + '=' + encodeURIComponent(f.value));
      }
    });
    if (sort.value !== 'index') { parts.push('sort=' + encodeURIComponent(sort.value)); }
    if (descending) { parts.push('dir=desc'); }
    try { history.replaceState(null, '', '#' + parts.join('&')); } catch (e) { /* some file:// settings */ }
  }
  function load() {
    location.hash.replace(/^#/, '').split('&').forEach(function (part) {
      if (!part) { return; }
      var i = part.indexOf('=');
      var key = decodeURIComponent(part.slice(0, i)), value = decodeURIComponent(part.slice(i + 1));
      if (key === 'q') { search.value = value; }
      else if (key === 'sort') { sort.value = value; }
      else if (key === 'dir') { descending = value === 'desc'; }
      else { filters.forEach(function (f) { if (f.getAttribute('data-filter') === key) { f.value = value; } }); }
    });
    dir.textContent = descending ? 'descending' : 'ascending';
  }
  search.addEventListener('input', function () { apply(); save(); });
  filters.forEach(function (f) { f.addEventListener('change', function () { apply(); save(); }); });
  sort.addEventListener('change', function () { order(); save(); });
  dir.addEventListener('click', function () {
    descending = !descending;
    dir.textContent = descending ? 'descending' : 'ascending';
    order();
    save();
  });
  document.addEventListener('play', function (e) {  // one player at a time
    document.querySelectorAll('audio').forEach(function (a) { if (a !== e.target) { a.pause(); } });
  }, true);
  load();
  order();
  apply();
})();
"""


def render_report(rows: list[dict[str, Any]], *, title: str = "batch", description: str = "") -> str:
    """The report page for manifest rows, as HTML text."""
    rows = [_clean(r) for r in rows if isinstance(r, dict)]
    varying = _varying(rows)
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r.get("status", "pending")] = statuses.get(r.get("status", "pending"), 0) + 1
    summary = f"{len(rows)} jobs · " + " · ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def select(key: str, label: str, values: list[str]) -> str:
        opts = "".join(f'<option value="{html.escape(v, quote=True)}">{html.escape(v or "(none)")}</option>'
                       for v in values)
        return (f'<label>{html.escape(label)}<select data-filter="{html.escape(key, quote=True)}">'
                f'<option value="">all</option>{opts}</select></label>')

    controls = ['<label>search<input type="search" id="q" placeholder="id, label, parameter=value"></label>',
                select("status", "status", sorted(statuses))]
    for attr, name in (("command", "command"), ("label", "label")):
        values = sorted({str(r.get(attr) or "") for r in rows})
        if len(values) > 1:
            controls.append(select(attr, name, values))
    for k, values in varying.items():
        controls.append(select(f"p-{_attr_key(k)}", k, values))
    sort_opts = [("index", "plan order"), ("id", "id"), ("status", "status")]
    sort_opts += [(f"p-{_attr_key(k)}", k) for k in varying]
    sort_opts += [(f"f-{k}", label) for k, label in SORT_FIGURES.items()]
    sort_opts += [("wall", "run time")]
    controls.append('<label>sort by<select id="sort">'
                    + "".join(f'<option value="{html.escape(v, quote=True)}">{html.escape(t)}</option>'
                            for v, t in sort_opts)
                    + '</select></label><button type="button" id="dir">ascending</button>')
    controls.append('<span id="shown"></span>')
    cards = "\n".join(_card(r, set(varying)) for r in rows)
    desc = f'<p>{html.escape(description)}</p>' if description else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="musegen batch">
<title>{html.escape(title)} - musegen batch</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{html.escape(title)}</h1>
{desc}<p class="summary">{html.escape(summary)} · made {when} ·
<a href="{MANIFEST_CSV}">{MANIFEST_CSV}</a> · <a href="{MANIFEST}">{MANIFEST}</a></p>
</header>
<form id="controls" onsubmit="return false">{"".join(controls)}</form>
<main id="jobs">
{cards}
</main>
<script>{_JS}</script>
</body>
</html>
"""


def write_report(out_dir: str | os.PathLike[str], rows: list[dict[str, Any]], *, title: str = "batch",
                 description: str = "") -> Path:
    """Write ``<out_dir>/report.html`` atomically; returns its path."""
    path = Path(out_dir) / REPORT
    atomic_write_text(path, render_report(rows, title=title, description=description))
    return path
