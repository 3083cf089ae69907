"""`thresher select --mixture`: a mixture from `thresher mix` drawn from a pool, each group's weight x the token
budget, exactly (every group as close to its quota as its records allow, never over) and reproducibly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from thresher.errors import ConfigError
from thresher.selectors import Budget, noise
from thresher.selectors.mixture import STREAM_MIXTURE, MixtureQuotas


def _groups(rng: np.random.Generator, n: int = 3000):
    labels = rng.choice(np.array(["a", "b", "c", "d"]), size=n, p=[0.4, 0.3, 0.2, 0.1])
    tokens = rng.integers(5, 400, size=n).astype(float)
    return labels, tokens


@pytest.mark.parametrize("seed", range(5))
def test_every_group_is_filled_to_its_quota_and_no_further(seed):
    rng = np.random.default_rng(seed)
    labels, tokens = _groups(rng)
    weights = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}
    budget = Budget.parse("60k tokens")
    chosen = MixtureQuotas(weights, seed=seed).select_tokens(labels, tokens, budget)
    assert len(set(chosen.tolist())) == len(chosen)
    keys = noise.uniform(seed, np.arange(len(labels)), STREAM_MIXTURE)
    for g, w in weights.items():
        mine = chosen[labels[chosen] == g]
        quota = w * budget.value
        rows = np.flatnonzero(labels == g)
        order = rows[np.lexsort((rows, -keys[rows]))]  # the group's records in their random order
        assert set(mine.tolist()) == set(order[: len(mine)].tolist())  # a prefix of that order
        assert tokens[mine].sum() <= quota < tokens[mine].sum() + tokens[order[len(mine)]]  # the next one won't fit
    by_group = {g: tokens[chosen[labels[chosen] == g]].sum() for g in weights}
    assert all(abs(by_group[g] - w * 60_000) < 400 for g, w in weights.items())  # within one record of the quota
    # any prefix keeps the proportions: the first half holds about half of each group's records
    half = chosen[: len(chosen) // 2]
    for g in weights:
        assert abs((labels[half] == g).sum() - (labels[chosen] == g).sum() / 2) <= 2


def test_the_draw_is_keyed_by_position_and_seed():
    labels, tokens = _groups(np.random.default_rng(0))
    sel = MixtureQuotas({"a": 0.5, "b": 0.5}, seed=3)
    a = sel.select_tokens(labels, tokens, Budget.parse("20k tokens"))
    assert (a == sel.select_tokens(labels, tokens, Budget.parse("20k tokens"))).all()
    other = MixtureQuotas({"a": 0.5, "b": 0.5}, seed=4).select_tokens(labels, tokens, Budget.parse("20k tokens"))
    assert set(a.tolist()) != set(other.tolist())
    assert not np.isin(labels[a], ["c", "d"]).any()  # groups without a weight are not drawn


def test_within_score_takes_each_groups_best_records():
    labels, tokens = _groups(np.random.default_rng(1))
    scores = np.random.default_rng(2).normal(size=len(labels))
    chosen = MixtureQuotas({"a": 0.7, "c": 0.3}, within="score").select_tokens(
        labels, tokens, Budget.parse("30k tokens"), scores)
    for g in ("a", "c"):
        mine = chosen[labels[chosen] == g]
        others = np.setdiff1d(np.flatnonzero(labels == g), mine)
        assert scores[mine].min() >= scores[others].max()


def test_bad_mixtures_and_budgets_are_refused():
    labels, tokens = _groups(np.random.default_rng(0))
    with pytest.raises(ConfigError, match="holds .* tokens but the mixture asks for"):
        MixtureQuotas({"d": 1.0}).select_tokens(labels, tokens, Budget.parse("1M tokens"))
    with pytest.raises(ConfigError, match="token budget"):
        MixtureQuotas({"a": 1.0}).select_tokens(labels, tokens, Budget.parse("5%"))
    with pytest.raises(ConfigError, match="does not have: zz"):
        MixtureQuotas({"a": 0.5, "zz": 0.5}).select_tokens(labels, tokens, Budget.parse("1k tokens"))
    with pytest.raises(ConfigError, match="sum to 1"):
        MixtureQuotas({"a": 0.5, "b": 0.2})
    with pytest.raises(ConfigError, match="non-negative"):
        MixtureQuotas({"a": 1.5, "b": -0.5})


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "thresher.cli", *args], capture_output=True, text=True, timeout=600)


def test_a_mixture_from_thresher_mix_is_drawn_from_the_pool(tmp_path, sample_pool):
    made = _cli("mix", "--pool", str(sample_pool), "--method", "temperature", "--tau", "3", "--budget",
                "200k tokens", "--out", str(tmp_path / "mix"), "-q")
    assert made.returncode == 0, made.stderr
    mixture = yaml.safe_load((tmp_path / "mix" / "mixture.yaml").read_text())
    runs = []
    for workers in ("1", "2"):
        out = tmp_path / f"sel{workers}"
        proc = _cli("select", "--pool", str(sample_pool), "--mixture", str(tmp_path / "mix" / "mixture.yaml"),
                    "--budget", "200k tokens", "--seed", "7", "--workers", workers, "--out", str(out), "--no-report",
                    "-q")
        assert proc.returncode == 0, proc.stderr
        runs.append(out)
    ids = (runs[0] / "selected" / "ids.txt").read_text()
    assert ids == (runs[1] / "selected" / "ids.txt").read_text()  # the same draw with any worker count
    scores = pq.read_table(runs[0] / "scores" / "scores.parquet").to_pandas()
    picked = scores[scores["id"].isin(ids.splitlines())]
    longest = scores.groupby("group")["n_words"].max()
    for group, weight in mixture["weights"].items():
        got = picked.loc[picked["group"] == group, "n_words"].sum()
        assert weight * 200_000 - longest[group] < got <= weight * 200_000, group
    # the records written are the drawn ones, with every field
    written = pa.concat_tables(pq.read_table(p) for p in sorted((runs[0] / "selected").glob("part-*.parquet")))
    assert sorted(written["id"].to_pylist()) == sorted(ids.splitlines())


def test_a_mixture_needs_a_token_budget_and_matching_groups(tmp_path, sample_pool):
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"weights": {"news": 0.5, "podcasts": 0.5}}))
    proc = _cli("select", "--pool", str(sample_pool), "--mixture", str(tmp_path / "m.yaml"), "--budget", "50k tokens",
                "--out", str(tmp_path / "a"), "--no-report")
    assert proc.returncode == 2 and "podcasts" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "n.yaml").write_text(yaml.safe_dump({"weights": {"news": 1.0}}))
    proc = _cli("select", "--pool", str(sample_pool), "--mixture", str(tmp_path / "n.yaml"), "--budget", "5%",
                "--out", str(tmp_path / "b"), "--no-report")
    assert proc.returncode == 2 and "token budget" in proc.stderr


def test_python_draws_a_mixture_given_as_a_dict(tmp_path, sample_pool):
    import thresher as th

    run = th.select(sample_pool, mixture={"news": 0.25, "code": 0.75}, budget="40k tokens", out=tmp_path / "r",
                    report=False, progress=False)
    scores = run.scores().to_pandas()
    picked = scores[scores["id"].isin(run.selected_ids())]
    tokens = picked.groupby("group")["n_words"].sum().to_dict()
    longest = scores.groupby("group")["n_words"].max()
    assert set(tokens) == {"news", "code"}
    assert tokens["news"] <= 10_000 < tokens["news"] + longest["news"]
    assert tokens["code"] <= 30_000 < tokens["code"] + longest["code"]


def test_a_recipe_mix_step_draws_the_mixture_as_select_does(tmp_path, sample_pool):
    """``- mix: mixture.yaml`` (a path relative to the recipe, or the weights inline) after a filter: each group's
    share of the token budget among the records the filter kept, within one record and never over."""
    (tmp_path / "mixture.yaml").write_text(yaml.safe_dump({"method": "custom",
                                                           "weights": {"news": 0.5, "wikipedia": 0.3, "code": 0.2}}))
    for name, spec in (("file", "mixture.yaml"), ("inline", "{news: 0.5, wikipedia: 0.3, code: 0.2}")):
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(f"pool: {sample_pool}\nseed: 5\nsteps:\n  - score: tokens\n  - filter: \"n_words >= 20\"\n"
                          f"  - mix: {spec}\n    budget: 30000 tokens\n")
        proc = _cli("run", str(recipe), "--out", str(tmp_path / name), "--no-report", "-q")
        assert proc.returncode == 0, proc.stderr
    ids = (tmp_path / "file" / "selected" / "ids.txt").read_text()
    assert ids == (tmp_path / "inline" / "selected" / "ids.txt").read_text()
    scores = pq.read_table(tmp_path / "file" / "scores" / "scores.parquet").to_pandas()
    picked = scores[scores["id"].isin(ids.splitlines())]
    assert (picked["n_words"] >= 20).all()
    longest = scores.groupby("group")["n_words"].max()
    for group, weight in {"news": 0.5, "wikipedia": 0.3, "code": 0.2}.items():
        got = picked.loc[picked["group"] == group, "n_words"].sum()
        assert weight * 30_000 - longest[group] < got <= weight * 30_000, group
