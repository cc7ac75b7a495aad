"""Learned styles: a preset derived from a user's MIDI files plus a model fine-tuned on them.

``musegen style learn FILES... --name NAME`` (:func:`musegen.style.learn.learn_style`)
writes the style into the styles folder (:mod:`musegen.style.store`); after
that ``--preset NAME`` works like any preset.
"""

from musegen.style import source as _source  # noqa: F401,E402  (registers learned styles as a preset source)
