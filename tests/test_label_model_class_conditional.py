"""The class-conditional firing model (the default label model) on unipolar LFs, the structure of real keyword LFs."""

import numpy as np
import pytest

from thresher.errors import ConfigError
from thresher.label import DEFAULT_LABEL_MODEL, label_metrics, make_label_model
from thresher.label.synthetic import make_synthetic, make_unipolar

K = 3
LF_CLASS = [0, 0, 0, 1, 1, 1, 2, 2, 2]
ALPHA = [0.5, 0.3, 0.2, 0.6, 0.4, 0.3, 0.5, 0.4, 0.2]
BETA = [0.05, 0.02, 0.01, 0.10, 0.03, 0.02, 0.04, 0.06, 0.01]
PRIOR = [0.6, 0.3, 0.1]


@pytest.fixture(scope="module")
def unipolar():
    return make_unipolar(200_000, K, LF_CLASS, ALPHA, BETA, prior=PRIOR, seed=3)


@pytest.fixture(scope="module")
def fitted(unipolar):
    return make_label_model("class_conditional").fit(unipolar.L)


def test_default_is_class_conditional():
    assert DEFAULT_LABEL_MODEL == "class_conditional"


def test_recovers_firing_rates(unipolar, fitted):
    j = np.arange(len(LF_CLASS))
    np.testing.assert_allclose(fitted.alpha_[j, LF_CLASS], ALPHA, atol=0.03)
    np.testing.assert_allclose(fitted.beta_[j, LF_CLASS], BETA, atol=0.01)
    # an LF never votes another class: those rates are exactly zero
    other = np.ones((len(LF_CLASS), K), bool)
    other[j, LF_CLASS] = False
    assert (fitted.alpha_[other] == 0).all() and (fitted.beta_[other] == 0).all()


def test_recovers_skewed_class_balance_without_labels(unipolar, fitted):
    np.testing.assert_allclose(fitted.class_balance_, PRIOR, atol=0.03)
    assert fitted.class_balance_source_ == "estimated"


def test_near_bayes_oracle_and_beats_majority_vote(unipolar, fitted):
    y, k = unipolar.y, K
    acc = label_metrics(y, fitted.predict(unipolar.L, abstain="prior"), k)["accuracy"]
    oracle = label_metrics(y, unipolar.oracle_predict(), k)["accuracy"]
    mv = label_metrics(y, make_label_model("majority_vote").fit(unipolar.L).predict(unipolar.L, abstain="prior"),
                       k)["accuracy"]
    assert acc >= oracle - 0.005
    assert acc >= mv


def test_silence_is_evidence(unipolar, fitted):
    # one vote for class 1 by its weakest LF, everything else silent, versus the same vote plus silence being
    # impossible to ignore: the posterior of a lone vote must still favour the voted class over a flat prior ratio
    row = np.full((1, len(LF_CLASS)), -1)
    row[0, 5] = 1
    p = fitted.predict_proba(row)[0]
    assert p[1] / p[0] > fitted.class_balance_[1] / fitted.class_balance_[0]


def test_no_class_prior_collapses():
    # class 3 has no LF at all and class 2 only a weak one: priors stay above the floor, nothing collapses
    data = make_unipolar(20_000, 4, [0, 0, 1, 1, 2], [0.4, 0.3, 0.4, 0.3, 0.1], [0.05, 0.05, 0.05, 0.05, 0.08],
                         prior=[0.4, 0.3, 0.2, 0.1], seed=5)
    model = make_label_model("class_conditional").fit(data.L)
    assert model.class_balance_.min() >= model.min_class_prior / 4 - 1e-12
    assert model.class_balance_.max() < 0.7
    assert np.isfinite(model.predict_proba(data.L)).all()


def test_one_coin_lfs_stay_at_the_oracle():
    rng = np.random.default_rng(1)
    data = make_synthetic(100_000, 10, 3, prior=[0.7, 0.2, 0.1], accuracy=rng.uniform(0.55, 0.85, 10),
                          propensity=rng.uniform(0.2, 0.6, 10), seed=2)
    model = make_label_model("class_conditional").fit(data.L)
    acc = label_metrics(data.y, model.predict(data.L, abstain="prior"), 3)["accuracy"]
    oracle = label_metrics(data.y, data.oracle_predict(), 3)["accuracy"]
    assert acc >= oracle - 0.003
    np.testing.assert_allclose(model.class_balance_, [0.7, 0.2, 0.1], atol=0.02)
    np.testing.assert_allclose(model.lf_accuracies_, data.accuracies, atol=0.03)


def test_warm_start_and_dense_table_paths_agree(unipolar):
    full = make_label_model("class_conditional").fit(unipolar.L)
    sub = make_label_model("class_conditional", warm_start_records=50_000).fit(unipolar.L)
    sparse = make_label_model("class_conditional", dense_table_cells=1).fit(unipolar.L)
    np.testing.assert_allclose(sub.class_balance_, full.class_balance_, atol=0.01)
    np.testing.assert_allclose(sparse.predict_proba(unipolar.L),
                               full.predict_proba(unipolar.L), atol=1e-8)


def test_duplicated_lf_counted_once():
    rng = np.random.default_rng(4)
    acc = rng.uniform(0.55, 0.85, 10)
    acc[0] = 0.4
    data = make_synthetic(50_000, 10, 3, prior=[0.7, 0.2, 0.1], accuracy=acc, propensity=rng.uniform(0.2, 0.6, 10),
                          n_copies=5, seed=4)
    model = make_label_model("class_conditional").fit(data.L)
    acc_model = label_metrics(data.y, model.predict(data.L, abstain="prior"), 3)["accuracy"]
    oracle = label_metrics(data.y, data.oracle_predict(), 3)["accuracy"]
    assert acc_model >= oracle - 0.005


def test_given_class_balance_is_used(unipolar):
    model = make_label_model("class_conditional").fit(unipolar.L, class_balance="uniform")
    np.testing.assert_allclose(model.class_balance_, 1 / 3)


@pytest.mark.parametrize("params", [{"prior_strength": -1}, {"balance_strength": -1}, {"min_class_prior": 1.0},
                                    {"max_iter": 0}, {"tol": 0}, {"warm_start_records": 10}])
def test_parameter_validation(params):
    with pytest.raises(ConfigError):
        make_label_model("class_conditional", **params)
