"""Generation engines: a request in, MIDI and/or audio out.

Engines register by name in :mod:`musegen.engines.registry`; each is imported
only when used, so listing them costs nothing.
"""

from musegen.engines.base import Engine, EngineOutput, Request
from musegen.engines.registry import available_engines, get_engine

__all__ = ["Engine", "EngineOutput", "Request", "available_engines", "get_engine"]
