#!/usr/bin/env python
"""Near-duplicate detection: thresher's MinHash LSH vs datasketch and datatrove on ../shared/data/dedup, same run.

Data: ``docs.parquet`` (22,000 docs: 20,000 real, 2,000 planted near-duplicates), ``pairs.parquet`` (the planted
(dup_id, orig_id) pairs with edit kind, rate and exact 5-gram Jaccard) and ``natural_pairs.parquet`` (385 pairs of
real docs that are near-duplicates already). See ../shared/data/README.md, section "dedup/".

Same settings for every tool: word 5-gram shingles, words = ``re.findall(r"\\w+", text.lower())`` (the ground
truth's definition), ``num_perm`` permutations, the (bands, rows) that ``thresher.dedup.optimal_bands`` picks for
``--threshold`` (datasketch's own optimiser picks the same), keep the first record of each cluster.

* thresher: ``near_duplicates`` on the Parquet file's record batches (read twice: candidates, then the exact
  Jaccard verification of candidate pairs); also with ``verify=False``, the same algorithm as the others.
* datasketch: per doc, the same shingles as UTF-8 bytes -> ``MinHash(num_perm, seed=1).update_batch``
  (affine32 scheme, sha1 hash per shingle) -> ``MinHashLSH(params=(bands, rows))``: query, then insert; every
  returned candidate is united with the doc (union-find); no verification (datasketch has none).
* datatrove: ``MinhashDedupSignature`` -> ``MinhashDedupBuckets`` -> ``MinhashDedupCluster`` ->
  ``MinhashDedupFilter`` (+ ``JsonlWriter`` of the kept docs) on the same Parquet file with
  ``LocalPipelineExecutor(workers=1)``; ``MinhashConfig(n_grams=5, num_buckets=bands, hashes_per_bucket=rows)``,
  32-bit xxhash, text normalisation = lower-case + punctuation to spaces + whitespace (numbers and diacritics kept,
  to stay close to ``\\w+``); words come from datatrove's spaCy tokenizer. No verification.

Scoring, identical for every tool, from its cluster label per doc and its dropped set:

* ground truth: a graph whose edges are the planted pairs and the natural pairs; a ground-truth group is a
  connected component.
* pair recall: a planted pair is found if both docs end in the same predicted cluster (overall, per edit kind and
  rate, per 5-gram Jaccard band, and over pairs with Jaccard >= threshold, the ones a threshold of that value is
  asked to find). Natural-pair recall likewise.
* dropped precision: a dropped doc is correct if its predicted cluster holds another doc of its ground-truth
  group (it was dropped for a real duplicate); precision = correct / dropped. Dropped recall = correct / the
  number a perfect detector drops (sum over ground-truth groups of size - 1).

Throughput is end to end (Parquet file in, keep/drop decision per doc out; datatrove also writes the kept docs,
its stage 4, and is shown with and without it), one process, Parquet read without threads. The machine is shared,
so CPU time (``time.process_time``) is the per-core figure and ratios are taken between tools of the same run;
wall time is shown too. datatrove's executor runs every task in this process when ``workers=1`` (its
``multiprocess`` manager process is not counted).

One LSH run is a random sample (a pair near the threshold is a candidate with probability 1 - (1 - J^r)^b), so
thresher and datasketch run with ``--seeds`` seeds at every threshold (``--threshold`` plus ``--sweep``;
datasketch computes its MinHashes once per seed and re-runs only LSH per threshold, its time being both) and are
compared on means, with the expected spread from those probabilities: "equal" means within two standard
deviations. datatrove runs once, at ``--threshold``. The last table lists, for each datasketch threshold, the
highest verified-thresher threshold that matches or beats it on both recall and precision.

Reproduce (about 5 minutes on 2 cores, 10 when they are busy; mostly datatrove and datasketch, thresher takes seconds):

    pip install -e . && pip install datasketch datatrove "xxhash<4" spacy
    python bench/bench_dedup.py                          # -> bench/results/dedup.{json,md}
    python bench/bench_dedup.py --limit 4000 --seeds 1 --skip datatrove --out /tmp/dedup.json   # quick look
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import re
import shutil
import struct
import sys
import tempfile
import time
from collections import defaultdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.dedup import MinHashConfig, connected_components, near_duplicates, optimal_bands

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "dedup"
WORD_RE = re.compile(r"\w+")
TOOL_ORDER = ["thresher", "thresher (verify=False)", "datasketch"]
JACCARD_BANDS = [(0.0, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.01)]


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


class Clock:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall0, time.process_time() - self.cpu0


# ----------------------------------------------------------------------------------------------------- tools


def run_thresher(path: Path, cfg: MinHashConfig) -> dict:
    """thresher end to end: Parquet batches in, cluster and keep per doc out."""
    pf = pq.ParquetFile(path)
    with Clock() as clock:
        result = near_duplicates(lambda: pf.iter_batches(batch_size=4096, columns=["id", "text"], use_threads=False),
                                 cfg)
    return {"labels": result.cluster, "dropped": ~result.keep, "wall_s": clock.wall, "cpu_s": clock.cpu,
            "stats": result.stats}


def _shingles(text: str, n: int) -> set[bytes]:
    words = WORD_RE.findall(text.lower())
    if 0 < len(words) < n:
        return {" ".join(words).encode()}
    return {" ".join(words[i:i + n]).encode() for i in range(len(words) - n + 1)}


def datasketch_minhashes(path: Path, num_perm: int, ngram: int, seed: int = 1) -> tuple[list, Clock]:
    """datasketch's half that does not depend on the threshold: read, shingle, one MinHash per doc."""
    from datasketch import MinHash

    with Clock() as clock:
        texts = pq.read_table(path, columns=["text"], use_threads=False).column("text").to_pylist()
        minhashes = []
        for text in texts:
            sh = _shingles(text, ngram)
            m = None
            if sh:
                m = MinHash(num_perm=num_perm, seed=seed)
                m.update_batch(sh)
            minhashes.append(m)
    return minhashes, clock


