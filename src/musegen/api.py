"""The Python API: what the CLI's commands do, as functions.

>>> import musegen.api as mg
>>> results = mg.generate("lofi-chill", bars=16, seed=7, out_dir="out")
>>> mg.render("song.mid", "song.wav")
>>> mg.post("song.wav", "song-master.wav", [{"op": "loudness", "lufs": -14}])
>>> mg.analyze("song.wav")["lufs"]
"""

from __future__ import annotations

from musegen.actions import analyze_file as analyze
from musegen.actions import post_file as post
from musegen.actions import render_file as render
from musegen.pipeline import Result, extend, generate
from musegen.presets import list_presets, load_preset

__all__ = ["Result", "analyze", "extend", "generate", "list_presets", "load_preset", "post", "render"]
