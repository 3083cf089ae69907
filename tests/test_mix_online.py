"""Online mixing methods with the online proxies (n-gram, tiny_lm): --method doremi (a reference on the natural
mixture, then Group DRO on each group's excess loss) and --method aioli / skillit (group interactions from sweeps,
exponentiated gradient toward the targets); the weights averaged over the steps are the answer."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

import thresher as th
from thresher.cli import main
from thresher.errors import ConfigError
from thresher.lm.ngram import KneserNeyConfig
from thresher.mix.doremi import online_dro_run
from thresher.mix.online import OnlineSpec


def _stream(texts: list[str]):
    import pyarrow as pa

    hashes, offsets = KneserNeyConfig(order=2).featurizer().token_hashes(pa.array(texts))
    return hashes, offsets, np.diff(offsets).astype(float)


def _groups():
    """Two groups with their own vocabularies: a's texts repeat a few words, b's are all different."""
    rng = np.random.default_rng(0)
    a = [" ".join(rng.choice([f"a{i}" for i in range(20)], 30)) for _ in range(400)]
    b = [" ".join(rng.choice([f"b{i}" for i in range(3000)], 30)) for _ in range(400)]
    return a, b


NGRAM = OnlineSpec("ngram", order=2, vocab_size=5000)


def test_weight_moves_to_the_group_whose_loss_stays_above_its_reference():
    """Group b's reference loss is set below what the proxy reaches, group a's above: the first update moves
    weight to b (exponentiated gradient on the excess) and b keeps most of it; without a reference the weights stay
    where they started."""
    a, b = _groups()
    streams = [_stream(a[:300]), _stream(b[:300])]
    evals = [_stream(a[300:])[:2], _stream(b[300:])[:2]]
    measured = np.array([0, 1])
    fixed = online_dro_run(streams, evals, measured, NGRAM, 0, 5, 6000, np.array([0.5, 0.5]), None, 1.0, 1e-3)
    assert all(np.allclose(r["weights"], [0.5, 0.5]) for r in fixed["steps"])
    final = fixed["steps"][-1]["losses"]
    reference = np.array([final[0] + 1.0, final[1] - 1.0])  # a: already better than needed; b: 1 nat short
    dro = online_dro_run(streams, evals, measured, NGRAM, 0, 5, 6000, np.array([0.5, 0.5]), reference, 1.0, 1e-3)
    shares = [r["updated"][1] for r in dro["steps"]]
    first = dro["steps"][0]
    assert first["excess"][0] == 0 and first["excess"][1] > 0 and shares[0] > 0.7
    assert shares[-1] > 0.85 and all(r["excess"][1] > 0 for r in dro["steps"])
    # starved of records, a's loss rises above its reference too: the weights settle where the excesses balance
    assert dro["steps"][-1]["excess"][0] > 0 and abs(shares[-1] - shares[-2]) < 0.02
    trained = dro["steps"][-1]["tokens"]
    assert trained[1] > 5 * trained[0]  # b's records were drawn as its weight rose


@pytest.fixture(scope="module")
def doremi_runs(tmp_path_factory, sample_pool):
    root = tmp_path_factory.mktemp("doremi")
    for workers in ("2", "1"):
        result = CliRunner().invoke(main, ["mix", "--pool", str(sample_pool), "--method", "doremi", "--proxy-tokens",
                                           "60000 tokens", "--steps", "6", "--budget", "1M tokens", "--workers",
                                           workers, "--out", str(root / f"w{workers}")])
        assert result.exit_code == 0, result.output
    return root / "w2", root / "w1"


def test_doremi_from_the_cli_writes_averaged_weights_and_the_trajectory(doremi_runs):
    two, one = doremi_runs
    assert (two / "mixture.yaml").read_bytes() == (one / "mixture.yaml").read_bytes()
    assert (two / "trajectory.parquet").read_bytes() == (one / "trajectory.parquet").read_bytes()
    mixture = yaml.safe_load((two / "mixture.yaml").read_text())
    weights = np.array(list(mixture["weights"].values()))
    assert mixture["method"] == "doremi" and abs(weights.sum() - 1) < 1e-5 and len(weights) == 9
    steps = pq.read_table(two / "trajectory.parquet").to_pydict()
    assert steps["step"] == list(range(6))
    groups = list(mixture["weights"])
    updated = np.array([steps[f"updated:{g}"] for g in groups]).T
    np.testing.assert_allclose(updated.mean(axis=0), weights, atol=2e-6)  # the answer: the steps' average
    np.testing.assert_allclose(updated.sum(axis=1), 1, atol=1e-9)
    excess = np.array([steps[f"excess:{g}"] for g in groups]).T
    before = np.array([steps[f"weight:{g}"] for g in groups]).T
    c, k = mixture["doremi"]["smoothing"], len(groups)
    step = np.log((updated - c / k) / (1 - c) / before)  # before smoothing: weights x exp(eta x excess), normalised
    centred = step - mixture["doremi"]["eta"] * excess
    np.testing.assert_allclose(centred, np.broadcast_to(centred[:, :1], centred.shape), atol=1e-6)
    assert (excess > 0).any() and (excess == 0).any()
    assert sum(mixture["expected_tokens"].values()) == pytest.approx(1_000_000, abs=10)


def test_doremi_needs_no_target_and_checks_its_settings(tmp_path, small_pool):
    with pytest.raises(ConfigError, match="needs no target"):
        th.mix(small_pool, out=tmp_path / "t", method="doremi", target=small_pool)
    with pytest.raises(ConfigError, match="steps >= 1"):
        th.mix(small_pool, out=tmp_path / "s", method="doremi", steps=0)


@pytest.fixture(scope="module")
def online_runs(tmp_path_factory, sample_pool, news_target):
    root = tmp_path_factory.mktemp("online")
    for method in ("aioli", "skillit"):
        result = CliRunner().invoke(main, ["mix", "--pool", str(sample_pool), "--target", str(news_target),
                                           "--method", method, "--proxy-tokens", "60000 tokens", "--steps", "6",
                                           "--workers", "2", "--out", str(root / method)])
        assert result.exit_code == 0, result.output
    return root


def test_aioli_and_skillit_move_weight_toward_the_group_that_helps_the_target(online_runs):
    """Toward the news sample: the sweeps find that news lowers the target loss most, so its weight rises round
    after round from uniform and ends the largest, while the proxy's target loss falls."""
    for method in ("aioli", "skillit"):
        mixture = yaml.safe_load((online_runs / method / "mixture.yaml").read_text())
        steps = pq.read_table(online_runs / method / "trajectory.parquet").to_pydict()
        news = steps["weight:news"]
        assert news[0] == pytest.approx(1 / 9) and all(b > a for a, b in zip(news, news[1:])), (method, news)
        assert max(mixture["weights"], key=mixture["weights"].get) == "news"
        assert all(steps["gain:news"][r] == max(steps[f"gain:{g}"][r] for g in mixture["weights"])
                   for r in range(6))
        losses = steps["loss:target_news"]
        assert losses[-1] < losses[0]
        np.testing.assert_allclose([mixture["weights"][g] for g in mixture["weights"]],
                                   np.mean([steps[f"weight:{g}"] for g in mixture["weights"]], axis=1), atol=2e-6)