def datasketch_lsh(minhashes: list, threshold: float, num_perm: int, bands: int, rows: int) -> tuple[dict, Clock]:
    """datasketch's LSH half: per doc query then insert, union every candidate, keep the first of each cluster."""
    from datasketch import MinHashLSH

    with Clock() as clock:
        n = len(minhashes)
        parent = list(range(n))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=(bands, rows))
        candidates = 0
        for i, m in enumerate(minhashes):
            if m is None:
                continue
            for j in lsh.query(m):
                candidates += 1
                ra, rb = find(i), find(j)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
            lsh.insert(i, m, check_duplication=False)
        labels = np.array([find(i) for i in range(n)], dtype=np.int64)
    return {"labels": labels, "dropped": labels != np.arange(n), "stats": {"candidate_pairs": candidates}}, clock


def run_datasketch(minhashes: list, minhash_clock: Clock, threshold: float, num_perm: int, bands: int,
                   rows: int) -> dict:
    """datasketch end to end (MinHashes, computed once per run, plus LSH for this threshold)."""
    out, clock = datasketch_lsh(minhashes, threshold, num_perm, bands, rows)
    out["stats"] |= {"minhash_cpu_s": minhash_clock.cpu, "lsh_cpu_s": clock.cpu}
    return {**out, "wall_s": minhash_clock.wall + clock.wall, "cpu_s": minhash_clock.cpu + clock.cpu}


