"""``thresher embed``: a cached, resumable embedding matrix of a pool, identical across worker counts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq

from thresher.embeddings import make_backend
from thresher.io.dataset import read
from thresher.jobs.embed import run_embedding


def test_embeds_every_record_in_order_and_reuses_the_cache(tmp_path, small_pool):
    cache = tmp_path / "cache"
    one = run_embedding(read(small_pool, batch_size=400), tmp_path / "one", workers=1, cache_dir=cache,
                        progress=False)
    ids, matrix = one.embeddings()
    assert ids == pq.read_table(small_pool, columns=["id"])["id"].to_pylist()
    assert matrix.shape == (1500, 256) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=2e-3)  # unit rows, stored as float16
    # the rows are the back-end's vectors for those texts, in order
    texts = pq.read_table(small_pool, columns=["text"])["text"].to_pylist()[:5]
    direct = make_backend("static").encode(texts).astype(np.float16).astype(np.float32)
    assert np.allclose(matrix[:5], direct, atol=1e-3)
    # a second run (two workers) reads the same shards: identical matrix, no re-encoding needed
    shard = next(cache.glob("emb-*/shard-000000-0000.npy"))
    mtime = shard.stat().st_mtime_ns
    two = run_embedding(read(small_pool, batch_size=400), tmp_path / "two", workers=2, cache_dir=cache,
                        progress=False)
    assert np.array_equal(two.embeddings()[1], matrix) and shard.stat().st_mtime_ns == mtime


def test_resumes_after_a_crash(tmp_path, small_pool):
    cache = tmp_path / "cache"
    first = run_embedding(read(small_pool, batch_size=500), tmp_path / "a", workers=1, cache_dir=cache,
                          progress=False)
    root = next(cache.glob("emb-*"))
    (root / "_COMPLETE").unlink()
    (root / "shard-000000-0002.npy").unlink()  # as if the run died before the last shard
    again = run_embedding(read(small_pool, batch_size=500), tmp_path / "b", workers=1, cache_dir=cache,
                          progress=False)
    assert np.array_equal(again.embeddings()[1], first.embeddings()[1])


def test_cli_embed(tmp_path, small_pool):
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "embed", "--pool", str(small_pool), "--out",
                           str(tmp_path / "e"), "--dtype", "float32", "--workers", "1", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["counts"]["embedded"] == 1500 and out["embedding"]["dim"] == 256
    assert out["embedding"]["dtype"] == "float32"
