"""Label models on synthetic votes with known parameters: recovery, class balance, abstain/tie policy, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.errors import ConfigError
from thresher.label import DEFAULT_LABEL_MODEL, LABEL_MODELS, LabelMatrix, label_metrics, make_label_model
from thresher.label.synthetic import make_synthetic

SKEWED = [0.7, 0.2, 0.1]


@pytest.fixture(scope="module")
def skewed():
    rng = np.random.default_rng(3)
    return make_synthetic(40_000, 10, 3, prior=SKEWED, accuracy=rng.uniform(0.5, 0.85, 10),
                          propensity=rng.uniform(0.2, 0.6, 10), seed=1)


@pytest.mark.parametrize("name", ["dawid_skene", "metal", "triplet", "weighted_majority_vote", "class_conditional"])
def test_recovers_known_lf_accuracies(skewed, name):
    model = make_label_model(name).fit(skewed.L)
    assert model.lf_accuracies_.shape == (10,)
    assert np.abs(model.lf_accuracies_ - skewed.accuracies).max() < 0.05


@pytest.mark.parametrize("name", ["dawid_skene", "metal", "triplet", "class_conditional"])
def test_class_balance_estimated_on_skewed_prior(skewed, name):
    model = make_label_model(name).fit(skewed.L)
    assert model.class_balance_source_ == "estimated"
    assert np.abs(model.class_balance_ - SKEWED).max() < 0.03


def test_class_balance_sources(skewed):
    L_dev, y_dev = skewed.L.rows(np.arange(500)), skewed.y[:500]
    given = make_label_model("triplet").fit(skewed.L, class_balance=[2, 1, 1])
    assert given.class_balance_source_ == "given" and np.allclose(given.class_balance_, [0.5, 0.25, 0.25])
    dev = make_label_model("dawid_skene").fit(skewed.L, class_balance="dev", dev=(L_dev, y_dev))
    assert dev.class_balance_source_ == "dev" and np.abs(dev.class_balance_ - SKEWED).max() < 0.05
    uniform = make_label_model("majority_vote").fit(skewed.L, class_balance="uniform")
    assert uniform.class_balance_source_ == "uniform" and np.allclose(uniform.class_balance_, 1 / 3)


def test_models_beat_majority_vote_and_approach_oracle_on_skewed(skewed):
    k = 3
    oracle = label_metrics(skewed.y, skewed.oracle_predict(), k)["accuracy"]
    mv = label_metrics(skewed.y, make_label_model("majority_vote").fit(skewed.L).predict(skewed.L, abstain="prior"),
                       k)["accuracy"]
    for name in ["dawid_skene", "metal", "triplet", "class_conditional"]:
        pred = make_label_model(name).fit(skewed.L).predict(skewed.L, abstain="prior")
        acc = label_metrics(skewed.y, pred, k)["accuracy"]
        assert acc > mv + 0.01, name
        assert acc > oracle - 0.01, name


def test_duplicated_lf_does_not_take_over():
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.6, 0.85, 8)
    acc[0] = 0.4  # a weak LF, copied five times
    data = make_synthetic(30_000, 8, 3, prior=SKEWED, accuracy=acc, propensity=0.5, n_copies=5, seed=2)
    oracle = label_metrics(data.y, data.oracle_predict(), 3)["accuracy"]
    mv = label_metrics(data.y, make_label_model("majority_vote").fit(data.L).predict(data.L, abstain="prior"),
                       3)["accuracy"]
    for name in ["dawid_skene", "metal", "triplet", "class_conditional"]:
        model = make_label_model(name).fit(data.L)
        assert len(set(model.lf_groups_[[0, 8, 9, 10, 11, 12]])) == 1  # the copies are found
        acc_model = label_metrics(data.y, model.predict(data.L, abstain="prior"), 3)["accuracy"]
        assert acc_model > oracle - 0.02 and acc_model > mv, name


def test_abstains_counted_and_all_abstain_rows():
    L = np.array([[0, 0, -1], [1, 1, 1], [-1, -1, -1], [-1, -1, -1]])
    model = make_label_model("majority_vote").fit(L)
    pred = model.predict(L, abstain="abstain")
    assert pred.tolist() == [0, 1, -1, -1]
    assert np.allclose(model.predict_proba(L)[2], model.class_balance_)
    prior_pred = model.predict(L, abstain="prior")
    assert (prior_pred[2:] == np.argmax(model.class_balance_)).all()
    metrics = label_metrics([0, 1, 0, 1], pred, 2)
    assert metrics["accuracy"] == 0.5 and metrics["n_abstain"] == 2
    assert metrics["accuracy_on_covered"] == 1.0 and metrics["coverage"] == 0.5


def test_tie_policy():
    L = np.array([[0, 1], [0, 1], [0, 0], [1, 1], [1, -1]])
    model = make_label_model("majority_vote").fit(L, class_balance=[0.3, 0.7])
    assert model.predict(L, ties="prior")[:2].tolist() == [1, 1]
    assert model.predict(L, ties="abstain")[:2].tolist() == [-1, -1]
    random = np.stack([model.predict(L, ties="random", seed=s)[:2] for s in range(20)])
    assert set(random.ravel().tolist()) == {0, 1}
    assert model.predict(L, ties="random", seed=4).tolist() == model.predict(L, ties="random", seed=4).tolist()


def test_deterministic(skewed):
    for name in LABEL_MODELS:
        a = make_label_model(name).fit(skewed.L, seed=7).predict_proba(skewed.L)
        b = make_label_model(name).fit(skewed.L, seed=7).predict_proba(skewed.L)
        assert np.array_equal(a, b), name


def test_many_classes_many_lfs():
    rng = np.random.default_rng(5)
    prior = rng.dirichlet(np.full(200, 2.0))
    data = make_synthetic(30_000, 1000, 200, prior=prior, accuracy=rng.uniform(0.3, 0.8, 1000),
                          propensity=0.02, seed=3)
    model = make_label_model("dawid_skene").fit(data.L)
    assert model.mode_ == "one_coin"
    proba = model.predict_proba(data.L)
    assert proba.shape == (30_000, 200) and np.allclose(proba.sum(axis=1), 1)
    acc = label_metrics(data.y, model.predict(data.L, abstain="prior"), 200)["accuracy"]
    mv = label_metrics(data.y, make_label_model("majority_vote").fit(data.L).predict(data.L, abstain="prior"),
                       200)["accuracy"]
    oracle = label_metrics(data.y, data.oracle_predict(), 200)["accuracy"]
    assert acc > mv and acc > oracle - 0.03
    with pytest.raises(ConfigError, match="max_dim"):
        make_label_model("metal").fit(data.L)


def test_parameter_validation():
    with pytest.raises(ConfigError, match="majority_vote"):
        make_label_model("snorkel")
    with pytest.raises(ConfigError, match="confusion"):
        make_label_model("dawid_skene", confusion="two_coin")
    with pytest.raises(ConfigError, match="does not take"):
        make_label_model("triplet", tol=1)
    model = make_label_model(DEFAULT_LABEL_MODEL)
    with pytest.raises(ConfigError, match="not fitted"):
        model.predict(np.zeros((2, 2), dtype=int))
    L = np.array([[0, 1], [1, 1]])
    with pytest.raises(ConfigError, match="class_balance"):
        model.fit(L, class_balance=[1, 2, 3])
    with pytest.raises(ConfigError, match="dev"):
        model.fit(L, class_balance="dev")
    with pytest.raises(ConfigError, match="ties"):
        make_label_model("majority_vote").fit(L).predict(L, ties="coin")
    assert make_label_model("dawid_skene", max_iter=5).get_params()["max_iter"] == 5


def test_label_matrix_roundtrip(tmp_path):
    dense = np.array([[0, -1, 2], [-1, -1, -1], [1, 1, 0]])
    L = LabelMatrix.from_dense(dense, 3, ["a", "b", "c"])
    assert L.nnz == 5 and L.n_votes().tolist() == [2, 0, 3]
    assert np.array_equal(LabelMatrix.load(L.save(tmp_path / "L.npz")).to_dense(), dense)
    assert (tmp_path / "L.npz").read_bytes() == L.save(tmp_path / "L2.npz").read_bytes()
    cols = LabelMatrix.from_columns([dense[:, j] for j in range(3)], 3, ["a", "b", "c"])
    assert cols == L and L.rows([2]).to_dense().tolist() == [[1, 1, 0]]
    with pytest.raises(ConfigError, match="'b'"):
        LabelMatrix.from_dense(np.array([[0, 5]]), 3, ["a", "b"])
