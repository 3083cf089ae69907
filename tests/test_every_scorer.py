"""Every registered scorer, end to end through ``thresher score`` on real records of three domains.

Each one must write its main column for every record; the learned ones, fitted on the news target, must rank the
pool's news records above its code records on average.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from thresher.scorers.registry import SCORERS

PARAMS = {"similarity": ["--param", "similarity.backend=static"], "causal_lm": ["--param", "causal_lm.max_tokens=64"]}
TARGETED = {"dsir", "classifier", "similarity", "ngram", "color"}


@pytest.fixture(scope="module")
def three_domains(tmp_path_factory, sample_pool):
    pool = pq.read_table(sample_pool)
    parts = [pool.filter(pc.equal(pool["domain"], d)).slice(0, 12) for d in ("news", "code", "literature")]
    path = tmp_path_factory.mktemp("three") / "pool.parquet"
    pq.write_table(pa.concat_tables(parts), path)
    return path


def test_every_registered_scorer_is_covered_here():
    assert set(SCORERS) == {"gopher", "c4", "fineweb", "langid", "tokens", "dsir", "classifier", "similarity", "ngram",
                            "color", "causal_lm"}


@pytest.mark.parametrize("name", sorted(SCORERS))
def test_scorer_from_the_cli(name, tmp_path, three_domains, news_target):
    cmd = [sys.executable, "-m", "thresher.cli", "score", "--pool", str(three_domains), "--scorers", name,
           "--out", str(tmp_path / name), "--workers", "1", "--json", *PARAMS.get(name, [])]
    if name in TARGETED:
        cmd += ["--target", str(news_target), "--pool-sample", "36"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["counts"]["scored"] == 36
    scores = pq.read_table(tmp_path / name / "scores" / "scores.parquet")
    main = SCORERS[name].primary
    values = scores[main].to_numpy(zero_copy_only=False).astype(np.float64)
    assert len(values) == 36 and np.isfinite(values).all()
    if name in TARGETED:
        domain = np.asarray(scores["group"].to_pylist())
        assert values[domain == "news"].mean() > values[domain == "code"].mean()
        assert (tmp_path / name / "fit" / name).is_dir() or name == "dsir"
