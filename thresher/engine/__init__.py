"""Engines run a stage's function over a stream of work items; results come back in item order."""

from thresher.engine.local import LocalEngine

__all__ = ["LocalEngine"]
