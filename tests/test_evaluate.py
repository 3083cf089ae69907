"""thresher evaluate: methods vs random at equal budgets, intervals and verdicts, on the bundled real sample."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import thresher as th
from thresher.cli import main
from thresher.errors import ConfigError
from thresher.evaluate.harness import RESULT_COLUMNS, EvaluateConfig
from thresher.evaluate.methods import Method, parse_methods, stratified_rows
from thresher.evaluate.resampling import MetricDraws, Resampler, beta_draws, compare, item_draws


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- resampling and verdicts -------------------------------------------------------------------------------------

def _item_metric(values: list[np.ndarray], weights: np.ndarray, higher: bool = True) -> MetricDraws:
    draws, points = item_draws(values, weights, lambda s: s[..., 0] / weights.shape[1])
    return MetricDraws(draws, points, higher, "bootstrap-2level")


def test_identical_methods_are_inconclusive_and_shifted_ones_are_not():
    rng = np.random.default_rng(0)
    r = Resampler(n_items=300, n_boot=500, seed=1)
    base = [rng.normal(size=300) for _ in range(5)]
    picks = r.seed_picks(5, stream=1)
    base_picks = r.seed_picks(5, stream=0)
    same = compare(_item_metric(base, r.weights), _item_metric(base, r.weights), picks, base_picks)
    assert same["verdict"] == "inconclusive" and same["delta"] == 0.0
    better = compare(_item_metric([b + 0.5 for b in base], r.weights), _item_metric(base, r.weights), picks,
                     base_picks)
    assert better["verdict"] == "better" and better["delta_lo"] > 0 and better["p_better"] == 1.0
    # lower is better: the same shift is now worse, and delta is still oriented so positive = better
    worse = compare(_item_metric([b + 0.5 for b in base], r.weights, higher=False),
                    _item_metric(base, r.weights, higher=False), picks, base_picks)
    assert worse["verdict"] == "worse" and worse["delta"] == pytest.approx(-0.5, abs=1e-9)
    # a tiny shift inside the noise is not claimed as a win
    tiny = compare(_item_metric([b + 0.01 for b in base], r.weights), _item_metric(base, r.weights), picks,
                   base_picks)
    assert tiny["verdict"] == "inconclusive"


def test_item_pairing_makes_a_consistent_small_gain_visible():
    """Paired over held-out items: a small but uniform gain is detected although the items vary a lot."""
    rng = np.random.default_rng(3)
    r = Resampler(n_items=400, n_boot=500)
    base = rng.normal(0, 5, size=400)
    row = compare(_item_metric([base + 0.05] * 3, r.weights), _item_metric([base] * 3, r.weights),
                  r.seed_picks(3, 1), r.seed_picks(3, 0))
    assert row["verdict"] == "better"


def test_beta_boundary_interval_contains_the_estimate():
    draws, points = beta_draws([50, 50], [50, 50], 1000, seed=0)
    md = MetricDraws(draws, points, True, "beta")
    row = compare(md, None, np.zeros((1000, 2), dtype=int), None)
    assert row["estimate"] == 1.0 and row["hi"] == 1.0 and 0.9 < row["lo"] < 1.0


def test_one_number_per_seed_uses_the_exact_small_sample_interval():
    method = MetricDraws(None, [0.9, 0.91, 0.92, 0.93, 0.94], True, "seeds")
    base = MetricDraws(None, [0.1, 0.11, 0.12, 0.13, 0.14], True, "seeds")
    row = compare(method, base, None, None)
    # five seeds can never exclude zero with an exact sign-flip interval at 95%: honest, not a win
    assert row["interval"] == "sign-flip" and row["verdict"] == "inconclusive" and row["p_better"] == 1.0


def test_resampler_validates():
    with pytest.raises(ConfigError):
        Resampler(n_items=1)
    with pytest.raises(ConfigError):
        Resampler(n_items=10, n_boot=10)


# --- methods ---------------------------------------------------------------------------------------------------

def test_method_specs():
    assert Method.parse("dsir").selector == "gumbel"
    assert Method.parse("classifier").selector == "topk"
    assert Method.parse("classifier:gumbel").selector == "gumbel"
    assert Method.parse("stratified").is_baseline
    assert [m.label for m in parse_methods("dsir")] == ["dsir", "random"]
    for bad in ("nope", "random:topk", "dsir:threshold", "dsir:topk:x", "column:"):
        with pytest.raises(ConfigError):
            Method.parse(bad)
    with pytest.raises(ConfigError, match="twice"):
        parse_methods("dsir,dsir")


def test_stratified_rows_follow_pool_proportions():
    groups = np.array(["a"] * 600 + ["b"] * 300 + ["c"] * 100)
    rows = stratified_rows(groups, 50, seed=0)
    assert len(rows) == len(set(rows.tolist())) == 50
    _, counts = np.unique(groups[rows], return_counts=True)
    assert counts.tolist() == [30, 15, 5]
    assert np.array_equal(rows, stratified_rows(groups, 50, seed=0))
    assert not np.array_equal(np.sort(rows), np.sort(stratified_rows(groups, 50, seed=1)))
    # largest remainder: 7 records over 3:2:1 shares -> 3.5, 2.33, 1.17 -> 4, 2, 1
    _, counts = np.unique(groups[stratified_rows(np.array(["a"] * 3 + ["b"] * 2 + ["c"]), 4, 0)],
                          return_counts=True)
    assert counts.sum() == 4


def test_config_validation():
    for bad in (dict(seeds=0), dict(budgets=[]), dict(metrics="kl,nope"), dict(level=1.5), dict(margin=-1),
                dict(methods="dsir,zzz"), dict(budgets="5 apples")):
        with pytest.raises(ConfigError):
            EvaluateConfig(**bad)


# --- end to end on the bundled sample --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, sample_pool, news_target):
    out = tmp_path_factory.mktemp("ev") / "news"
    result = CliRunner().invoke(main, [
        "evaluate", "--pool", str(sample_pool), "--target", str(news_target), "--methods",
        "dsir,classifier,random,stratified", "--budgets", "2%,10%", "--seeds", "3", "--label-column", "domain",
        "--positive", "news", "--n-boot", "400", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_evaluate_writes_a_tidy_results_table(evaluated):
    out, output = evaluated
    rows = _rows(out / "results.csv")
    assert list(rows[0]) == RESULT_COLUMNS
    metrics = {"kl_to_heldout", "precision", "coverage_distance", "heldout_perplexity"}
    assert {r["metric"] for r in rows} == metrics
    assert len(rows) == 4 * 2 * len(metrics)  # methods x budgets x metrics
    for r in rows:
        est, lo, hi = float(r["estimate"]), float(r["lo"]), float(r["hi"])
        assert lo <= est <= hi, r
        if r["method"] == "random":
            assert r["verdict"] == "baseline" and r["delta"] == ""
        else:
            assert r["baseline"] == "random" and r["verdict"] in ("better", "worse", "inconclusive")
            assert float(r["delta_lo"]) <= float(r["delta"]) <= float(r["delta_hi"])
    assert {r["budget_records"] for r in rows if r["budget"] == "2%"} == {str(round(0.02 * 7450))}
    # the targeted methods beat random on this real pool at both budgets, on every metric
    for r in rows:
        if r["method"] in ("dsir", "classifier"):
            assert r["verdict"] == "better", r
    # stratifying by domain does not make random selection on-target
    assert all(r["verdict"] != "better" for r in rows if r["method"] == "stratified" and r["metric"] == "precision")
    assert "verdicts vs random" in output and "heldout_perplexity" in output


def test_evaluate_records_seeds_selections_and_manifest(evaluated):
    out, _ = evaluated
    per_seed = _rows(out / "per_seed.csv")
    assert {r["seed"] for r in per_seed} == {"0", "1", "2"}
    sel = pq.read_table(out / "selections.parquet").to_pylist()
    by = {}
    for r in sel:
        by.setdefault((r["method"], r["budget"], r["seed"]), []).append(r["id"])
    assert len(by[("random", "2%", 0)]) == 149 == len(by[("dsir", "2%", 1)])
    assert by[("random", "2%", 0)] != by[("random", "2%", 1)]  # seeds change the baseline's draw
    assert by[("classifier", "2%", 0)] == by[("classifier", "2%", 1)]  # top-k is deterministic
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["job"] == "evaluate" and manifest["counts"]["evaluated"] == 7450
    assert manifest["counts"]["selections"] == 4 * 2 * 3
    assert manifest["metrics"]["verdicts"]["dsir"]["better"] == 8
    info = json.loads((out / "evaluation.json").read_text())
    comp = info["selections"]["dsir"]["2%"]["composition"]
    assert max(comp, key=comp.get) == "news"
    # without --heldout, half the target was held out: the two halves are disjoint and cover the target
    fit = pq.read_table(out / "split" / "target_fit.parquet")["id"].to_pylist()
    held = pq.read_table(out / "split" / "target_heldout.parquet")["id"].to_pylist()
    assert not set(fit) & set(held) and len(fit) + len(held) == 150


def test_evaluate_is_deterministic(evaluated, tmp_path, sample_pool, news_target):
    out, _ = evaluated
    again = CliRunner().invoke(main, [
        "evaluate", "--pool", str(sample_pool), "--target", str(news_target), "--methods",
        "dsir,classifier,random,stratified", "--budgets", "2%,10%", "--seeds", "3", "--label-column", "domain",
        "--positive", "news", "--n-boot", "400", "--workers", "1", "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "results.csv").read_bytes() == (out / "results.csv").read_bytes()


def _labelled_split(tmp_path: Path, sample_pool: Path) -> tuple[Path, Path]:
    """Hold out 300 pool records (all domains) as a labelled evaluation set; the rest is the pool."""
    table = pq.read_table(sample_pool)
    rng = np.random.default_rng(0)
    held = np.zeros(table.num_rows, bool)
    held[rng.choice(table.num_rows, 300, replace=False)] = True
    pq.write_table(table.filter(pa.array(~held)), tmp_path / "pool.parquet")
    pq.write_table(table.filter(pa.array(held)), tmp_path / "heldout.parquet")
    return tmp_path / "pool.parquet", tmp_path / "heldout.parquet"


def test_classification_proxy_and_python_proxies(tmp_path, sample_pool):
    pool, heldout = _labelled_split(tmp_path, sample_pool)
    held_words = [set(t.lower().split()) for t in pq.read_table(heldout)["text"].to_pylist()]
    calls = []

    def vocab_proxy(train: pa.Table, held: pa.Table, seed: int) -> dict:
        calls.append((train.num_rows, held.num_rows, seed))
        vocab = set(" ".join(train["text"].to_pylist()).lower().split())
        per_item = [len(w & vocab) / max(len(w), 1) for w in held_words]
        return {"vocab_coverage": per_item, "train_records_error": float(train.num_rows % 7)}

    ev = th.evaluate(pool, heldout=heldout, out=tmp_path / "ev", methods="random,stratified", budgets="10%",
                     seeds=3, metrics="classify", label_column="domain", positive="news", proxy=vocab_proxy,
                     n_boot=300)
    rows = {(r["method"], r["metric"]): r for r in ev.rows}
    acc = rows["random", "proxy_accuracy"]
    assert acc["estimate"] > 0.6  # nine domains: chance is ~0.11
    assert rows["random", "proxy_macro_f1"]["estimate"] > 0.4
    assert rows["stratified", "vocab_coverage"]["interval"] == "bootstrap-2level"
    assert 0 < rows["random", "vocab_coverage"]["estimate"] < 1
    scalar = rows["stratified", "train_records_error"]
    assert scalar["higher_is_better"] is False and scalar["interval"] == "sign-flip"
    assert scalar["verdict"] == "inconclusive"  # 3 seeds of one number each cannot show anything at 95%
    assert len(calls) == 2 * 3 and all(c[1] == 300 for c in calls)
    assert ev.verdicts("proxy_accuracy")[("stratified", "10%", "proxy_accuracy")] in ("better", "worse",
                                                                                       "inconclusive")


def test_proxy_command_runs_per_selection_and_seed(tmp_path, sample_pool, news_target):
    script = tmp_path / "train.py"
    script.write_text(
        "import json, sys, pyarrow.parquet as pq\n"
        "train, held, out, seed = sys.argv[1:5]\n"
        "t = pq.read_table(train)\n"
        "n_news = sum(d == 'news' for d in t['domain'].to_pylist())\n"
        "json.dump({'news_share': n_news / t.num_rows, 'my_loss': 1 - n_news / t.num_rows,\n"
        "           'higher_is_better': {'my_loss': False}}, open(out + '/metrics.json', 'w'))\n")
    out = tmp_path / "ev"
    result = CliRunner().invoke(main, [
        "evaluate", "--pool", str(sample_pool), "--target", str(news_target), "--methods", "dsir", "--budgets",
        "5%", "--seeds", "2", "--metrics", "kl", "--group-field", "domain", "--n-boot", "200",
        "--proxy-command", f"{sys.executable} {script} {{train}} {{heldout}} {{out}} {{seed}}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = {(r["method"], r["metric"]): r for r in _rows(out / "results.csv")}
    assert float(rows["dsir", "news_share"]["estimate"]) > 0.8 > float(rows["random", "news_share"]["estimate"])
    assert rows["dsir", "my_loss"]["higher_is_better"] == "false"
    assert float(rows["dsir", "my_loss"]["delta"]) > 0  # lower loss than random = positive improvement
    assert len(list((out / "proxy").glob("*/metrics.json"))) == 2 * 2

    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
    result = CliRunner().invoke(main, [
        "evaluate", "--pool", str(sample_pool), "--target", str(news_target), "--methods", "random", "--budgets",
        "5%", "--seeds", "2", "--metrics", "kl", "--proxy-command", f"{sys.executable} {bad} {{out}}",
        "--out", str(tmp_path / "ev-bad")])
    assert result.exit_code == 2 and "exit code 3" in result.output and "boom" in result.output


def test_clear_errors(tmp_path, sample_pool, small_pool, news_target):
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", "--pool", str(sample_pool), "--methods", "dsir", "--out",
                                  str(tmp_path / "a")])
    assert result.exit_code == 2 and "held-out" in result.output
    bare = tmp_path / "bare.jsonl"  # a target without the label column: the on-target label cannot be inferred
    bare.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n"
                            for r in map(json.loads, Path(news_target).read_text().splitlines())))
    result = runner.invoke(main, ["evaluate", "--pool", str(sample_pool), "--target", str(bare),
                                  "--label-column", "domain", "--metrics", "precision", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "--positive" in result.output
    result = runner.invoke(main, ["evaluate", "--pool", str(small_pool), "--target", str(news_target),
                                  "--budgets", "90%", "--methods", "dsir", "--metrics", "kl",
                                  "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "eligible" in result.output


def test_run_compare(tmp_path, sample_pool, news_target):
    a = th.select(sample_pool, target=news_target, out=tmp_path / "gumbel", budget="5%")
    b = th.reselect(a, out=tmp_path / "uniform", selector="random")
    ev = th.compare(a, b, out=tmp_path / "cmp", label_column="domain", positive="news", seeds=3,
                   metrics=["kl", "precision"], n_boot=300)
    rows = {(r["method"], r["metric"]): r for r in ev.rows}
    assert rows["gumbel", "precision"]["verdict"] == "better"
    assert rows["uniform", "precision"]["verdict"] != "better"  # a random selection is no better than random
    assert rows["gumbel", "precision"]["budget"] == f"n={len(a.selected_ids())}"
    assert rows["gumbel", "kl_to_heldout"]["n_seeds"] == 1  # a finished selection is one fixed draw
    assert "verdicts vs random" in ev.summary()


def test_evaluate_report_shows_verdicts_and_what_was_selected(evaluated):
    out, _ = evaluated
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="comparison"' in page and 'id="selections"' in page
    section = page[page.index('id="selections"'):]
    section = section[: section.index("</section>")]
    for method in ("dsir", "classifier", "random", "stratified"):
        assert f"<td>{method}</td>" in section  # a lengths row per method
    assert "<td>news</td>" in section and "2%: share of each group" in section
    assert page.count("<svg") >= 4  # a budget curve per metric


def test_help_names_the_real_default_label_model():
    from thresher.label import DEFAULT_LABEL_MODEL

    result = CliRunner().invoke(main, ["label", "--help"])
    assert f"default: {DEFAULT_LABEL_MODEL}" in " ".join(result.output.split())


# --- regressions from review -----------------------------------------------------------------------------------

def test_proxy_lms_share_one_vocabulary_so_junk_cannot_win(sample_pool, news_target):
    """An LM trained on a tiny repetitive selection used to spread unseen-word mass over its own two tokens and
    reach a lower held-out perplexity than a real random sample."""
    import json as _json

    from thresher.evaluate import metrics as M

    pool_text = pq.read_table(sample_pool)["text"].combine_chunks()
    held = pa.array([_json.loads(line)["text"] for line in Path(news_target).read_text().splitlines()][:60])
    vocab = M.common_vocabulary_size(pool_text, held)
    junk = M.EvalData(pool_text=pa.array(["the ."] * 10), pool_counts=None, n_words=None, heldout_text=held,
                      heldout_counts=None, lm_vocab_size=vocab)
    real = M.EvalData(pool_text=pool_text, pool_counts=None, n_words=None, heldout_text=held, heldout_counts=None,
                      lm_vocab_size=vocab)
    ppl = [float(M.perplexity_statistic(v.sum(axis=0, keepdims=True))[0]) for v in (
        M.lm_values(junk, np.arange(10)), M.lm_values(real, np.random.default_rng(0).choice(len(pool_text), 74)))]
    assert ppl[0] > 5 * ppl[1]


def test_precision_draws_are_independent_between_methods():
    a, _ = beta_draws([40, 41], [100, 100], 2000, [0, 1])
    b, _ = beta_draws([40, 41], [100, 100], 2000, [0, 2])
    assert abs(np.corrcoef(a[:, 0], b[:, 0])[0, 1]) < 0.1


def test_review_input_checks(tmp_path, small_pool, news_target):
    runner = CliRunner()
    base = ["evaluate", "--pool", str(small_pool), "--target", str(news_target), "--metrics", "kl", "--seeds", "2",
            "--budgets", "5%", "--n-boot", "200"]
    # the split target keeps its label column: --positive is inferred from the held-out half
    result = runner.invoke(main, base + ["--methods", "random", "--metrics", "precision", "--label-column",
                                         "domain", "--out", str(tmp_path / "split")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "split" / "evaluation.json").read_text())["positive"] == "news"
    for extra, message in (
            (["--label-column", "domain", "--positive", "nwes", "--metrics", "precision"], "nwes"),
            (["--heldout", str(news_target)], "held-out sample is the target"),
            (["--methods", "dsir,dsir:gumbel"], "same method"),
            (["--methods", "dsir,stratified", "--group-field", "nosuch"], "'nosuch' is not in the pool")):
        out = tmp_path / "bad"
        result = runner.invoke(main, base + extra + ["--out", str(out)])
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
        assert not (out / "scoring").exists()  # refused before any scoring
    # a pool without the group column: the default methods leave stratified out and say so
    nodomain = tmp_path / "nodomain.parquet"
    pq.write_table(pq.read_table(small_pool).drop(["domain"]), nodomain)
    result = runner.invoke(main, ["evaluate", "--pool", str(nodomain), "--target", str(news_target), "--metrics",
                                  "kl", "--seeds", "2", "--budgets", "5%", "--n-boot", "200",
                                  "--out", str(tmp_path / "nd")])
    assert result.exit_code == 0, result.output
    assert {r["method"] for r in _rows(tmp_path / "nd" / "results.csv")} == {"dsir", "random"}
    assert "stratified" in json.loads((tmp_path / "nd" / "evaluation.json").read_text())["notes"][0]


def test_token_budgets_report_each_methods_own_size(tmp_path, small_pool, news_target):
    ev = th.evaluate(small_pool, target=news_target, out=tmp_path / "tok", methods="dsir,random",
                     budgets="20k tokens", seeds=2, metrics="kl", n_boot=200, report=False)
    sizes = {r["method"]: r["budget_records"] for r in ev.rows}
    sel = pq.read_table(tmp_path / "tok" / "selections.parquet").to_pylist()
    for method, size in sizes.items():
        counts = [sum(1 for r in sel if r["method"] == method and r["seed"] == s) for s in (0, 1)]
        assert size == round(np.mean(counts))
    assert sizes["dsir"] < sizes["random"]  # targeted picks are longer: fewer fit in 20k tokens
    assert not (tmp_path / "tok" / "report.html").exists()


def test_python_proxy_can_declare_its_direction(tmp_path, small_pool, news_target):
    def proxy(train, held, seed):
        news = np.mean([d == "news" for d in train["domain"].to_pylist()])
        return {"nll": [1.0 - news] * held.num_rows, "higher_is_better": {"nll": False}}

    ev = th.evaluate(small_pool, target=news_target, out=tmp_path / "p", methods="dsir", budgets="5%", seeds=2,
                     metrics="kl", proxy=proxy, n_boot=200, group_field="domain", report=False)
    row = next(r for r in ev.rows if r["method"] == "dsir" and r["metric"] == "nll")
    assert row["higher_is_better"] is False and row["verdict"] == "better" and row["delta"] > 0


def test_report_command_errors_are_one_line(tmp_path, evaluated):
    out, _ = evaluated
    result = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "no" / "such" / "r.html")])
    assert result.exit_code == 2 and "does not exist" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    result = CliRunner().invoke(main, ["report", str(broken)])
    assert result.exit_code == 2 and "not valid JSON" in result.output


def test_compare_runs_however_the_pool_path_was_spelled(tmp_path, small_pool, news_target, monkeypatch):
    import shutil

    shutil.copy(small_pool, tmp_path / "pool.parquet")
    monkeypatch.chdir(tmp_path)
    a = th.select("pool.parquet", target=news_target, out=tmp_path / "a", budget="5%")
    b = th.select(str(tmp_path / "pool.parquet"), target=news_target, out=tmp_path / "b", budget="5%",
                  selector="topk")
    monkeypatch.chdir("/")
    ev = th.compare(a, b, out=tmp_path / "cmp", metrics=["kl"], seeds=2, n_boot=200, report=False)
    assert {r["method"] for r in ev.rows} >= {"a", "b", "random"}


def test_mixtures_are_compared_at_a_token_budget_against_a_chosen_baseline(tmp_path, sample_pool, news_target):
    """thresher evaluate over mixtures: a news-heavy mixture.yaml and the baselines over the pool's groups, drawn
    at one token budget with 5 seeds, each compared with --baseline mixture:proportional by a fresh order-4 n-gram
    LM (bigger than the order-3 proxies thresher mix trains) and KL on the news held-out sample."""
    import yaml

    (tmp_path / "news.yaml").write_text(yaml.safe_dump({"weights": {"news": 0.6, "wikipedia": 0.2, "speeches": 0.2}}))
    methods = f"mixture:{tmp_path / 'news.yaml'},mixture:proportional,mixture:uniform,mixture:temperature=3"
    result = CliRunner().invoke(main, ["evaluate", "--pool", str(sample_pool), "--heldout", str(news_target),
                                       "--methods", methods, "--baseline", "mixture:proportional", "--budgets",
                                       "60000 tokens", "--metrics", "lm,kl", "--lm-order", "4", "--seeds", "5",
                                       "--workers", "1", "--out", str(tmp_path / "ev"), "--no-report"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "ev" / "results.csv").read_text().splitlines()))
    verdict = {(r["method"], r["metric"]): r["verdict"] for r in rows}
    news = f"mixture:{tmp_path / 'news.yaml'}"
    assert verdict[news, "heldout_perplexity"] == "better" and verdict[news, "kl_to_heldout"] == "better"
    assert verdict["mixture:proportional", "heldout_perplexity"] == "baseline"
    assert {r["baseline"] for r in rows if r["method"] != "mixture:proportional"} == {"mixture:proportional"}
    assert "improvement over mixture:proportional" in result.output
    picks = pq.read_table(tmp_path / "ev" / "selections.parquet").to_pandas()
    pool = pq.read_table(sample_pool).to_pandas().set_index("id")
    for _, pick in picks[picks["method"] == news].groupby("seed"):  # each seed's draw keeps the mixture's shares
        chosen = pool.loc[pick["id"]]
        words = chosen["text"].str.split().str.len().groupby(chosen["domain"]).sum()
        assert set(words.index) == {"news", "wikipedia", "speeches"} and 0.55 * 60_000 < words["news"] <= 0.6 * 60_000


def test_mixture_methods_and_baselines_are_checked(sample_pool):
    with pytest.raises(ConfigError, match="mixture.yaml that exists, or one of"):
        Method.parse("mixture:podcasts")
    with pytest.raises(ConfigError, match="baseline 'mixture:uniform' is not one of the methods"):
        EvaluateConfig(methods=["dsir"], baseline="mixture:uniform")
    m = Method.parse("mixture:temperature=2")
    assert m.selector == "mixture" and m.is_baseline and m.mixture == "temperature=2"


def test_mixtures_need_a_token_budget_before_anything_runs():
    with pytest.raises(ConfigError, match="mixtures are compared at a token budget"):
        EvaluateConfig(methods=["mixture:uniform"], budgets=["5%"])


def test_a_blended_target_is_measured_per_group_and_as_a_weighted_loss(tmp_path, sample_pool, news_target):
    """Two held-out files (news, tech_docs) with --heldout-weights: each group gets its own perplexity, and
    target_loss is the weighted mean of the groups' cross-entropies. A news-heavy mixture wins on news and loses
    on tech_docs against a tech-heavy one, so per-group verdicts go opposite ways."""
    import yaml

    tech = Path(news_target).parent / "target_tech_docs.jsonl"
    (tmp_path / "news.yaml").write_text(yaml.safe_dump({"weights": {"news": 0.9, "tech_docs": 0.1}}))
    (tmp_path / "tech.yaml").write_text(yaml.safe_dump({"weights": {"news": 0.1, "tech_docs": 0.9}}))
    news_mix, tech_mix = f"mixture:{tmp_path / 'news.yaml'}", f"mixture:{tmp_path / 'tech.yaml'}"
    result = CliRunner().invoke(main, ["evaluate", "--pool", str(sample_pool), "--heldout", str(news_target),
                                       "--heldout", str(tech), "--heldout-weights", "news=0.25,tech_docs=0.75",
                                       "--methods", f"{news_mix},{tech_mix}", "--baseline", tech_mix,
                                       "--budgets", "40000 tokens", "--metrics", "lm", "--seeds", "3", "--n-boot",
                                       "300", "--workers", "1", "--out", str(tmp_path / "ev"), "--no-report"])
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "ev" / "results.csv")
    verdict = {(r["method"], r["metric"]): r["verdict"] for r in rows}
    assert verdict[news_mix, "heldout_perplexity[news]"] == "better"
    assert verdict[news_mix, "heldout_perplexity[tech_docs]"] == "worse"
    assert verdict[news_mix, "target_loss"] == "worse"  # the blend leans to tech_docs
    assert {r["metric"] for r in rows} == {"heldout_perplexity", "heldout_perplexity[news]",
                                           "heldout_perplexity[tech_docs]", "target_loss"}
    assert rows[0]["target"] == "target_news+target_tech_docs"
    per_seed = _rows(tmp_path / "ev" / "per_seed.csv")
    value = {(r["method"], r["seed"], r["metric"]): float(r["value"]) for r in per_seed}
    for method, seed, metric in value:
        if metric == "target_loss":  # each seed's blend is exactly the weighted mean of its groups' losses
            blend = 0.25 * np.log(value[method, seed, "heldout_perplexity[news]"]) + \
                0.75 * np.log(value[method, seed, "heldout_perplexity[tech_docs]"])
            assert value[method, seed, metric] == pytest.approx(blend, rel=1e-12)


def test_blend_weights_must_name_groups_the_heldout_sample_has(tmp_path, sample_pool, news_target):
    with pytest.raises(ConfigError, match="'tech_docs'.*fewer than 2 items.*news \\(150\\)"):
        th.evaluate(sample_pool, heldout=news_target, out=tmp_path / "ev", methods=["mixture:uniform"],
                    budgets=["20000 tokens"], metrics=["lm"], heldout_weights="news=1,tech_docs=1", report=False)
    with pytest.raises(ConfigError, match="expected GROUP=WEIGHT"):
        EvaluateConfig(methods=["random"], heldout_weights="news:1")
    with pytest.raises(ConfigError, match="positive sum"):
        EvaluateConfig(methods=["random"], heldout_weights={"news": 0})


def test_a_stratified_bootstrap_keeps_each_groups_size_in_every_replicate():
    strata = np.array([0] * 7 + [1] * 30 + [2] * 3)
    w = Resampler(len(strata), n_boot=200, seed=3, strata=np.random.default_rng(0).permutation(strata)).weights
    codes = np.random.default_rng(0).permutation(strata)
    for c, size in ((0, 7), (1, 30), (2, 3)):
        assert (w[:, codes == c].sum(axis=1) == size).all()
    plain = Resampler(len(strata), n_boot=200, seed=3).weights
    assert not (plain[:, codes == 2].sum(axis=1) == 3).all()
