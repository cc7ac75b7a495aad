"""The music transformer's shape, saved beside its weights (no torch needed to read it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network; saved beside its weights."""

    vocab_size: int
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 256
    context: int = 512
    dropout: float = 0.1
    rope_base: float = 10000.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "model config") -> "ModelConfig":
        """Build from a checkpoint's ``"model"`` table, checked against :data:`BOUNDS`.

        Raises
        ------
        ParameterError
            Naming ``where``, the key and the value, before anything is built.
        """
        from musegen.errors import ParameterError

        if not isinstance(d, dict):
            raise ParameterError(f"{where}: 'model' must be a table of the network's shape, got {d!r:.80}")
        if "vocab_size" not in d:
            raise ParameterError(f"{where}: 'model' lacks 'vocab_size'")
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in d.items() if k in known}
        for key, value in values.items():
            lo, hi, integer = BOUNDS[key]
            kind = "an integer" if integer else "a number"
            if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
                raise ParameterError(f"{where}: model.{key} must be {kind}, got {value!r:.80}")
            if not (lo <= value <= hi):  # NaN fails too
                raise ParameterError(f"{where}: model.{key} must be between {lo} and {hi}, got {value!r}")
        cfg = cls(**values)
        if cfg.d_model % cfg.n_head or (cfg.d_model // cfg.n_head) % 2:
            raise ParameterError(f"{where}: model.n_head {cfg.n_head} must split model.d_model {cfg.d_model} "
                                 "into heads of an even size")
        return cfg


#: ``(lowest, highest, integer)`` of each field a checkpoint may give: wide enough for any model
#: this engine can run on a CPU, narrow enough that a corrupt value cannot hang or overflow it.
BOUNDS = {
    "vocab_size": (2, 1_000_000, True),
    "n_layer": (1, 256, True),
    "n_head": (1, 256, True),
    "d_model": (2, 16_384, True),
    "context": (8, 1 << 20, True),
    "dropout": (0.0, 0.99, False),
    "rope_base": (2.0, 1e12, False),  # 0 or 1 give NaN or position-blind attention
}
