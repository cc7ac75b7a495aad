"""What a generate call returns per variation: its files and its sidecar."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Result:
    """One generated item: its files and its sidecar (as written)."""

    stem: str
    wav: Path
    mid: Path | None
    json: Path
    sidecar: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stem": self.stem,
            "wav": str(self.wav),
            "mid": str(self.mid) if self.mid else None,
            "json": str(self.json),
            "analysis": self.sidecar.get("analysis", {}),
            "parameters": self.sidecar.get("parameters", {}),
        }
