"""Set-level selection toward a target in embedding space: target coverage (``cover``) and mean matching (``mmd``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import thresher as th
from thresher.errors import ConfigError
from thresher.evaluate.harness import EvaluateConfig, run_evaluation
from thresher.selectors.anchored import MeanMatch, TargetCoverage, make_anchored


@pytest.fixture(scope="module")
def clusters():
    """Pool: 4 well separated clusters of 300 unit vectors; target: 120 points from clusters 0 and 1 (2:1)."""
    rng = np.random.default_rng(11)
    centres = np.eye(16)[:4] * 3
    groups = np.repeat(np.arange(4), 300)
    pool = centres[groups] + 0.6 * rng.normal(size=(1200, 16))
    target_groups = np.array([0] * 80 + [1] * 40)
    target = centres[target_groups] + 0.6 * rng.normal(size=(120, 16))
    return pool.astype(np.float32), groups, target.astype(np.float32)


def _coverage(pool, target, rows, m):
    p = pool / np.linalg.norm(pool, axis=1, keepdims=True)
    t = target / np.linalg.norm(target, axis=1, keepdims=True)
    sims = np.maximum(t @ p[rows].T, 0)
    return float(np.sort(sims, axis=1)[:, -m:].sum())


def test_coverage_spreads_the_budget_over_the_target_as_it_is_composed(clusters):
    pool, groups, target = clusters
    rows = TargetCoverage().select(pool, target, 240)
    assert len(set(rows.tolist())) == 240
    share = np.bincount(groups[rows], minlength=4) / 240
    assert abs(share[0] - 2 / 3) < 0.1 and abs(share[1] - 1 / 3) < 0.1 and share[2:].sum() < 0.05
    # lazy greedy picks what step-by-step greedy on the objective picks
    small = TargetCoverage().select(pool[:200], target[:30], 20)  # m = 1: facility location on the target
    chosen: list[int] = []
    for _ in range(20):
        left = [j for j in range(200) if j not in chosen]
        values = [_coverage(pool[:200], target[:30], chosen + [j], 1) for j in left]
        chosen.append(left[int(np.argmax(values))])
    assert abs(_coverage(pool[:200], target[:30], small, 1) - _coverage(pool[:200], target[:30], chosen, 1)) < 1e-4


def test_mean_matching_brings_the_selection_mean_to_the_target_mean(clusters):
    pool, groups, target = clusters
    unit = pool / np.linalg.norm(pool, axis=1, keepdims=True)
    mu = (target / np.linalg.norm(target, axis=1, keepdims=True)).mean(axis=0)
    rows = MeanMatch().select(pool, target, 150)
    topk = np.argsort(-(unit @ mu), kind="stable")[:150]
    assert np.linalg.norm(unit[rows].mean(axis=0) - mu) < 0.5 * np.linalg.norm(unit[topk].mean(axis=0) - mu)
    share = np.bincount(groups[rows], minlength=4) / 150
    assert abs(share[0] - 2 / 3) < 0.1 and abs(share[1] - 1 / 3) < 0.1


def test_token_budgets_quality_and_bad_parameters(clusters):
    pool, groups, target = clusters
    tokens = np.random.default_rng(2).integers(10, 100, len(pool))
    for selector in (TargetCoverage(), MeanMatch()):
        rows = selector.select(pool, target, "3000 tokens", n_tokens=tokens)
        assert 3000 - tokens.max() < tokens[rows].sum() <= 3000
    quality = np.random.default_rng(4).random(len(pool))
    plain = TargetCoverage().select(pool, target, 100, quality=quality)
    weighted = TargetCoverage(quality_weight=1.0).select(pool, target, 100, quality=quality)
    assert quality[weighted].mean() > quality[plain].mean()
    with pytest.raises(ConfigError, match="does not take"):
        make_anchored("cover", {"k_neighbors": 3})
    with pytest.raises(ConfigError, match="quality_weight"):
        MeanMatch(quality_weight=-1)
    with pytest.raises(ConfigError, match="dimensions"):
        TargetCoverage().select(pool, target[:, :8], 10)


@pytest.fixture(scope="module")
def embed_run(tmp_path_factory, small_pool):
    return th.embed(small_pool, out=tmp_path_factory.mktemp("emb") / "e", workers=1, progress=False,
                    report=False).path


@pytest.mark.parametrize("selector", ["cover", "mmd"])
def test_select_cli_with_embeddings_same_for_any_worker_count(tmp_path, small_pool, news_target, embed_run,
                                                               selector):
    ids = []
    for workers in ("1", "2"):
        out = tmp_path / workers
        proc = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--pool", str(small_pool), "--target",
                               str(news_target), "--selector", selector, "--embeddings", str(embed_run), "--budget",
                               "60", "--out", str(out), "--quiet", "--no-report", "--workers", workers],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        ids.append((out / "selected" / "ids.txt").read_text().split())
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["counts"]["all_accounted_for"] and manifest["counts"]["selected"] == 60
    assert ids[0] == ids[1]
    news = next(r for r in manifest["metrics"]["composition"] if r["group"] == "news")
    assert news["selected_share"] > 2 * news["pool_share"]
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--pool", str(small_pool), "--target",
                           str(news_target), "--selector", selector, "--budget", "60", "--out", str(tmp_path / "x"),
                           "--quiet"], capture_output=True, text=True)
    assert proc.returncode != 0 and "--embeddings" in proc.stderr


def test_evaluate_runs_cover_and_mmd(tmp_path, small_pool, news_target):
    result = run_evaluation(th.read(small_pool), None, tmp_path / "ev", target=th.read(news_target),
                            config=EvaluateConfig(methods=["cover", "mmd", "random"], budgets=["5%"], seeds=2,
                                                  metrics=["kl"]),
                            workers=1, progress=False, report=False)
    verdicts = result.verdicts()
    assert verdicts["cover", "5%", "kl_to_heldout"] == "better"
    assert verdicts["mmd", "5%", "kl_to_heldout"] == "better"


def test_recipe_selects_with_cover(tmp_path, small_pool, news_target, embed_run, run_recipe):
    proc = run_recipe(f"pool: {small_pool}\ntarget: {news_target}\nout: run\nsteps:\n  - score: dsir\n"
                      f"  - select: cover\n    embeddings: {embed_run}\n    budget: 40\n    min_tokens: 0\n")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["counts"]["selected"] == 40 and manifest["config"]["selector"] == "cover"
    proc = run_recipe(f"pool: {small_pool}\nout: run2\nsteps:\n  - score: c4\n  - select: cover\n"
                      f"    embeddings: {embed_run}\n    budget: 40\n    params:\n      k_neighbors: 3\n", "bad.yaml")
    assert proc.returncode != 0 and "does not take k_neighbors (it takes quality_weight)" in proc.stderr


def test_recipe_passes_selector_parameters(tmp_path, small_pool, news_target, run_recipe):
    """A select step's ``params:`` reach the selector (they once carried YAML's line marker and were refused)."""
    proc = run_recipe(f"pool: {small_pool}\ntarget: {news_target}\nout: run\nsteps:\n  - score: dsir\n"
                      "  - select: match\n    score: dsir\n    budget: 40\n    params:\n      quality_weight: 0\n")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["selector_params"] == {"quality_weight": 0}


def test_mean_matching_under_tokens_ranks_the_exact_decrease_per_token(clusters):
    """One pick at a time (growth tiny): each pick is the record with the largest exact decrease of the squared
    distance between means per token, checked by brute force."""
    pool, _, target = clusters
    pool, target = pool[:120], target[:30]
    unit = pool / np.linalg.norm(pool, axis=1, keepdims=True)
    mu = (target / np.linalg.norm(target, axis=1, keepdims=True)).mean(axis=0)
    tokens = np.random.default_rng(5).integers(5, 200, len(pool))
    rows = MeanMatch(growth=1e-9).select(pool, target, "600 tokens", n_tokens=tokens)
    chosen: list[int] = []
    spent = 0
    while True:
        before = np.sum((unit[chosen].mean(axis=0) - mu) ** 2) if chosen else np.sum(mu ** 2)
        best, best_value = None, -np.inf
        for j in range(len(pool)):
            if j in chosen or spent + tokens[j] > 600:
                continue
            value = (before - np.sum((unit[chosen + [j]].mean(axis=0) - mu) ** 2)) / tokens[j]
            if value > best_value + 1e-12:
                best, best_value = j, value
        if best is None:
            break
        chosen.append(best)
        spent += tokens[best]
    assert rows.tolist()[: len(chosen)] == chosen
