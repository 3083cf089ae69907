"""The default label model checks itself against the votes and falls back to the majority vote when it does not fit."""

import numpy as np
import pytest

from thresher.errors import ConfigError
from thresher.label import LabelMatrix, make_label_model
from thresher.label.models.fit_check import vote_class_balance
from thresher.label.models.majority import vote_scores
from thresher.label.synthetic import make_bursty, make_synthetic, make_unipolar


@pytest.fixture(scope="module")
def bursty():
    return make_bursty(20_000, seed=0)


def accuracy(model, L, y):
    return float((model.predict(L) == y).mean())


@pytest.mark.parametrize("data", [
    make_unipolar(50_000, 3, [0, 0, 0, 1, 1, 1, 2, 2, 2], [0.5, 0.3, 0.2, 0.6, 0.4, 0.3, 0.5, 0.4, 0.2],
                  [0.05, 0.02, 0.01, 0.1, 0.03, 0.02, 0.04, 0.06, 0.01], prior=[0.6, 0.3, 0.1], seed=3),
    make_synthetic(50_000, 10, 4, accuracy=0.7, propensity=0.4, seed=1),
], ids=["unipolar", "one-coin"])
def test_fit_check_passes_when_lfs_are_independent_given_the_class(data):
    model = make_label_model("class_conditional").fit(data.L)
    assert model.misfit_ < 1.5  # Pearson χ² per cell: about 0.7 when the model's assumptions hold
    assert not model.anchored_
    free = make_label_model("class_conditional", anchor="none").fit(data.L)
    np.testing.assert_array_equal(model.predict_proba(data.L), free.predict_proba(data.L))


def test_fallback_triggers_when_lfs_fire_together(bursty):
    L, y = bursty.L, bursty.y
    model = make_label_model("class_conditional").fit(L)
    free = make_label_model("class_conditional", anchor="none").fit(L)
    mv = make_label_model("majority_vote").fit(L)
    assert model.misfit_ > model.misfit_threshold and model.anchored_
    # the plain model reads the co-firing LFs' agreement as accuracy and loses to the majority vote; anchored, it
    # does not
    assert accuracy(free, L, y) < accuracy(mv, L, y) - 0.03
    assert accuracy(model, L, y) >= accuracy(mv, L, y) - 0.005
    # its class balance is the votes', not the EM estimate the broken assumption produced
    np.testing.assert_array_equal(model.class_balance_, model.vote_class_balance_)
    assert accuracy(model, L, y) < float((bursty.oracle_predict() == y).mean())  # the oracle knows the bursts
    assert abs(model.em_class_balance_[0] - 0.7) > abs(model.class_balance_[0] - 0.7)


def test_anchored_model_follows_clear_majorities(bursty):
    L = bursty.L
    model = make_label_model("class_conditional", anchor="votes").fit(L)
    scores = vote_scores(L)
    top2 = np.sort(scores, axis=1)[:, -2:]
    decisive = top2[:, 1] - top2[:, 0] >= 1
    agree = model.predict(L)[decisive] == scores[decisive].argmax(axis=1)
    assert agree.mean() > 0.99


def test_anchor_modes_override_the_check(bursty):
    L = bursty.L
    assert not make_label_model("class_conditional", anchor="none").fit(L).anchored_
    independent = make_synthetic(5_000, 6, 3, accuracy=0.7, propensity=0.5, seed=2)
    assert make_label_model("class_conditional", anchor="votes").fit(independent.L).anchored_


def test_given_class_balance_is_kept_when_anchored(bursty):
    L = bursty.L
    model = make_label_model("class_conditional").fit(L, class_balance="uniform")
    assert model.anchored_
    np.testing.assert_allclose(model.class_balance_, 0.5)
    assert model.class_balance_source_ == "uniform"


def test_vote_class_balance_splits_ties_and_reports_an_interval():
    L = LabelMatrix.from_dense(np.array([[0, -1], [0, 0], [1, -1], [0, 1], [-1, -1]]), 2)
    balance, interval = vote_class_balance(L)
    # covered records: two for class 0, one for class 1, one tie split 1/2-1/2 → (2.5 + 1, 1.5 + 1) / (4 + 2)
    np.testing.assert_allclose(balance, [3.5 / 6, 2.5 / 6])
    assert interval.shape == (2, 2)
    assert (interval[0] <= balance).all() and (balance <= interval[1]).all()
    assert (interval >= 0).all() and (interval <= 1).all()


@pytest.mark.parametrize("params", [{"anchor": "sometimes"}, {"vote_weight": 0}, {"misfit_threshold": -1}])
def test_parameter_validation(params):
    with pytest.raises(ConfigError):
        make_label_model("class_conditional", **params)


def test_fit_check_on_more_columns_than_it_compares():
    from thresher.label.models.fit_check import MAX_CHECK_COLUMNS

    data = make_synthetic(20_000, 60, 20, accuracy=0.7, propensity=0.3, seed=5)
    assert data.L.n_lfs * data.L.n_classes > MAX_CHECK_COLUMNS  # only the most-voted columns enter the check
    model = make_label_model("class_conditional").fit(data.L)
    assert 0 < model.misfit_ < 1.5 and not model.anchored_
