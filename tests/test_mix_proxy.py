"""thresher mix --method regmix over a pool: n-gram proxies trained per mixture, measured on a target, then fitted."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from scipy.stats import spearmanr

import thresher as th
from thresher.cli import main
from thresher.errors import ConfigError
from thresher.mix.search import sample_run_mixtures

ARGS = ["--group-field", "domain", "--method", "regmix", "--proxy", "ngram", "--runs", "10",
        "--proxy-tokens", "100k tokens", "--samples", "5000", "--top-k", "20", "--seed", "3"]


def _mix(args: list[str]):
    return CliRunner().invoke(main, ["mix", *args])


@pytest.fixture(scope="module")
def news_runs(tmp_path_factory, sample_pool, news_target):
    """The same regmix toward the news sample on 2 workers and on 1."""
    root = tmp_path_factory.mktemp("regmix")
    outs = []
    for workers in ("2", "1"):
        result = _mix(["--pool", str(sample_pool), "--target", str(news_target), *ARGS, "--budget", "1M tokens",
                       "--workers", workers, "--out", str(root / f"w{workers}")])
        assert result.exit_code == 0, result.output
        outs.append(root / f"w{workers}")
    return outs


def test_the_fitted_mixture_leans_toward_the_target_domain(news_runs):
    mixture = yaml.safe_load((news_runs[0] / "mixture.yaml").read_text())
    weights, natural = mixture["weights"], mixture["natural"]["weights"]
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-4)
    assert weights["news"] > natural["news"] + 0.1
    assert max(weights, key=weights.get) == "news"
    assert mixture["predicted_objective"] < mixture["natural"]["objective"]  # the search found something better
    assert sum(mixture["expected_tokens"].values()) == pytest.approx(1e6, rel=1e-4)


def test_proxy_target_loss_falls_as_the_news_weight_rises(news_runs):
    runs = pq.read_table(news_runs[0] / "runs.parquet").to_pydict()
    assert spearmanr(runs["weight:news"], runs["target"])[0] < -0.6
    # the news held-out slice of the pool agrees with the news target: both are news
    assert spearmanr(runs["group:news"], runs["target:target_news"])[0] > 0.8
    # and each group's own held-out loss falls as its weight rises
    groups = [c.split(":", 1)[1] for c in runs if c.startswith("group:")]
    assert len(groups) == 9
    rho = [spearmanr(runs[f"weight:{g}"], runs[f"group:{g}"])[0] for g in groups]
    assert np.median(rho) < -0.6, dict(zip(groups, rho))


def test_runs_table_has_one_row_per_run_weights_summing_to_one_and_tokens_near_the_budget(news_runs):
    table = pq.read_table(news_runs[0] / "runs.parquet")
    runs = table.to_pydict()
    assert runs["run"] == list(range(10))
    groups = [c.split(":", 1)[1] for c in table.column_names if c.startswith("weight:")]
    assert len(groups) == 9 and "german_quotes" in groups
    weights = np.array([runs[f"weight:{g}"] for g in groups]).T
    tokens = np.array([runs[f"tokens:{g}"] for g in groups]).T
    assert np.allclose(weights.sum(axis=1), 1.0)
    assert np.all(tokens.sum(axis=1) >= 100_000) and np.all(tokens.sum(axis=1) < 100_000 + 9 * 2_000)
    assert np.all(tokens[weights == 0] == 0) and np.all(tokens[weights > 0] > 0)
    mixture = yaml.safe_load((news_runs[0] / "mixture.yaml").read_text())
    assert np.allclose(weights[0], [mixture["natural"]["weights"][g] for g in groups], atol=1e-6)  # run 0: natural
    assert runs["target"] == runs["target:target_news"]  # one target: the objective is its loss


def test_outputs_are_byte_identical_on_one_and_two_workers(news_runs):
    for name in ("mixture.yaml", "runs.parquet", "mixtures.csv", "metrics.csv"):
        assert (news_runs[0] / name).read_bytes() == (news_runs[1] / name).read_bytes(), name


def test_manifest_accounts_for_every_record_and_lists_the_plan(news_runs, sample_pool):
    manifest = json.loads((news_runs[0] / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["input_records"] == counts["read"] == pq.read_metadata(sample_pool).num_rows
    assert counts["failed"] == 0 and counts["runs"] == 10 and counts["targets"][0]["records"] == 150
    assert all(n >= 1 for n in counts["heldout_records"].values())
    assert [s["name"] for s in manifest["stages"]] == ["index_pool", "read_targets", "sample_mixtures", "gather",
                                                     "proxy_runs", "fit", "search"]
    assert len(manifest["proxy_run_seconds"]) == 10 and manifest["engine"]["workers"] == 2


def test_the_runs_refit_with_from_runs(news_runs, tmp_path):
    """mixtures.csv and metrics.csv are in RegMix's format: --from-runs, searching around the same natural mixture,
    finds the same mixture."""
    original = yaml.safe_load((news_runs[0] / "mixture.yaml").read_text())
    natural = original["natural"]["weights"]
    prior = tmp_path / "prior.csv"
    prior.write_text("index," + ",".join(natural) + "\n0," + ",".join(str(w) for w in natural.values()) + "\n")
    result = _mix(["--from-runs", str(news_runs[0] / "mixtures.csv"), "--metrics", str(news_runs[0] / "metrics.csv"),
                   "--objective", "target", "--prior", str(prior), "--samples", "5000", "--top-k", "20",
                   "--seed", "3", "--out", str(tmp_path / "refit")])
    assert result.exit_code == 0, result.output
    refit = yaml.safe_load((tmp_path / "refit" / "mixture.yaml").read_text())
    assert refit["cross_validation"]["spearman"] == pytest.approx(original["cross_validation"]["spearman"], abs=1e-3)
    assert refit["weights"] == pytest.approx(original["weights"], abs=0.01)


def test_python_api_blends_two_targets_by_weight(tmp_path, small_pool, news_target):
    tech = th.demo.sample_path("target_tech_docs.jsonl")
    run = th.mix(small_pool, target=[news_target, tech], target_weights=[1, 3], out=tmp_path / "blend", runs=10,
                 proxy_tokens="60k tokens", n_samples=2000, top_k=10, workers=1)
    mixture = yaml.safe_load((run.path / "mixture.yaml").read_text())
    assert [t["weight"] for t in mixture["targets"]] == [0.25, 0.75]
    runs = pq.read_table(run.path / "runs.parquet").to_pydict()
    blend = 0.25 * np.array(runs["target:target_news"]) + 0.75 * np.array(runs["target:target_tech_docs"])
    assert np.allclose(runs["target"], blend)
    assert spearmanr(runs["weight:tech_docs"], runs["target"])[0] < -0.5
    assert mixture["weights"]["tech_docs"] > mixture["natural"]["weights"]["tech_docs"]


@pytest.mark.parametrize("change,message", [
    (["--group-field", "nope"], "no record has the field 'nope'"),
    (["--runs", "1"], "regmix needs at least 4 proxy runs"),
    (["--proxy-tokens", "5M tokens"], "is more than the pool's"),
    (["--proxy-tokens", "10%"], "a number of tokens"),
    (["--target-weights", "1,2,3"], "one weight >= 0 per --target"),
    (["--target-weights", "a,b"], "comma-separated numbers"),
])
def test_bad_inputs_are_one_line_errors_with_exit_2(tmp_path, small_pool, news_target, change, message):
    args = ["--pool", str(small_pool), "--target", str(news_target), *ARGS, "--workers", "1"]
    for option in change[::2]:
        at = args.index(option) if option in args else None
        if at is not None:
            del args[at:at + 2]
    result = _mix([*args, *change, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "mixture.yaml").exists()


def test_a_target_with_no_records_and_no_target_are_errors(tmp_path, small_pool):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = _mix(["--pool", str(small_pool), "--target", str(empty), *ARGS, "--workers", "1",
                   "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and str(empty) in result.output and "no records" in result.output
    with pytest.raises(ConfigError, match="needs at least one --target"):
        th.mix(small_pool, out=tmp_path / "b", workers=1)


def test_run_sampler_follows_regmix_caps_and_starts_at_the_natural_mixture():
    prior = np.array([0.4, 0.3, 0.2, 0.1, 0.0])
    cap = np.array([1.0, 1.0, 0.5, 0.15, 0.0])
    mixtures = sample_run_mixtures(prior, 50, seed=1, max_weight=cap)
    assert np.allclose(mixtures[0], prior) and np.allclose(mixtures.sum(axis=1), 1.0)
    assert np.all(mixtures <= cap + 1e-12) and np.all(mixtures[:, 4] == 0)
    assert np.all((mixtures == 0) | (mixtures >= 1e-3))
    assert len({tuple(m) for m in mixtures.round(6)}) == 50  # distinct mixtures
    assert (mixtures[1:].max(axis=1) > 0.9).sum() >= 5  # small Dirichlet strengths: some runs near one group
    assert np.array_equal(mixtures, sample_run_mixtures(prior, 50, seed=1, max_weight=cap))
    with pytest.raises(ConfigError, match="respect the per-group caps"):
        sample_run_mixtures(prior, 50, seed=1, max_weight=prior + 1e-9)


def test_mixing_laws_fit_one_law_per_target_and_lean_toward_the_target(tmp_path, sample_pool, news_target):
    """--method mixing_laws: the same proxy runs, then one exponential law per target set (here two: news, and a
    second copy weighted 0), blended by the target weights; the mixture leans toward news."""
    out = tmp_path / "laws"
    result = _mix(["--pool", str(sample_pool), "--target", str(news_target), "--target", str(news_target),
                   "--target-weights", "1,0", "--group-field", "domain", "--method", "mixing_laws", "--runs", "10",
                   "--proxy-tokens", "100k tokens", "--samples", "5000", "--top-k", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    mixture = yaml.safe_load((out / "mixture.yaml").read_text())
    assert mixture["method"] == "mixing_laws" and mixture["regressor"] == "mixing_laws"
    laws = mixture["regressor_params"]["targets"]
    assert [law["weight"] for law in laws] == [1.0, 0.0] and all(len(law["t"]) == 9 for law in laws)
    weights = mixture["weights"]
    assert max(weights, key=weights.get) == "news"
    runs = pq.read_table(out / "runs.parquet").to_pydict()
    assert mixture["predicted_objective"] < min(runs["target"]) + 0.05  # the law's minimum is no worse than a run


def test_the_users_trainer_as_proxy_per_mixture(tmp_path, sample_pool, news_target):
    """--proxy-command: each sampled mixture's records go to the user's command as train.parquet, with the target
    records and each group's held-out slice in heldout.parquet; its loss:NAME metrics are the objective."""
    import sys
    from pathlib import Path

    trainer = Path(__file__).parent / "data" / "mix" / "unigram_trainer.py"
    out = tmp_path / "cmd"
    result = _mix(["--pool", str(sample_pool), "--target", str(news_target), "--group-field", "domain",
                   "--method", "regmix", "--runs", "8", "--proxy-tokens", "50k tokens", "--samples", "5000",
                   "--top-k", "20", "--workers", "2", "--out", str(out),
                   "--proxy-command", f"{sys.executable} {trainer} {{train}} {{heldout}} {{out}}"])
    assert result.exit_code == 0, result.output
    runs = pq.read_table(out / "runs.parquet").to_pydict()
    assert runs["target"] == runs["loss:target_news"] and len(runs["run"]) == 8
    heldout = pq.read_table(out / "proxy_data" / "heldout.parquet").to_pydict()
    assert "target:target_news" in heldout["set"] and any(s.startswith("group:") for s in heldout["set"])
    for r in range(8):  # each run's train file holds its draw: about --proxy-tokens whitespace tokens
        train = pq.read_table(out / "proxy_data" / f"run-{r:04d}" / "train.parquet")
        words = sum(len(t.split()) for t in train["text"].to_pylist())
        assert 50_000 <= words < 52_000 and runs["train_words"][r] >= words * 0.95
        groups = train["group"].to_pylist()
        news_share = sum(len(t.split()) for t, g in zip(train["text"].to_pylist(), groups) if g == "news") / words
        assert abs(news_share - runs["weight:news"][r]) < 0.05
    # the proxy's loss on news falls as a run's news share rises, and the fitted mixture leans toward news
    assert spearmanr(runs["weight:news"], runs["target"])[0] < -0.5
    mixture = yaml.safe_load((out / "mixture.yaml").read_text())
    assert mixture["proxy"]["kind"] == "command" and max(mixture["weights"], key=mixture["weights"].get) == "news"
    bad = _mix(["--pool", str(sample_pool), "--target", str(news_target), "--method", "regmix", "--runs", "4",
                "--proxy-tokens", "20k tokens", "--out", str(tmp_path / "bad"), "--proxy-command",
                f"{sys.executable} -c pass"])
    assert bad.exit_code == 2 and "wrote no" in bad.output