def test_skillit_keeps_its_first_interaction_matrix_and_aioli_reestimates_it(online_runs):
    columns = [c for c in pq.read_table(online_runs / "aioli" / "trajectory.parquet").column_names
               if c.startswith("interaction:")]
    aioli = pq.read_table(online_runs / "aioli" / "trajectory.parquet").to_pydict()
    skillit = pq.read_table(online_runs / "skillit" / "trajectory.parquet").to_pydict()
    assert all(len(set(skillit[c])) == 1 for c in columns)
    assert sum(len(set(aioli[c])) > 1 for c in columns) == len(columns)
    assert [aioli[c][0] for c in columns] == [skillit[c][0] for c in columns]  # the same first sweeps


def test_online_methods_need_a_target(tmp_path, small_pool):
    with pytest.raises(ConfigError, match="needs at least one --target"):
        th.mix(small_pool, out=tmp_path / "a", method="aioli")


def test_mix_runs_write_a_report_with_the_weights_and_the_trajectory(doremi_runs):
    from thresher.report.html import build_report

    two, _ = doremi_runs
    page = (two / "report.html").read_text()
    assert "Mixture weights" in page and 'aria-label="mixture-weights"' in page
    assert 'aria-label="mixture-trajectory"' in page
    assert build_report(two) == page  # the same run directory gives the same page


