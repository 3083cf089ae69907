"""``thresher dedup``: exact and near-duplicates removed from a real pool, with reasons, clusters and accounting."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.dedup.semantic import SemanticConfig
from thresher.errors import ConfigError
from thresher.io.dataset import read
from thresher.jobs.dedup import NORMALIZE, run_dedup


@pytest.fixture(scope="module")
def planted(tmp_path_factory, sample_pool):
    """400 real long records plus 10 exact copies (case and spacing changed) and 10 near copies (a few words
    replaced), appended at the end so the originals come first."""
    pool = pq.read_table(sample_pool)
    long = [r for r in pool.to_pylist() if len(r["text"].split()) > 200][:400]
    rows = [{"id": r["id"], "text": r["text"], "domain": r["domain"]} for r in long]
    for r in long[:10]:
        rows.append({"id": f"exact-{r['id']}", "text": "  " + r["text"].upper().replace(" ", "   "),
                     "domain": r["domain"]})
    for r in long[10:20]:
        words = r["text"].split(" ")
        for j in range(0, len(words), 60):
            words[j] = "zebra"
        rows.append({"id": f"near-{r['id']}", "text": " ".join(words), "domain": r["domain"]})
    path = tmp_path_factory.mktemp("dedup") / "pool.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_planted_duplicates_are_dropped_with_reasons(planted, tmp_path):
    run = run_dedup(read(planted), tmp_path / "d")
    scores = run.scores()
    reason = dict(zip(scores["id"].to_pylist(), scores["dup_reason"].to_pylist()))
    for i, rid in enumerate(x for x in reason if x.startswith("exact-")):
        assert reason[rid] == f"exact_duplicate_of:{rid[len('exact-'):]}", i
    for rid in (x for x in reason if x.startswith("near-")):
        assert reason[rid] == f"near_duplicate_of:{rid[len('near-'):]}"
    kept = run.selected_ids()
    assert not any(k.startswith(("exact-", "near-")) for k in kept)
    c = run.counts
    assert c["filtered"] == {"exact_duplicate": 10, "near_duplicate": 10} and c["selected"] == len(kept)
    assert c["all_accounted_for"] and len(run.selected_records()) == len(kept)


def test_an_exact_copy_of_a_near_duplicate_belongs_to_the_kept_record(planted, tmp_path):
    """Record order: an original, its near copy, then an exact copy of the near copy. Exact dedup drops the last for
    the near copy, which MinHash then drops for the original: the last one's cluster is the original (a kept
    record), its reason still names the copy it repeats; no dup_cluster anywhere names a dropped record."""
    rows = pq.read_table(planted).to_pylist()
    near = next(r for r in rows if r["id"].startswith("near-"))
    rows.append({"id": "copy-of-near", "text": near["text"].lower(), "domain": near["domain"]})
    path = tmp_path / "chain.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    scores = run_dedup(read(path), tmp_path / "d", report=False).scores().to_pylist()
    at = {r["id"]: k for k, r in enumerate(scores)}
    last = scores[at["copy-of-near"]]
    assert not last["dup_keep"] and last["dup_reason"] == f"exact_duplicate_of:{near['id']}"
    assert last["dup_cluster"] == at[near["id"][len("near-"):]] == scores[at[near["id"]]]["dup_cluster"]
    assert all(scores[r["dup_cluster"]]["dup_keep"] for r in scores)


def test_keep_longest_and_highest(planted, tmp_path):
    longest = run_dedup(read(planted), tmp_path / "l", method="exact")
    n = pq.read_table(planted).num_rows
    scores = np.zeros(n)
    scores[-20:-10] = 1.0  # the exact copies score highest
    highest = run_dedup(read(planted), tmp_path / "h", method="exact", exact=replace(NORMALIZE["lower"],
                                                                                      keep="highest"), scores=scores)
    assert not any(i.startswith("exact-") for i in longest.selected_ids())
    assert sum(i.startswith("exact-") for i in highest.selected_ids()) == 10


def test_normalisation_presets_decide_what_is_exact(planted, tmp_path):
    strict = run_dedup(read(planted), tmp_path / "s", method="exact", exact=NORMALIZE["none"])
    assert strict.counts["filtered"]["exact_duplicate"] == 0  # case and spacing differ: not exact without folding


def test_cli_dedup_and_bad_options(planted, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "dedup", "--pool", str(planted), "--out",
                           str(tmp_path / "c"), "--method", "minhash", "--threshold", "0.6", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["counts"]["filtered"]["near_duplicate"] == 20  # exact copies are near copies too (J = 1)
    bad = subprocess.run([sys.executable, "-m", "thresher.cli", "dedup", "--pool", str(planted), "--out",
                          str(tmp_path / "x"), "--keep", "highest"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--score-from" in bad.stderr
    with pytest.raises(ConfigError, match="unknown dedup method"):
        run_dedup(read(planted), tmp_path / "y", method="fuzzy")


def test_semantic_dedup_on_embeddings(planted, tmp_path):
    from thresher.jobs.embed import run_embedding

    emb = run_embedding(read(planted), tmp_path / "emb", workers=1, progress=False)
    run = run_dedup(read(planted), tmp_path / "sem", method="semantic", embeddings=emb.path,
                    semantic=SemanticConfig(threshold=0.97))
    reason = dict(zip(run.scores()["id"].to_pylist(), run.scores()["dup_reason"].to_pylist()))
    # the exact copies (same words, other case and spacing) embed identically: all found, with their original
    for rid in (x for x in reason if x.startswith("exact-")):
        assert reason[rid] == f"semantic_duplicate_of:{rid[len('exact-'):]}"
    assert run.counts["all_accounted_for"] and run.counts["filtered"]["semantic_duplicate"] >= 10
    with pytest.raises(ConfigError, match="needs --embeddings"):
        run_dedup(read(planted), tmp_path / "x", method="semantic")


@pytest.mark.parametrize("method", ["minhash", "exact", "both"])
def test_hashes_and_sketches_on_worker_processes_give_the_same_clusters(tmp_path, small_pool, method):
    # the per-batch hashes and sketches (shingles, band keys, sets for verification) run on the engine; grouping
    # stays in the main process, so the decisions cannot depend on the number of workers
    runs = [th.deduplicate(th.read(small_pool, batch_size=300), out=tmp_path / f"w{w}", method=method,
                           threshold=0.5, workers=w, report=False) for w in (1, 2)]
    one, two = (pq.read_table(r.path / "scores" / "scores.parquet") for r in runs)
    assert one.equals(two) and one.num_rows == 1500
    assert (runs[0].path / "selected" / "ids.txt").read_bytes() == (runs[1].path / "selected" / "ids.txt").read_bytes()
