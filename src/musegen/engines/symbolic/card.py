"""The model card of a checkpoint: which card describes it and which sources it learned from.

The shipped weights' card is ``weights/MODEL_CARD.md``; its front matter (the
lines between the first two ``---``) gives ``id`` and ``training_sources``
(comma-separated) for machines.  A checkpoint without a card names its
sources in ``config.json`` (``data.sources``, written by
``scripts/train_symbolic.py``).
"""

from __future__ import annotations

import functools
from pathlib import Path

CARD = "MODEL_CARD.md"


@functools.lru_cache(maxsize=16)
def _front_matter(path: str, mtime_ns: int) -> dict[str, str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    fields = {}
    for line in lines[1:]:
        if line.strip() == "---":
            break
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def model_card_info(config: dict, folder: str | Path | None) -> dict:
    """``{"model_card", "model_card_id", "training_sources"}`` of the checkpoint in ``folder``.

    Parameters
    ----------
    config : dict
        The checkpoint's ``config.json``.
    folder : str or Path or None
        The checkpoint folder (None: the shipped one).

    ``model_card`` is the card's path, or None when the folder has none.
    """
    if folder is None:
        from musegen.engines.symbolic.checkpoint import shipped_checkpoint

        folder = shipped_checkpoint()
    card = Path(folder) / CARD
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    sources = [str(s) for s in data.get("sources", [])] if isinstance(data.get("sources"), list) else []
    info = {"model_card": None, "model_card_id": None, "training_sources": sources}
    if card.is_file():
        front = _front_matter(str(card), card.stat().st_mtime_ns)
        listed = [s.strip() for s in front.get("training_sources", "").split(",") if s.strip()]
        info.update(model_card=str(card), model_card_id=front.get("id") or None,
                    training_sources=listed or sources)
    return info
