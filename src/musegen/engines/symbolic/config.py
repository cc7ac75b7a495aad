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
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})
