"""Jobs as plans of declared stages: what each step reads, what it leaves, and whether it is per shard or global.

A *map* stage works shard by shard (batches of records, feature-store shards) and its work runs on the engine's
workers or Ray tasks; a *global* stage needs the whole pool's side-car values at once (fitting on a sample, the
selection, grouping duplicates, a label model) and runs once, in the driver, over what earlier stages left. A stage
is a function from the plan's named values to new named values; it never knows which engine runs its work, because
the engine (local processes or Ray) is one of the values it is given.

:meth:`Plan.run` checks, before anything runs, that every value a stage needs is an input of the plan or given by an
earlier stage, and after each stage that it gave exactly what it declared; it times every stage, so each job's
manifest lists its stages with their kind, inputs, outputs and seconds (``manifest["stages"]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from thresher.errors import ThresherError

MAP: Literal["map"] = "map"
GLOBAL: Literal["global"] = "global"


class Values(dict):
    """The named values of one plan run; ``values.scores`` reads ``values["scores"]``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no value {name!r} in this plan run (has: {', '.join(sorted(self))})") from None


@dataclass(frozen=True)
class Stage:
    """One step of a job: ``fn(values) -> {name: value}`` for exactly the names in ``gives``."""

    name: str
    kind: Literal["map", "global"]
    does: str  # one line: what the stage does, for the README, --help and the manifest
    fn: Callable[[Values], dict] = field(repr=False, compare=False)
    needs: tuple[str, ...] = ()
    gives: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in (MAP, GLOBAL):
            raise ValueError(f"stage {self.name}: kind must be {MAP!r} or {GLOBAL!r}, got {self.kind!r}")

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "does": self.does, "needs": list(self.needs),
                "gives": list(self.gives)}


@dataclass(frozen=True)
class Plan:
    """A job as an ordered list of stages over named ``inputs``; checked when it is built."""

    job: str
    inputs: tuple[str, ...]
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        known = set(self.inputs)
        for stage in self.stages:
            missing = [n for n in stage.needs if n not in known]
            if missing:
                raise ValueError(f"plan {self.job}: stage {stage.name} needs {', '.join(missing)}, which neither "
                                 "the plan's inputs nor an earlier stage give")
            known.update(stage.gives)
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"plan {self.job}: stage names repeat: {names}")

    def run(self, **inputs: Any) -> Values:
        """Run every stage in order; the result holds every value, and ``stages``: what ran and how long."""
        absent = [n for n in self.inputs if n not in inputs]
        if absent:
            raise ThresherError(f"plan {self.job} needs inputs {', '.join(absent)}")
        values = Values(inputs)
        ran: list[dict] = []
        for stage in self.stages:
            t0 = time.perf_counter()
            out = stage.fn(values)
            if set(out) != set(stage.gives):
                raise ThresherError(f"stage {stage.name} of {self.job} gave {sorted(out)}, declared "
                                    f"{sorted(stage.gives)}")
            values.update(out)
            ran.append({**stage.describe(), "seconds": round(time.perf_counter() - t0, 4)})
        values["stages"] = ran
        return values

    def describe(self) -> list[dict]:
        return [s.describe() for s in self.stages]


def stage_seconds(stages: Iterable[dict]) -> dict[str, float]:
    """Seconds per stage name, as manifests have always kept them under ``timings``."""
    return {s["name"]: s["seconds"] for s in stages}


__all__ = ["GLOBAL", "MAP", "Plan", "Stage", "Values", "stage_seconds"]
