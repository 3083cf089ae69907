"""The stage contract: plans are checked when built and when run, and every job's manifest lists what ran."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import thresher as th
from thresher.demo import sample_path
from thresher.engine.plan import GLOBAL, MAP, Plan, Stage
from thresher.errors import ThresherError
from thresher.evaluate.harness import COMPARE_PLAN, EVALUATE_PLAN
from thresher.jobs.dedup import FIND_PLAN
from thresher.jobs.embed import EMBED_PLAN
from thresher.jobs.label import LABEL_PLAN
from thresher.jobs.select import PIPELINE_SELECT_PLAN, RESELECT_PLAN, SELECT_PLAN
from thresher.mix.job import BASELINE_PLAN, FROM_RUNS_PLAN, REGMIX_PLAN
from thresher.pipeline import SCORE_PLAN

README = Path(__file__).resolve().parents[1] / "README.md"
PLANS = {"select": SELECT_PLAN, "select --from-run": RESELECT_PLAN, "score": SCORE_PLAN, "label": LABEL_PLAN,
         "embed": EMBED_PLAN, "run (select step)": PIPELINE_SELECT_PLAN, "evaluate": EVALUATE_PLAN,
         "th.compare": COMPARE_PLAN, "dedup": FIND_PLAN, "mix --from-runs": FROM_RUNS_PLAN,
         "mix --method": BASELINE_PLAN, "mix --method regmix": REGMIX_PLAN}


def _stage(name, needs=(), gives=(), fn=None, kind=MAP):
    return Stage(name, kind, "test", fn or (lambda v: {g: 1 for g in gives}), tuple(needs), tuple(gives))


def test_a_stage_that_needs_what_nothing_gives_is_refused_when_the_plan_is_built():
    with pytest.raises(ValueError, match="stage b needs y"):
        Plan("t", ("x",), (_stage("a", ["x"], ["z"]), _stage("b", ["y"])))
    with pytest.raises(ValueError, match="repeat"):
        Plan("t", (), (_stage("a"), _stage("a")))
    with pytest.raises(ValueError, match="kind"):
        Stage("a", "reduce", "test", lambda v: {})


def test_a_stage_must_give_exactly_what_it_declares_and_inputs_must_be_there():
    plan = Plan("t", ("x",), (_stage("a", ["x"], ["y"], fn=lambda v: {"y": v.x + 1, "extra": 0}),))
    with pytest.raises(ThresherError, match="gave"):
        plan.run(x=1)
    with pytest.raises(ThresherError, match="needs inputs x"):
        plan.run()
    ok = Plan("t", ("x",), (_stage("a", ["x"], ["y"], fn=lambda v: {"y": v.x + 1}),
                            _stage("b", ["y"], ["z"], fn=lambda v: {"z": v.y * 10}, kind=GLOBAL)))
    v = ok.run(x=1)
    assert v.z == 20 and [s["name"] for s in v.stages] == ["a", "b"] and v.stages[1]["kind"] == GLOBAL


def test_every_job_plan_declares_map_and_global_stages():
    for job, plan in PLANS.items():
        kinds = {s.kind for s in plan.stages}
        assert kinds <= {MAP, GLOBAL}, job
        assert all(s.does and len(s.does) < 200 for s in plan.stages), job
    assert [s.kind for s in SELECT_PLAN.stages if s.name in ("fit", "select")] == [GLOBAL, GLOBAL]


def test_the_manifest_lists_the_stages_that_ran(tmp_path):
    run = th.select(sample_path("pool.parquet"), target=sample_path("target_news.jsonl"), out=tmp_path / "s",
                    budget=50, workers=1, progress=False, report=False)
    stages = run.manifest["stages"]
    assert [s["name"] for s in stages] == [s.name for s in SELECT_PLAN.stages]
    assert all(s["seconds"] >= 0 for s in stages) and run.manifest["timings"]["select"] == stages[4]["seconds"]
    again = th.reselect(run, out=tmp_path / "r", budget=20)
    assert [s["name"] for s in again.manifest["stages"]] == ["select", "measure", "write"]
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["stages"][0]["kind"] == GLOBAL


def test_the_readme_names_every_plan_and_its_stages_as_they_are():
    """README's "What happens" table is the plans' own declaration: a renamed or re-kinded stage fails here."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## What happens"):]
    for job, plan in PLANS.items():
        row = re.search(rf"^\| `{re.escape(job)}` \| (.+) \|$", section, re.M)
        assert row, f"README's stage table has no row for {job}"
        listed = [(m.group(1), GLOBAL if m.group(2) else MAP)
                  for m in re.finditer(r"(\w+)( \*\*global\*\*)?", row.group(1).replace("→", " "))]
        assert listed == [(s.name, s.kind) for s in plan.stages], job
