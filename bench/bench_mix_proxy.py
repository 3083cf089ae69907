"""Mixing end to end with n-gram and tiny_lm proxies on CPU (issue 14): does the recommended mixture beat the simple
ones?

On pool-en grouped by ``domain``, for two objectives (an equal blend of the news and wikipedia targets; a blend
weighted toward tech_docs: 0.6 tech_docs, 0.2 news, 0.2 wikipedia), runs ``thresher mix --method regmix`` with the
``*.target.parquet`` sets as targets (--runs proxies of --proxy-tokens each, 2 workers), then trains the same n-gram
LM at a larger budget (--eval-tokens) on the recommended mixture, on mixing laws fitted to the same runs, on Aioli
and Skill-It (online, --online-steps rounds), on DoReMi's (target-free: the smallest worst-group excess loss,
--doremi-steps online steps), each online method with the n-gram and with the tiny_lm proxy, and on proportional,
uniform and temperature (tau = 3) mixtures, --seeds draws each, and measures cross-entropy on the
``*.heldout.parquet`` sets (never seen by the search), blended with the same weights. Prints the time per proxy run
and for the whole search, and per mixture the loss the regressor predicts (at the proxy budget, on the target sets)
and the actual held-out loss (mean and 95% t-interval over seeds).

Then, as a user would, ``thresher evaluate`` (the CLI, timed start to exit) compares regmix's mixture and the best
of the others with the baselines: an order-4 n-gram LM (bigger than the order-3 proxies) at --eval-tokens (less
when a mixture asks a group for more tokens than it holds: evaluate never repeats records) on both held-out sets,
``--heldout-weights`` the objective's blend, verdicts vs ``mixture:uniform`` (stratified).

    python bench/bench_mix_proxy.py [--data ../shared/data] [--runs 24] [--proxy-tokens 1M] [--eval-tokens 3M]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from scipy.stats import t as student_t

from thresher.features.lengths import whitespace_token_counts
from thresher.io.dataset import Dataset
from thresher.lm.ngram import KneserNeyConfig
from thresher.mix.baselines import baseline_weights
from thresher.mix.job import run_mix_doremi, run_mix_online, run_mix_regmix
from thresher.mix.proxy import _draw, ngram_proxy_run
from thresher.mix.regression import BlendedMixingLaws, make_regressor
from thresher.mix.search import search_mixture

OBJECTIVES = {"news+wikipedia (0.5/0.5)": {"news": 0.5, "wikipedia": 0.5},
              "tech_docs-weighted (0.6/0.2/0.2)": {"tech_docs": 0.6, "news": 0.2, "wikipedia": 0.2}}


def _hashes(texts: pa.Array, order: int = 3) -> tuple[np.ndarray, np.ndarray]:
    return KneserNeyConfig(order=order).featurizer().token_hashes(texts)


def _versus(losses: list[float], baseline: list[float]) -> str:
    """The improvement over a baseline (its loss minus this one's: positive is better) with a Welch 95% interval,
    and a verdict: better or worse only when the whole interval is beyond 0."""
    a, b = np.asarray(losses), np.asarray(baseline)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va + vb > 0 else len(a) + len(b) - 2
    delta, half = float(b.mean() - a.mean()), float(student_t.ppf(0.975, df) * np.sqrt(va + vb))
    verdict = "better" if delta - half > 0 else "worse" if delta + half < 0 else "inconclusive"
    return f"{delta:+.4f} [{delta - half:+.4f}, {delta + half:+.4f}] {verdict}"


def _evaluate_cli(args, pool_path: Path, groups: list[str], chosen: dict[str, np.ndarray], blend: dict,
                  tokens: float) -> None:
    """``thresher evaluate`` over the chosen mixtures and the baselines at ``tokens``, timed start to exit, its
    target_loss rows."""
    import csv
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for i, (name, weights) in enumerate(chosen.items()):
            paths[name] = Path(tmp) / f"mixture{i}.yaml"
            paths[name].write_text(yaml.safe_dump({"weights": {g: float(w) for g, w in zip(groups, weights)}}))
        methods = [f"mixture:{p}" for p in paths.values()] + ["mixture:proportional", "mixture:uniform",
                                                              "mixture:temperature=3"]
        heldout = [a for n in blend for a in ("--heldout", str(args.data / "targets" / f"{n}.heldout.parquet"))]
        command = [sys.executable, "-m", "thresher.cli", "evaluate", "--pool", str(pool_path), *heldout,
                   "--heldout-weights", ",".join(f"{n}={w}" for n, w in blend.items()), "--methods", ",".join(methods),
                   "--baseline", "mixture:uniform", "--budgets", f"{int(tokens)} tokens", "--metrics", "lm",
                   "--lm-order", "4", "--seeds", str(args.seeds), "--workers", str(args.workers), "--quiet",
                   "--no-report", "--out", str(Path(tmp) / "ev")]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - started
        label = {f"mixture:{p}": name for name, p in paths.items()}
        rows = [r for r in csv.DictReader((Path(tmp) / "ev" / "results.csv").open()) if r["metric"] == "target_loss"]
    print(f"  thresher evaluate (CLI, start to exit {seconds:.0f} s): order-4 n-gram LM at {int(tokens):,} tokens "
          f"(the most every chosen mixture fills without repeating records), target_loss (blended nats/token), "
          f"{args.seeds} seeds, vs mixture:uniform")
    print("  | mixture | target_loss (95% CI) | improvement over uniform (95% CI) | verdict |")
    print("  |---|---:|---:|---|")
    for r in rows:
        improvement = (f"{float(r['delta']):+.4f} [{float(r['delta_lo']):+.4f}, {float(r['delta_hi']):+.4f}]"
                       if r["delta"] else "")
        print(f"  | {label.get(r['method'], r['method'])} | {float(r['estimate']):.4f} [{float(r['lo']):.4f}, "
              f"{float(r['hi']):.4f}] | {improvement} | {r['verdict']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", type=Path, default=here.parent / "shared" / "data")
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--proxy-tokens", default="1M tokens")
    parser.add_argument("--eval-tokens", type=float, default=3e6)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--doremi-steps", type=int, default=20)
    parser.add_argument("--online-steps", type=int, default=10)
    parser.add_argument("--no-evaluate-cli", dest="evaluate_cli", action="store_false",
                        help="skip the thresher evaluate CLI step")
    args = parser.parse_args()

    pool_path = args.data / "pool-en" / "pool.parquet"
    table = pq.read_table(pool_path, columns=["text", "domain"])
    text = table.column("text").combine_chunks()
    domain = np.array(table.column("domain").to_pylist())
    tokens = whitespace_token_counts(text)
    groups = sorted(set(domain.tolist()))
    members = {g: np.flatnonzero(domain == g) for g in groups}
    pool_tokens = np.array([tokens[members[g]].sum() for g in groups], dtype=float)
    heldout = {name: _hashes(pq.read_table(args.data / "targets" / f"{name}.heldout.parquet",
                                           columns=["text"]).column("text").combine_chunks())
               for name in ("news", "wikipedia", "tech_docs")}
    print(f"pool-en: {len(domain):,} records, {int(pool_tokens.sum()):,} whitespace tokens, {len(groups)} domains; "
          f"runs {args.runs} x {args.proxy_tokens}, evaluation {args.eval_tokens:,.0f} tokens x {args.seeds} seeds")

    doremi = {}  # DoReMi needs no target: one run per proxy serves both objectives
    for proxy in ("ngram", "tiny_lm"):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            run = run_mix_doremi(Dataset([str(pool_path)]), Path(tmp) / "doremi", proxy_tokens=args.proxy_tokens,
                                 steps=args.doremi_steps, workers=args.workers, seed=0, proxy=proxy, report=False)
            seconds = time.perf_counter() - started
            weights = yaml.safe_load((run.path / "mixture.yaml").read_text())["weights"]
        name = "doremi (target-free)" if proxy == "ngram" else "doremi, tiny_lm proxy (target-free)"
        doremi[f"{name[:-len(' (target-free)')]} ({seconds:.0f} s, target-free)"] = weights
        print(f"{name}: {seconds:.1f} s ({args.doremi_steps} steps x 2 online {proxy} proxies); weights "
              + ", ".join(f"{g} {w:.3f}" for g, w in sorted(weights.items(), key=lambda kv: -kv[1]) if w >= 0.01))

    results = {}
    for label, blend in OBJECTIVES.items():
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            run = run_mix_regmix(Dataset([str(pool_path)]),
                                 [Dataset([str(args.data / "targets" / f"{n}.target.parquet")]) for n in blend],
                                 Path(tmp) / "mix", target_weights=list(blend.values()), runs=args.runs,
                                 proxy_tokens=args.proxy_tokens, workers=args.workers, seed=0, report=False)
            total = time.perf_counter() - started
            manifest = json.loads((run.path / "manifest.json").read_text())
            mixture = yaml.safe_load((run.path / "mixture.yaml").read_text())
            runs = pq.read_table(run.path / "runs.parquet").to_pydict()
        X = np.array([runs[f"weight:{g}"] for g in groups]).T
        model = make_regressor("gp").fit(X, np.array(runs["target"]))
        # mixing laws on the very same proxy runs: one law per target set, their blend searched around the prior
        laws = BlendedMixingLaws(list(blend.values())).fit(X, np.column_stack([runs[f"target:{n}"]
                                                                               for n in blend]))
        law_mix = search_mixture(laws, pool_tokens / pool_tokens.sum(), n_samples=100_000, top_k=100, seed=0).weights
        with tempfile.TemporaryDirectory() as tmp:  # the same search with the small transformer as the proxy
            started = time.perf_counter()
            tiny = run_mix_regmix(Dataset([str(pool_path)]),
                                  [Dataset([str(args.data / "targets" / f"{n}.target.parquet")]) for n in blend],
                                  Path(tmp) / "tiny", target_weights=list(blend.values()), runs=args.runs,
                                  proxy_tokens=args.proxy_tokens, workers=args.workers, seed=0, proxy="tiny_lm",
                                  report=False)
            tiny_mixture = yaml.safe_load((tiny.path / "mixture.yaml").read_text())
            tiny_seconds = time.perf_counter() - started
        online = {}
        for method, proxy in (("aioli", "ngram"), ("skillit", "ngram"), ("aioli", "tiny_lm"), ("skillit", "tiny_lm")):
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                found = run_mix_online(Dataset([str(pool_path)]),
                                       [Dataset([str(args.data / "targets" / f"{n}.target.parquet")]) for n in blend],
                                       Path(tmp) / method, method=method, target_weights=list(blend.values()),
                                       proxy_tokens=args.proxy_tokens, steps=args.online_steps, workers=args.workers,
                                       proxy=proxy, report=False)
                name = method if proxy == "ngram" else f"{method}, tiny_lm proxy"
                online[name] = (yaml.safe_load((found.path / "mixture.yaml").read_text())["weights"],
                                time.perf_counter() - started)
        candidates = {"regmix": np.array([mixture["weights"][g] for g in groups]),
                      f"regmix, tiny_lm proxy ({tiny_seconds:.0f} s; CV Spearman "
                      f"{tiny_mixture['cross_validation']['spearman']:.2f})":
                          np.array([tiny_mixture["weights"][g] for g in groups]),
                      "mixing_laws (same runs)": law_mix,
                      **{f"{m} ({s:.0f} s)": np.array([w[g] for g in groups]) for m, (w, s) in online.items()},
                      **{name: np.array([w[g] for g in groups]) for name, w in doremi.items()},
                      "proportional": baseline_weights("proportional", pool_tokens),
                      "uniform": baseline_weights("uniform", pool_tokens),
                      "temperature τ=3": baseline_weights("temperature", pool_tokens, tau=3.0)}
        vocab = len(np.unique(np.concatenate([_hashes(text)[0], *(h for h, _ in heldout.values())]))) + 2
        rows, per_seed = [], {}
        for name, weights in candidates.items():
            losses = per_seed.setdefault(name, [])
            for seed in range(args.seeds):
                drawn = np.concatenate([_draw(members[g], tokens[members[g]], w * args.eval_tokens,
                                              np.random.default_rng([1000 + seed, j]))
                                        for j, (g, w) in enumerate(zip(groups, weights)) if w > 0])
                train = _hashes(text.take(pa.array(drawn)))
                per_target, _ = ngram_proxy_run(*train, [heldout[n] for n in blend], 3, vocab)
                losses.append(float(np.dot(per_target, list(blend.values()))))
            mean, sd = float(np.mean(losses)), float(np.std(losses, ddof=1))
            half = student_t.ppf(0.975, len(losses) - 1) * sd / np.sqrt(len(losses))
            rows.append((name, float(model.predict(weights[None, :])[0]), mean, half))
        seconds = manifest["proxy_run_seconds"]
        results[label] = {"rows": rows, "per_run": float(np.mean(seconds)), "total": total,
                          "cv": mixture["cross_validation"]["spearman"], "weights": mixture["weights"]}
        print(f"\n{label}: search {total:.1f} s on {args.workers} workers ({np.mean(seconds):.2f} s per proxy run, "
              f"{args.runs} runs; stages {manifest['timings']}); CV Spearman {mixture['cross_validation']['spearman']}")
        print("  recommended: " + ", ".join(f"{g} {w:.3f}" for g, w in sorted(mixture["weights"].items(),
                                                                                 key=lambda kv: -kv[1]) if w >= 0.01))
        baselines = ("proportional", "uniform", "temperature τ=3")
        best = min(baselines, key=lambda b: np.mean(per_seed[b]))
        print(f"  | mixture | predicted (proxy, target sets) | held-out loss, {args.seeds} seeds (95% CI) | "
              f"vs uniform (stratified) | vs best baseline ({best}) |")
        print("  |---|---:|---:|---:|---:|")
        for name, predicted, mean, half in rows:
            versus = [_versus(per_seed[name], per_seed[b]) if name not in baselines else "" for b in ("uniform", best)]
            print(f"  | {name} | {predicted:.4f} | {mean:.4f} ± {half:.4f} | {versus[0]} | {versus[1]} |")
        if args.evaluate_cli:
            others = [n for n in candidates if n not in baselines and n != "regmix"]
            chosen = {"regmix": candidates["regmix"], (top := min(others, key=lambda n: np.mean(per_seed[n]))):
                      candidates[top]}
            # thresher evaluate draws each group without repeating records: the budget every chosen mixture fills
            fillable = min(pool_tokens[j] / w for weights in chosen.values() for j, w in enumerate(weights) if w > 0)
            _evaluate_cli(args, pool_path, groups, chosen, blend, min(args.eval_tokens, 0.98 * fillable))


if __name__ == "__main__":
    main()