def run_datatrove(path: Path, ngram: int, bands: int, rows: int, work: Path) -> dict:
    """datatrove's four MinHash stages on the Parquet file, one process; clusters read from stage 3's output."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.logging import logger
    from datatrove.utils.text import TextNormConfig

    logger.remove()  # its per-task progress logs would drown the table
    cfg = MinhashConfig(n_grams=ngram, num_buckets=bands, hashes_per_bucket=rows, seed=1,
                        norm_config=TextNormConfig(norm_numbers=False, norm_unicode_diacritics=False),
                        hash_config=HashConfig(precision=32, hash_fc="xxhash"))

    def reader() -> ParquetReader:
        return ParquetReader(str(path.parent), glob_pattern=path.name, text_key="text", id_key="id")

    def execute(pipeline: list, tasks: int, name: str) -> None:
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(work / "logs" / name),
                              skip_completed=False).run()

    sink = io.StringIO()
    times = {}
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        with Clock() as c1:
            execute([reader(), MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)], 1, "sigs")
        with Clock() as c2:
            execute([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"),
                                         config=cfg)], cfg.num_buckets, "buckets")
        with Clock() as c3:
            execute([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"),
                                         config=cfg, save_cluster_id=True)], 1, "clusters")
        with Clock() as c4:
            execute([reader(), MinhashDedupFilter(input_folder=str(work / "remove")),
                     JsonlWriter(str(work / "out"))], 1, "filter")
    for name, c in zip(("signatures", "buckets", "clusters", "filter_and_write"), (c1, c2, c3, c4)):
        times[name] = {"wall_s": c.wall, "cpu_s": c.cpu}
    n = pq.ParquetFile(path).metadata.num_rows
    labels = np.arange(n, dtype=np.int64)
    clusters_file = work / "remove" / "000000.clusters"
    if clusters_file.exists():
        raw = np.frombuffer(clusters_file.read_bytes(), dtype="<u4").reshape(-1, 2).astype(np.int64)
        first = {}
        for doc, cid in raw:  # docs come sorted, so the first doc seen in a cluster is its smallest
            first.setdefault(cid, doc)
        labels[raw[:, 0]] = [first[c] for c in raw[:, 1]]
    dropped = np.zeros(n, dtype=bool)
    remove_file = work / "remove" / "000000.remove"
    if remove_file.exists():
        dropped[np.frombuffer(remove_file.read_bytes(), dtype="<u4").astype(np.int64)] = True
    n_dups = sum(f.stat().st_size // struct.calcsize("<4I") for f in (work / "buckets").glob("*.dups"))
    decide = [times[k] for k in ("signatures", "buckets", "clusters")]
    return {"labels": labels, "dropped": dropped,
            "wall_s": sum(t["wall_s"] for t in decide), "cpu_s": sum(t["cpu_s"] for t in decide),
            "wall_s_with_filter": sum(t["wall_s"] for t in times.values()),
            "cpu_s_with_filter": sum(t["cpu_s"] for t in times.values()),
            "stats": {"candidate_pairs": n_dups, "stages": times}}


# --------------------------------------------------------------------------------------------------- scoring


def load_truth(data: Path, ids: list[str]) -> dict:
    """Planted and natural pairs as doc indices (pairs with a doc outside ``ids`` are left out)."""
    index = {x: i for i, x in enumerate(ids)}
    planted = pq.read_table(data / "pairs.parquet").to_pylist()
    planted = [dict(p, a=index[p["dup_id"]], b=index[p["orig_id"]]) for p in planted
               if p["dup_id"] in index and p["orig_id"] in index]
    natural = [(index[p["id_a"]], index[p["id_b"]]) for p in pq.read_table(data / "natural_pairs.parquet").to_pylist()
               if p["id_a"] in index and p["id_b"] in index]
    a = np.array([p["a"] for p in planted] + [x for x, _ in natural], dtype=np.int64)
    b = np.array([p["b"] for p in planted] + [y for _, y in natural], dtype=np.int64)
    group = connected_components(len(ids), a, b)
    sizes = np.bincount(group, minlength=len(ids))
    return {"planted": planted, "natural": natural, "group": group, "ideal_dropped": int((sizes[sizes > 1] - 1).sum())}


def score(labels: np.ndarray, dropped: np.ndarray, truth: dict, threshold: float) -> dict:
    """Pair recall (overall, by edit, by Jaccard band), natural-pair recall, dropped precision and recall."""
    planted = truth["planted"]
    found = np.array([labels[p["a"]] == labels[p["b"]] for p in planted], dtype=bool)
    jac = np.array([p["jaccard_5gram"] for p in planted])
    by_edit: dict[str, list[bool]] = defaultdict(list)
    for p, f in zip(planted, found):
        key = p["edit_kind"] if p["edit_rate"] is None else f"{p['edit_kind']}@{p['edit_rate']:g}"
        by_edit[key].append(bool(f))
    by_band = {}
    for lo, hi in JACCARD_BANDS:
        sel = (jac >= lo) & (jac < hi)
        by_band[f"[{lo:.1f}, {min(hi, 1.0):.1f}{']' if hi > 1 else ')'}"] = (
            {"pairs": int(sel.sum()), "recall": float(found[sel].mean()) if sel.any() else None})
    natural = np.array([labels[a] == labels[b] for a, b in truth["natural"]], dtype=bool)
    # A dropped doc is correct if its predicted cluster holds another doc of its ground-truth group.
    group = truth["group"]
    key = labels.astype(np.int64) * (len(labels) + 1) + group
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    shares = counts[inverse.ravel()] > 1
    n_dropped = int(dropped.sum())
    correct = int((dropped & shares).sum())
    above = jac >= threshold
    return {
        "dropped": n_dropped, "dropped_correct": correct,
        "dropped_precision": correct / n_dropped if n_dropped else 1.0,
        "dropped_recall": correct / truth["ideal_dropped"] if truth["ideal_dropped"] else 1.0,
        "pair_recall": float(found.mean()) if len(found) else None,
        "pair_recall_at_threshold": float(found[above].mean()) if above.any() else None,
        "pairs_at_threshold": int(above.sum()),
        "natural_pair_recall": float(natural.mean()) if len(natural) else None,
        "recall_by_edit": {k: float(np.mean(v)) for k, v in sorted(by_edit.items())},
        "recall_by_jaccard": by_band,
    }


def expected_recall(truth: dict, threshold: float, num_perm: int) -> dict:
    """What any unbiased MinHash LSH without verification finds at this threshold's (bands, rows): per planted
    pair, P(candidate) = 1 - (1 - J^rows)^bands; the mean is the expected pair recall (direct candidates; clusters
    add a little), and sqrt(sum p(1-p)) / pairs the standard deviation of one run's recall."""
    b, r = optimal_bands(threshold, num_perm)
    jac = np.array([p["jaccard_5gram"] for p in truth["planted"]])
    p = 1 - (1 - jac**r) ** b
    return {"mean": float(p.mean()), "sd": float(np.sqrt((p * (1 - p)).sum()) / max(len(p), 1))}