def test_the_tiny_lm_proxy_learns_what_it_is_trained_on(sample_pool, news_target):
    """The transformer proxy, on real records: trained on news it has a lower loss on the news target than trained on
    code, and a second run with the same data and seed gives the same bytes."""
    import pyarrow.compute as pc

    from thresher.lm.ngram import KneserNeyConfig
    from thresher.mix.tiny_lm import TinyLMConfig, build_vocabulary, tiny_lm_proxy_run

    featurizer = KneserNeyConfig(order=3).featurizer()
    pool = pq.read_table(sample_pool)
    target = featurizer.token_hashes(pa.array([json.loads(x)["text"] for x in news_target.read_text().splitlines()]))
    by_domain = {d: featurizer.token_hashes(pool.filter(pc.equal(pool["domain"], d))["text"].combine_chunks())
                 for d in ("news", "code")}
    vocabulary = build_vocabulary(np.concatenate([h for h, _ in by_domain.values()]), 2048)
    config = TinyLMConfig(vocab_size=2048, dim=32, steps=60, batch=8)
    losses = {d: tiny_lm_proxy_run(h, o, [target], vocabulary, config)[0][0] for d, (h, o) in by_domain.items()}
    assert losses["news"] < losses["code"] - 0.3, losses
    again = tiny_lm_proxy_run(*by_domain["news"], [target], vocabulary, config)[0][0]
    assert again == losses["news"]