TINY = ["--proxy", "tiny_lm", "--tiny-lm", "dim=32", "--tiny-lm", "vocab_size=1024", "--tiny-lm", "steps=60",
        "--tiny-lm", "batch=8", "--tiny-lm", "online_eval_tokens=1024"]


def test_a_tiny_lm_probe_leaves_the_run_as_it_was():
    """Probing what a chunk of one group would do trains a copy: the losses after it, and the rest of the run
    (its window draws, optimiser and schedule), are bit for bit those of a run that never probed."""
    from thresher.mix.tiny_lm import TinyLMConfig

    a, b = _groups()
    streams = [_stream(a[:300]), _stream(b[:300])]
    evals = [_stream(a[300:])[:2], _stream(b[300:])[:2]]
    spec = OnlineSpec("tiny_lm", 2, 0, TinyLMConfig(vocab_size=512, dim=16, heads=2, steps=12, batch=4, context=16))
    probed, plain = spec.build(streams, evals, rounds=3), spec.build(streams, evals, rounds=3)
    for proxy in (probed, plain):
        proxy.train_to(np.array([0.5, 0.5]), 2000)
    before = probed.losses()
    gain = before - probed.probe(1, 1000)
    assert gain[1] > 0 and gain[1] > gain[0]  # b's own records help b's held-out set most
    np.testing.assert_array_equal(probed.losses(), before)
    for proxy in (probed, plain):
        proxy.train_to(np.array([0.2, 0.8]), 4000)
    np.testing.assert_array_equal(probed.losses(), plain.losses())


def test_online_methods_run_with_the_tiny_lm_proxy_on_any_worker_count(tmp_path, sample_pool, news_target):
    """--proxy tiny_lm for aioli and doremi: Aioli's sweeps with the transformer move weight toward news for the
    news target, and both give byte-identical mixtures on one and two workers."""
    for workers in ("1", "2"):
        result = CliRunner().invoke(main, ["mix", "--pool", str(sample_pool), "--target", str(news_target),
                                           "--method", "aioli", "--proxy-tokens", "60000 tokens", "--steps", "3",
                                           *TINY, "--workers", workers, "--out", str(tmp_path / f"aioli{workers}")])
        assert result.exit_code == 0, result.output
        assert "an online tiny_lm proxy" in result.output
        result = CliRunner().invoke(main, ["mix", "--pool", str(sample_pool), "--method", "doremi", "--proxy-tokens",
                                           "60000 tokens", "--steps", "3", *TINY, "--workers", workers,
                                           "--out", str(tmp_path / f"doremi{workers}")])
        assert result.exit_code == 0, result.output
    for method in ("aioli", "doremi"):
        one = (tmp_path / f"{method}1" / "mixture.yaml").read_bytes()
        assert one == (tmp_path / f"{method}2" / "mixture.yaml").read_bytes()
        assert yaml.safe_load(one)["proxy"]["tiny_lm"]["dim"] == 32
    steps = pq.read_table(tmp_path / "aioli1" / "trajectory.parquet").to_pydict()
    news = steps["weight:news"]
    assert news[0] == pytest.approx(1 / 9) and news[-1] > news[0]
    assert steps["gain:news"][0] == max(steps[c][0] for c in steps if c.startswith("gain:"))