# ---------------------------------------------------------------------------------------------------- report


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render(report: dict) -> str:
    """The Markdown report."""
    s = report["settings"]
    tools = report["tools"]
    n = report["docs"]
    base = tools["thresher"]["cpu_s"]
    lines = [
        f"## Near-duplicate detection: thresher {report['versions']['thresher']} vs datasketch "
        f"{report['versions']['datasketch']} vs datatrove {report['versions']['datatrove']}",
        "",
        f"{n:,} docs of ../shared/data/dedup ({len(report['truth']['planted_kinds'])} planted edit kinds, "
        f"{report['truth']['planted_pairs']:,} planted pairs, {report['truth']['natural_pairs']} natural pairs). "
        f"Word {s['ngram']}-grams, threshold {s['threshold']}, num_perm {s['num_perm']}, "
        f"{s['bands']} bands x {s['rows']} rows (thresher's optimal_bands = datasketch's _optimal_param: "
        f"{tuple(s['datasketch_optimal_param']) if s['datasketch_optimal_param'] else 'not checked'}), keep first. "
        f"One process on {report['machine']}; the machine is shared, so docs/s per core uses CPU time.",
        "",
        "| tool | docs/s per core (CPU) | thresher speed-up (CPU) | CPU s | wall s | docs/s (wall) | "
        "candidate pairs | dropped | dropped precision | dropped recall | planted-pair recall | "
        f"recall, J >= {s['threshold']} | natural-pair recall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, t in tools.items():
        q = t["quality"]
        lines.append(
            f"| {name} | {n / t['cpu_s']:,.0f} | {t['cpu_s'] / base:.2f}x | {t['cpu_s']:.1f} | {t['wall_s']:.1f} | "
            f"{n / t['wall_s']:,.0f} | {t['stats'].get('candidate_pairs', '-'):,} | {q['dropped']:,} | "
            f"{_pct(q['dropped_precision'])} | {_pct(q['dropped_recall'])} | {_pct(q['pair_recall'])} | "
            f"{_pct(q['pair_recall_at_threshold'])} | {_pct(q['natural_pair_recall'])} |")
    if "datatrove" in tools and "cpu_s_with_filter" in tools["datatrove"]:
        t = tools["datatrove"]
        lines += ["", "datatrove including stage 4 (filter + write the kept docs as JSONL): "
                  f"{t['cpu_s_with_filter']:.1f} CPU s, {n / t['cpu_s_with_filter']:,.0f} docs/s per core. "
                  "Stages (CPU s): "
                  + ", ".join(f"{k} {v['cpu_s']:.1f}" for k, v in t["stats"]["stages"].items()) + "."]
    expected = report["lsh_expected_recall"][s["threshold"]]
    at = {r["tool"]: r for r in report.get("sweep", []) if r["threshold"] == s["threshold"]}
    lines += ["", f"Sampling noise: any unbiased MinHash LSH without verification finds on average "
              f"{_pct(expected['mean'])} of the planted pairs at these bands and rows (one run's standard deviation "
              f"{100 * expected['sd']:.1f} points). Planted-pair recall with seeds 0-{s['seeds'] - 1}: "
              + "; ".join(f"{name} {', '.join(_pct(x) for x in at[name]['pair_recall_by_seed'])}"
                          for name in TOOL_ORDER if name in at) + "."]
    if "datasketch" in tools:
        ds = tools["datasketch"]
        lines += ["", f"**thresher / datasketch end-to-end throughput: {ds['cpu_s'] / base:.1f}x per core (CPU), "
                  f"{ds['wall_s'] / tools['thresher']['wall_s']:.1f}x wall.**"]
    lines += ["", "Natural pairs are mostly (about 290 of 385) code files of one family that share long boilerplate, "
              "so whether one link joins that group decides most of the natural-pair column: it is noisy."]
    versus = report.get("versus_datasketch") or {}
    if versus.get("same_threshold"):
        lines += ["", f"thresher vs datasketch at the same threshold, means of {s['seeds']} seeds (differences in "
                  "points, + favours thresher; 'equal' = within 2 sd of the sampling noise):", "",
                  "| threshold | thresher variant | speed-up (CPU) | planted-pair recall | recall, J >= threshold | "
                  "dropped precision | recall | precision |", "| ---: | --- | ---: | ---: | ---: | ---: | --- | --- |"]
        for v in versus["same_threshold"]:
            lines.append(f"| {v['threshold']} | {v['variant']} | {v['speedup']:.1f}x | {v['d_recall']:+.1f} "
                         f"(noise {v['recall_noise']:.1f}) | {v['d_recall_at_threshold']:+.1f} | "
                         f"{v['d_precision']:+.1f} (noise {v['precision_noise']:.1f}) | {v['recall']} | "
                         f"{v['precision']} |")
    if versus.get("dominating"):
        lines += ["", "Verified thresher settings that match or beat datasketch on both planted-pair recall and "
                  "dropped precision (the highest such threshold):", "",
                  "| datasketch at | its recall / precision | thresher (verified) at | its recall / precision | "
                  "speed-up (CPU) |", "| ---: | --- | ---: | --- | ---: |"]
        for v in versus["dominating"]:
            lines.append(f"| {v['datasketch_threshold']} | {_pct(v['datasketch_recall'])} / "
                         f"{_pct(v['datasketch_precision'])} | {v['thresher_threshold']} | "
                         f"{_pct(v['thresher_recall'])} / {_pct(v['thresher_precision'])} | {v['speedup']:.1f}x |")
    edits = sorted({k for t in tools.values() for k in t["quality"]["recall_by_edit"]})
    med = report["truth"]["median_jaccard_by_edit"]
    lines += ["", "Planted-pair recall by edit (median 5-gram Jaccard of the pairs):", "",
              "| edit | median J | " + " | ".join(tools) + " |", "| --- | ---: |" + " ---: |" * len(tools)]
    for e in edits:
        lines.append(f"| {e} | {med[e]:.2f} | " + " | ".join(_pct(t["quality"]["recall_by_edit"].get(e))
                                                           for t in tools.values()) + " |")
    lines += ["", "Planted-pair recall by 5-gram Jaccard:", "", "| Jaccard | pairs | " + " | ".join(tools) + " |",
              "| --- | ---: |" + " ---: |" * len(tools)]
    for band, v in next(iter(tools.values()))["quality"]["recall_by_jaccard"].items():
        lines.append(f"| {band} | {v['pairs']} | " + " | ".join(
            _pct(t["quality"]["recall_by_jaccard"][band]["recall"]) for t in tools.values()) + " |")
    if report.get("sweep"):
        lines += ["", f"Every threshold, mean of {s['seeds']} LSH seeds (bands and rows from optimal_bands; datasketch "
                  "computes its MinHashes once per seed, and its time is their cost plus this threshold's LSH):", "",
                  "| threshold | bands x rows | tool | CPU s | thresher speed-up (CPU) | candidate pairs | dropped | "
                  "dropped precision | dropped recall | planted-pair recall | recall, J >= threshold |",
                  "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        base_of = {r["threshold"]: r["cpu_s"] for r in report["sweep"] if r["tool"] == "thresher"}
        for r in report["sweep"]:
            q = r["quality"]
            lines.append(f"| {r['threshold']} | {r['bands']} x {r['rows']} | {r['tool']} | {r['cpu_s']:.1f} | "
                         f"{r['cpu_s'] / base_of[r['threshold']]:.2f}x | {r['candidate_pairs']:,.0f} | "
                         f"{q['dropped']:,.0f} | {_pct(q['dropped_precision'])} | {_pct(q['dropped_recall'])} | "
                         f"{_pct(q['pair_recall'])} | {_pct(q['pair_recall_at_threshold'])} |")
    return "\n".join(lines) + "\n"


def _verdict(diff: float, noise: float) -> str:
    """``better`` / ``equal`` (within two standard deviations of sampling noise) / ``worse``, for thresher."""
    return "equal" if abs(diff) <= 2 * noise else ("better" if diff > 0 else "worse")


def _versus(report: dict) -> dict:
    """thresher vs datasketch at each threshold, means over seeds, and the verified thresher settings that match or
    beat each datasketch threshold on recall and precision. Differences in points; noise = 2 sd of the difference
    of two means of ``seeds`` independent LSH runs, from the per-pair candidate probabilities (recall) and the
    binomial spread of precision."""
    by = {(r["threshold"], r["tool"]): r for r in report.get("sweep", [])}
    same, dominating = [], []
    for th in sorted({t for t, _ in by}):
        if (th, "datasketch") not in by:
            continue
        d = by[th, "datasketch"]
        ds = d["quality"]
        sd = report["lsh_expected_recall"][th]["sd"] * np.sqrt(2 / d["seeds"])
        for name in ("thresher", "thresher (verify=False)"):
            if (th, name) not in by:
                continue
            t = by[th, name]
            q = t["quality"]
            d_prec = q["dropped_precision"] - ds["dropped_precision"]
            p = (q["dropped_precision"] + ds["dropped_precision"]) / 2
            sd_prec = np.sqrt(p * (1 - p) * (1 / max(q["dropped"], 1) + 1 / max(ds["dropped"], 1)) / d["seeds"])
            same.append({"threshold": th, "variant": name, "speedup": d["cpu_s"] / t["cpu_s"],
                         "d_recall": 100 * (q["pair_recall"] - ds["pair_recall"]), "recall_noise": 200 * sd,
                         "d_recall_at_threshold": 100 * (q["pair_recall_at_threshold"]
                                                         - ds["pair_recall_at_threshold"]),
                         "d_precision": 100 * d_prec, "precision_noise": 200 * sd_prec,
                         "recall": _verdict(q["pair_recall"] - ds["pair_recall"], sd),
                         "precision": _verdict(d_prec, sd_prec)})
        better = [r for r in report["sweep"] if r["tool"] == "thresher"
                  and r["quality"]["pair_recall"] >= ds["pair_recall"]
                  and r["quality"]["dropped_precision"] >= ds["dropped_precision"]]
        if better:
            best = max(better, key=lambda r: r["threshold"])
            dominating.append({"datasketch_threshold": th, "thresher_threshold": best["threshold"],
                               "thresher_recall": best["quality"]["pair_recall"],
                               "thresher_precision": best["quality"]["dropped_precision"],
                               "datasketch_recall": ds["pair_recall"], "datasketch_precision": ds["dropped_precision"],
                               "speedup": d["cpu_s"] / best["cpu_s"]})
    return {"same_threshold": same, "dominating": dominating}


def _mean_quality(qs: list[dict]) -> dict:
    keys = ("dropped", "dropped_precision", "dropped_recall", "pair_recall", "pair_recall_at_threshold")
    return {k: float(np.mean([q[k] for q in qs])) for k in keys}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with docs/pairs/natural_pairs.parquet")
    ap.add_argument("--threshold", type=float, default=0.7, help="the threshold of the main (three-tool) table")
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--sweep", default="0.4,0.5,0.6,0.8,0.9", help="more thresholds for thresher and datasketch")
    ap.add_argument("--seeds", type=int, default=3, help="LSH seeds per threshold for thresher and datasketch")
    ap.add_argument("--limit", type=int, default=0, help="only the first N docs (quick runs)")
    ap.add_argument("--skip", default="", help="comma-separated tools to skip: datasketch,datatrove")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "dedup.json")
    args = ap.parse_args(argv)
    skip = {x for x in args.skip.split(",") if x}
    thresholds = sorted({args.threshold, *[float(x) for x in args.sweep.split(",") if x]})

    work = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    try:
        table = pq.read_table(args.data / "docs.parquet", columns=["id", "text"])
        if args.limit:
            table = table.slice(0, args.limit)
        path = work / "input" / "docs.parquet"  # every tool reads this same file
        path.parent.mkdir(parents=True)
        pq.write_table(table, path, row_group_size=4096)
        ids = table.column("id").to_pylist()
        truth = load_truth(args.data, ids)
        bands, rows = optimal_bands(args.threshold, args.num_perm)
        try:
            from datasketch.lsh import _optimal_param

            ds_param = list(_optimal_param(args.threshold, args.num_perm, 0.5, 0.5))
        except ImportError:
            ds_param = None
        print(f"{len(ids):,} docs, threshold {args.threshold}, {bands} bands x {rows} rows", file=sys.stderr)
        warm = MinHashConfig(threshold=args.threshold, num_perm=args.num_perm, ngram=args.ngram)
        run_thresher(path, warm)  # warm-up: imports and first calls, as the other tools' imports come free

        runs: dict[tuple[float, str], list[dict]] = defaultdict(list)  # (threshold, tool) -> one run per seed
        for seed in range(args.seeds):
            minhashes = minhash_clock = None
            if "datasketch" not in skip:
                print(f"datasketch MinHashes, seed {seed + 1} ...", file=sys.stderr)
                minhashes, minhash_clock = datasketch_minhashes(path, args.num_perm, args.ngram, seed=seed + 1)
            for th in thresholds:
                b, r = optimal_bands(th, args.num_perm)
                for name, verify in (("thresher", True), ("thresher (verify=False)", False)):
                    cfg = MinHashConfig(threshold=th, num_perm=args.num_perm, ngram=args.ngram, verify=verify,
                                        seed=seed)
                    runs[th, name].append(run_thresher(path, cfg))
                if minhashes is not None:
                    runs[th, "datasketch"].append(run_datasketch(minhashes, minhash_clock, th, args.num_perm, b, r))
            del minhashes
        for (th, _), per_seed in runs.items():
            for run in per_seed:
                run["quality"] = score(run.pop("labels"), run.pop("dropped"), truth, th)

        tools = {name: runs[args.threshold, name][0] for name in ("thresher", "thresher (verify=False)", "datasketch")
                 if runs.get((args.threshold, name))}
        if "datatrove" not in skip:
            print("datatrove ...", file=sys.stderr)
            dt = run_datatrove(path, args.ngram, bands, rows, work / "datatrove")
            dt["quality"] = score(dt.pop("labels"), dt.pop("dropped"), truth, args.threshold)
            tools["datatrove"] = dt
        for name, t in tools.items():
            print(f"[{name}] {t['cpu_s']:.1f} CPU s, {t['wall_s']:.1f} wall s, dropped {t['quality']['dropped']}, "
                  f"precision {_pct(t['quality']['dropped_precision'])}, recall {_pct(t['quality']['pair_recall'])}",
                  file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    sweep = []
    for (th, name), per_seed in sorted(runs.items(), key=lambda kv: (kv[0][0], TOOL_ORDER.index(kv[0][1]))):
        b, r = optimal_bands(th, args.num_perm)
        qs = [x["quality"] for x in per_seed]
        sweep.append({"threshold": th, "bands": b, "rows": r, "tool": name, "seeds": len(per_seed),
                      "cpu_s": float(np.mean([x["cpu_s"] for x in per_seed])),
                      "wall_s": float(np.mean([x["wall_s"] for x in per_seed])),
                      "candidate_pairs": float(np.mean([x["stats"]["candidate_pairs"] for x in per_seed])),
                      "quality": _mean_quality(qs), "pair_recall_by_seed": [q["pair_recall"] for q in qs]})
    kinds = defaultdict(list)
    for p in truth["planted"]:
        kinds[p["edit_kind"] if p["edit_rate"] is None else f"{p['edit_kind']}@{p['edit_rate']:g}"].append(
            p["jaccard_5gram"])
    report = {
        "docs": len(ids),
        "settings": {"threshold": args.threshold, "num_perm": args.num_perm, "ngram": args.ngram, "bands": bands,
                     "rows": rows, "datasketch_optimal_param": ds_param, "keep": "first", "limit": args.limit,
                     "seeds": args.seeds},
        "lsh_expected_recall": {th: expected_recall(truth, th, args.num_perm) for th in thresholds},
        "truth": {"planted_pairs": len(truth["planted"]), "natural_pairs": len(truth["natural"]),
                  "ideal_dropped": truth["ideal_dropped"], "planted_kinds": sorted(kinds),
                  "median_jaccard_by_edit": {k: float(np.median(v)) for k, v in sorted(kinds.items())}},
        "tools": tools,
        "sweep": sweep,
        "versions": {"thresher": _version("thresher"), "datasketch": _version("datasketch"),
                     "datatrove": _version("datatrove"), "numpy": np.__version__, "pyarrow": pa.__version__,
                     "python": platform.python_version()},
        "machine": _cpu_name(),
    }
    report["versus_datasketch"] = _versus(report)
    md = render(report)
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    args.out.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
