#!/usr/bin/env python
"""thresher's Kneser-Ney n-gram LM vs KenLM (lmplz + query) and NLTK's KneserNeyInterpolated, and the scorers
built on it (perplexity, CoLoR-Filter) on ../shared/data/pool-en.

1. Throughput, one process, texts in memory: fit on the whole pool (order 3, batches of 4,096 records), score the
   whole pool with that model, fit on the news target and score the pool with the small model.
2. KenLM's lmplz (estimation) and its query module: ``lmplz -o 3 --discount_fallback`` and thresher's
   ``KneserNeyLM(order=3)`` on the same tokens (the three target files plus 10,000 pool records; lmplz reads
   thresher's tokens space-joined, one record per line), then both score the held-out target files; agreement per
   prediction (KenLM's log10 in nats). Speed: lmplz wall time (its text parsing and disk sorting included) vs
   ``KneserNeyLM.fit``; ``kenlm.Model.full_scores`` per record vs ``KneserNeyLM.token_log_probs`` on the batch
   (tokenising included). Runs only where an ``lmplz`` binary is found (``--lmplz PATH`` or on PATH): the PyPI
   ``kenlm`` wheel builds the query module only. To build lmplz from the same sdist::

       apt-get install libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev
       pip download kenlm --no-deps --no-binary kenlm --no-build-isolation -d /tmp/k
       cd /tmp/k && tar xzf kenlm-*.tar.gz
       mkdir kenlm-*/build && cd kenlm-*/build && cmake .. -DCMAKE_BUILD_TYPE=Release && make -j2 lmplz

3. NLTK 3.x ``KneserNeyInterpolated(3)`` (discount 0.1; thresher with ``discount=0.1`` beside it) on 100
   news-target records. NLTK recomputes continuation counts by scanning all n-grams for every query, so it scores
   300 tokens only, each with a full two-token context. Its model is interpolated Kneser-Ney with one discount and
   n-1 boundary pads, and its lowest order is the continuation unigram with no uniform part, so unknown words get
   probability 0 (-inf): agreement is measured on the finite scores. Normalisation (the sum over the vocabulary,
   </s> and <unk> of p(w | h)) is checked for both on a small corpus.
4. Selection quality on pool-en, 5% budget (4,684 records, top-k): CoLoR-Filter (prior on a random 10% pool
   sample, conditional on sample + target) and the perplexity scorer (LM on the target), target-domain precision
   and recall, over all records and over records of >= 64 tokens (DSIR's own floor is 100).

    pip install -e ".[bench]"
    python bench/bench_ngram_lm.py --lmplz /path/to/lmplz    # ~5 minutes

Writes bench/results/ngram_lm.md and bench/results/ngram_lm.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import TreeRssSampler, tree_rss_bytes  # noqa: E402

from thresher.lm import KneserNeyConfig, KneserNeyLM  # noqa: E402
from thresher.scorers.color_filter import ColorFilterConfig, ColorFilterScorer  # noqa: E402
from thresher.scorers.perplexity import NgramPerplexityConfig, NgramPerplexityScorer  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
TARGETS = ("news", "wikipedia", "tech_docs")
LN10 = math.log(10)


def batches(text: pa.ChunkedArray | pa.Array, size: int = 4096) -> list[pa.Array]:
    text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    return [text.slice(i, size) for i in range(0, len(text), size)]


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def throughput(pool: pa.Table, data: Path) -> dict:
    text = batches(pool["text"])
    base = tree_rss_bytes(os.getpid())
    sampler = TreeRssSampler()
    sampler.start()
    lm, fit_s = timed(lambda: KneserNeyLM(KneserNeyConfig(order=3)).fit(text))
    fit_peak = sampler.stop()
    n_pred = 0

    def score_all(model):
        nonlocal n_pred
        n_pred = 0
        for b in text:
            n_pred += int(model.log_prob(b)[1].sum())

    _, score_s = timed(lambda: score_all(lm))
    target = pq.read_table(data / "targets" / "news.target.parquet", columns=["text"])["text"]
    small, small_fit_s = timed(lambda: KneserNeyLM(KneserNeyConfig(order=3)).fit(batches(target)))
    _, small_score_s = timed(lambda: score_all(small))
    return {"records": pool.num_rows, "tokens": lm.n_tokens_, "predictions": n_pred, "fit_s": fit_s,
            "fit_tokens_per_s": lm.n_tokens_ / fit_s, "score_s": score_s, "score_tokens_per_s": lm.n_tokens_ / score_s,
            "n_ngrams": lm.n_ngrams(), "model_mb": lm.nbytes() / 1e6, "fit_peak_rss_mb": fit_peak / 1e6,
            "rss_before_mb": base / 1e6, "small_fit_s": small_fit_s, "small_tokens": small.n_tokens_,
            "small_score_s": small_score_s, "small_score_tokens_per_s": lm.n_tokens_ / small_score_s}


def kenlm_compare(lmplz: str, pool: pa.Table, data: Path) -> dict:
    import kenlm

    rng = np.random.default_rng(0)
    train_parts = [pq.read_table(data / "targets" / f"{t}.target.parquet", columns=["text"])["text"] for t in TARGETS]
    sample = np.sort(rng.choice(pool.num_rows, 10_000, replace=False))
    train_parts.append(pool["text"].take(pa.array(sample)))
    train = pa.chunked_array([c for p in train_parts for c in p.chunks]).combine_chunks()
    held = pa.chunked_array([c for t in TARGETS for c in pq.read_table(
        data / "targets" / f"{t}.heldout.parquet", columns=["text"])["text"].chunks]).combine_chunks()
    config = KneserNeyConfig(order=3)
    fz = KneserNeyConfig(lowercase=False).featurizer()

    def tokens(text: pa.Array) -> list[list[str]]:
        # Arrow's lower-casing, as token_hashes does it: Python's str.lower differs on a few characters (e.g. "İ"
        # becomes "i" + U+0307, a final capital sigma "ς"), and KenLM must see the tokens thresher hashes
        return fz.tokens(pc.utf8_lower(text).to_pylist())

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "train.txt"
        corpus.write_text("".join(" ".join(t) + "\n" for t in tokens(train)))
        arpa = Path(tmp) / "model.arpa"
        t0 = time.perf_counter()
        proc = subprocess.run([lmplz, "-o", "3", "--discount_fallback", "-S", "20%", "-T", tmp, "--text",
                               str(corpus), "--arpa", str(arpa)], capture_output=True, text=True)
        lmplz_s = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"error": proc.stderr[-2000:]}
        ken = kenlm.Model(str(arpa))
    ours, fit_s = timed(lambda: KneserNeyLM(config).fit(batches(train)))
    held_tokens = tokens(held)
    lines = [" ".join(t) for t in held_tokens]
    ken_lp, ken_s = timed(lambda: [np.array([s[0] for s in ken.full_scores(line, bos=True, eos=True)]) * LN10
                                   for line in lines])
    (our_lp, offsets), our_s = timed(lambda: ours.token_log_probs(held))
    ken_flat = np.concatenate(ken_lp)
    diff = np.abs(our_lp - ken_flat)
    known = np.array([w in ken for t in held_tokens for w in [*t, "</s>"]])
    ken_doc = np.add.reduceat(ken_flat, offsets[:-1]) / np.diff(offsets)
    our_doc = np.add.reduceat(our_lp, offsets[:-1]) / np.diff(offsets)
    return {"train_records": len(train), "train_tokens": ours.n_tokens_, "held_records": len(held),
            "held_predictions": len(our_lp), "lmplz_s": lmplz_s, "fit_s": fit_s, "kenlm_query_s": ken_s,
            "score_s": our_s, "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "share_within_1e-4": float((diff < 1e-4).mean()),
            "max_abs_diff_known_words": float(diff[known].max()),
            "max_abs_diff_unknown_words": float(diff[~known].max()),
            "doc_pearson": float(np.corrcoef(ken_doc, our_doc)[0, 1]),
            "ppl_kenlm": float(np.exp(-ken_flat.mean())), "ppl_thresher": float(np.exp(-our_lp.mean()))}


def nltk_compare(data: Path) -> dict:
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    config = KneserNeyConfig(order=3, discount=0.1)
    fz = config.featurizer()
    train = pq.read_table(data / "targets" / "news.target.parquet", columns=["text"])["text"].combine_chunks()[:100]
    held = pq.read_table(data / "targets" / "news.heldout.parquet", columns=["text"])["text"].to_pylist()
    toks = fz.tokens(train.to_pylist())

    def fit_nltk():
        pipeline, vocab = padded_everygram_pipeline(3, toks)
        m = KneserNeyInterpolated(3)
        m.fit(pipeline, vocab)
        return m

    nl, nltk_fit_s = timed(fit_nltk)
    ours, fit_s = timed(lambda: KneserNeyLM(config).fit([train]))
    # 300 predicted tokens with a full real-token context (from the third token on), both models
    test_tokens, contexts = [], []
    for t in fz.tokens(held):
        for i in range(2, len(t)):
            test_tokens.append(t[i])
            contexts.append(tuple(t[i - 2:i]))
            if len(test_tokens) == 300:
                break
        if len(test_tokens) == 300:
            break
    nltk_lp, nltk_s = timed(lambda: np.array([nl.logscore(w, c) for w, c in zip(test_tokens, contexts)]) * math.log(2))
    texts = pa.array([" ".join([*c, w]) for w, c in zip(test_tokens, contexts)])
    (lp, off), our_s = timed(lambda: ours.token_log_probs(texts))
    ours_lp = lp[off[:-1] + 2]
    finite = np.isfinite(nltk_lp)
    # normalisation on a small corpus, for a few contexts
    small = [" ".join(t) for t in toks[:5]]
    small_toks = fz.tokens(small)
    vocab = sorted({w for t in small_toks for w in t})
    pipeline, v = padded_everygram_pipeline(3, small_toks)
    nl_small = KneserNeyInterpolated(3)
    nl_small.fit(pipeline, v)
    ours_small = KneserNeyLM(config).fit([pa.array(small)])
    sums = []
    for c in [tuple(small_toks[0][:2]), tuple(small_toks[1][3:5]), ("of", "the"), ("zzz", "qqq")]:
        s_nltk = sum(nl_small.score(w, c) for w in [*vocab, "</s>", "<UNK>"])
        lp_s, off_s = ours_small.token_log_probs(pa.array([" ".join([*c, w]) for w in vocab] + [" ".join(c),
                                                          " ".join([*c, "zzzunknown"])]))
        sums.append({"context": " ".join(c), "nltk": s_nltk, "thresher": float(np.exp(lp_s[off_s[:-1] + 2]).sum())})
    return {"train_records": 100, "train_tokens": ours.n_tokens_, "nltk_fit_s": nltk_fit_s, "fit_s": fit_s,
            "n_scored": len(test_tokens), "nltk_score_s": nltk_s, "score_s": our_s,
            "pearson_token_logp": float(np.corrcoef(nltk_lp[finite], ours_lp[finite])[0, 1]),
            "mean_abs_diff": float(np.abs(nltk_lp[finite] - ours_lp[finite]).mean()),
            "nltk_infinite": int((~finite).sum()), "normalisation": sums}


def selection(pool: pa.Table, data: Path, k: int) -> list[dict]:
    domain = np.array(pool["domain"].to_pylist())
    text = batches(pool["text"])
    n_tokens = np.concatenate([np.diff(KneserNeyConfig().featurizer().token_hashes(b)[1]) for b in text])
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(pool.num_rows, pool.num_rows // 10, replace=False))
    sample_text = batches(pool["text"].take(pa.array(sample)))
    rows = []
    for target in TARGETS:
        ttext = pq.read_table(data / "targets" / f"{target}.target.parquet", columns=["text"])["text"]
        fits = {"color_filter": (ColorFilterScorer(ColorFilterConfig()).fit, sample_text, [ttext]),
                "perplexity": (NgramPerplexityScorer(NgramPerplexityConfig()).fit, [ttext])}
        for name, (fit, *args) in fits.items():
            scorer, fit_s = timed(fit, *args)
            col = "color_score" if name == "color_filter" else "ngram_logp"
            scores, score_s = timed(lambda s=scorer, c=col: np.concatenate([s.score(b)[c] for b in text]))
            row = {"target": target, "scorer": name, "fit_s": fit_s, "score_s": score_s,
                   "max_precision": min(1.0, float((domain == target).sum()) / k)}
            for floor in (0, 64):
                s = np.where(n_tokens >= floor, np.nan_to_num(scores, nan=-np.inf), -np.inf)
                top = np.argsort(-s, kind="stable")[:k]
                hit = domain[top] == target
                row[f"precision_{floor}"] = float(hit.mean())
                row[f"recall_{floor}"] = float(hit.sum() / (domain == target).sum())
            rows.append(row)
    return rows


def markdown(res: dict) -> str:
    t = res["throughput"]
    out = [f"# Kneser-Ney n-gram LM ({res['machine']}, one process)", "",
           f"Load average (1 min) at start {res['load'][0]:.1f}, at end {res['load'][1]:.1f}: on a shared machine, "
           "every timing here is slower than on an idle one, for both tools in each comparison alike.", "",
           f"Pool: {t['records']:,} records, {t['tokens']:,} tokens (wordpunct, lower-cased).", "",
           "| step | seconds | tokens/s |", "|---|---:|---:|",
           f"| fit, order 3, whole pool | {t['fit_s']:.1f} | {t['fit_tokens_per_s']:,.0f} |",
           f"| score whole pool, pool model ({t['model_mb']:.0f} MB, n-grams {t['n_ngrams']}) | {t['score_s']:.1f} | "
           f"{t['score_tokens_per_s']:,.0f} |",
           f"| fit, news target ({t['small_tokens']:,} tokens) | {t['small_fit_s']:.2f} | "
           f"{t['small_tokens'] / t['small_fit_s']:,.0f} |",
           f"| score whole pool, news-target model | {t['small_score_s']:.1f} | {t['small_score_tokens_per_s']:,.0f} |",
           "", f"Peak RSS while fitting the whole pool: {t['fit_peak_rss_mb']:,.0f} MB "
           f"(before fitting: {t['rss_before_mb']:,.0f} MB, the pool's texts in memory)."]
    k = res.get("kenlm")
    out += ["", "## vs KenLM (lmplz -o 3, query via the kenlm module)", ""]
    if not k:
        out.append("Not run: no lmplz binary found (pass --lmplz).")
    elif "error" in k:
        out.append(f"lmplz failed: `{k['error'][-300:]}`")
    else:
        out += [f"Trained on {k['train_records']:,} records ({k['train_tokens']:,} tokens), scored "
                f"{k['held_records']:,} held-out records ({k['held_predictions']:,} predictions).", "",
                "| | KenLM | thresher | ratio |", "|---|---:|---:|---:|",
                f"| fit s | {k['lmplz_s']:.2f} | {k['fit_s']:.2f} | {k['lmplz_s'] / k['fit_s']:.1f}x |",
                f"| score s | {k['kenlm_query_s']:.2f} | {k['score_s']:.2f} | "
                f"{k['kenlm_query_s'] / k['score_s']:.1f}x |",
                f"| perplexity of held-out | {k['ppl_kenlm']:.2f} | {k['ppl_thresher']:.2f} | |", "",
                f"Per-token |ln p difference|: max {k['max_abs_diff']:.2e}, mean {k['mean_abs_diff']:.2e}, "
                f"{k['share_within_1e-4']:.1%} within 1e-4; per-record mean log-prob Pearson r "
                f"{k['doc_pearson']:.6f}. (ARPA files print 7 significant digits.)"]
    n = res["nltk"]
    out += ["", "## vs NLTK KneserNeyInterpolated (order 3)", "",
            f"Trained on {n['train_records']} news-target records ({n['train_tokens']:,} tokens); "
            f"{n['n_scored']} tokens scored.", "",
            "| | NLTK | thresher | ratio |", "|---|---:|---:|---:|",
            f"| fit s | {n['nltk_fit_s']:.2f} | {n['fit_s']:.3f} | {n['nltk_fit_s'] / n['fit_s']:,.0f}x |",
            f"| score s ({n['n_scored']} tokens) | {n['nltk_score_s']:.2f} | {n['score_s']:.4f} | "
            f"{n['nltk_score_s'] / n['score_s']:,.0f}x |", "",
            f"Per-token log-prob Pearson r {n['pearson_token_logp']:.3f}, mean |difference| "
            f"{n['mean_abs_diff']:.2e} nats on the {n['n_scored'] - n['nltk_infinite']} tokens NLTK gives a finite "
            f"score ({n['nltk_infinite']} unknown words get -inf from NLTK).", "",
            "Sum over vocabulary + </s> + <unk> of p(w | context), small corpus:", "",
            "| context | NLTK | thresher |", "|---|---:|---:|"]
    out += [f"| {s['context']} | {s['nltk']:.4f} | {s['thresher']:.6f} |" for s in n["normalisation"]]
    out += ["", f"## Selection quality on pool-en, top {res['k']:,} (5%)", "",
            "| target | scorer | precision (max) | recall | precision (>= 64 tokens) | recall (>= 64 tokens) | fit s | "
            "score s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    out += [f"| {r['target']} | {r['scorer']} | {r['precision_0']:.3f} ({r['max_precision']:.3f}) | "
            f"{r['recall_0']:.3f} | {r['precision_64']:.3f} | {r['recall_64']:.3f} | {r['fit_s']:.1f} | "
            f"{r['score_s']:.1f} |"
            for r in res["selection"]]
    out += ["", "(max): the precision a perfect scorer gets, the domain's records / budget. CoLoR-Filter's pool sample "
            "(10%) is part of the scored pool, as in a real run. For reference, "
            "DSIR's precision at the same budget (gumbel sampling, its 100-token floor) is in bench/results/dsir.md."]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--lmplz", default=shutil.which("lmplz"))
    ap.add_argument("--k", type=int, default=4684)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ngram_lm.json")
    args = ap.parse_args()
    pool = pq.read_table(args.data / "pool-en" / "pool.parquet", columns=["text", "domain"])
    res = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "k": args.k,
           "load": [os.getloadavg()[0]]}
    print("throughput ...", flush=True)
    res["throughput"] = throughput(pool, args.data)
    if args.lmplz:
        print("kenlm ...", flush=True)
        res["kenlm"] = kenlm_compare(args.lmplz, pool, args.data)
    print("nltk ...", flush=True)
    res["nltk"] = nltk_compare(args.data)
    print("selection ...", flush=True)
    res["selection"] = selection(pool, args.data, args.k)
    res["load"].append(os.getloadavg()[0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    md = markdown(res)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