def test_regmix_with_the_tiny_lm_proxy_is_the_same_on_one_and_two_workers(tmp_path, sample_pool, news_target):
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        result = _mix(["--pool", str(sample_pool), "--target", str(news_target), "--method", "regmix", "--proxy",
                       "tiny_lm", "--tiny-lm", "steps=20", "--tiny-lm", "dim=32", "--tiny-lm", "vocab_size=1024",
                       "--runs", "4", "--proxy-tokens", "30k tokens", "--samples", "2000", "--top-k", "10",
                       "--workers", workers, "--out", str(out)])
        assert result.exit_code == 0, result.output
        outs.append(out)
    assert (outs[0] / "runs.parquet").read_bytes() == (outs[1] / "runs.parquet").read_bytes()
    mixture = yaml.safe_load((outs[0] / "mixture.yaml").read_text())
    assert mixture["proxy"]["kind"] == "tiny_lm" and mixture["proxy"]["tiny_lm"]["steps"] == 20
    bad = _mix(["--pool", str(sample_pool), "--target", str(news_target), "--method", "regmix", "--proxy", "tiny_lm",
                "--tiny-lm", "width=3", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "unknown setting(s) width" in bad.output


def test_the_regressors_out_of_fold_predictions_are_kept_and_plotted(news_runs):
    import csv

    run = news_runs[0]
    rows = list(csv.DictReader((run / "cross_validation.csv").read_text().splitlines()))
    runs = pq.read_table(run / "runs.parquet").to_pydict()
    assert [float(r["objective"]) for r in rows] == pytest.approx(runs["target"], rel=1e-9)
    predicted = np.array([float(r["predicted"]) for r in rows])
    cv = yaml.safe_load((run / "mixture.yaml").read_text())["cross_validation"]
    assert spearmanr(predicted, runs["target"])[0] == pytest.approx(cv["spearman"], abs=1e-4)
    page = (run / "report.html").read_text()
    assert 'aria-label="mixture-cv"' in page and 'aria-label="mixture-weights"' in page
