"""Does a fitted label model describe the votes? Two checks that need no gold labels.

Every generative label model here assumes LFs vote independently given the true class. Real keyword LF sets break
that: LFs for one class fire together on the same off-class records (crude-oil LFs on every oil-company story), and
EM reads their agreement as accuracy. The model then overrules plain majorities with confidence it has not earned:
on SpamAssassin e-mail the class-conditional model overturned 15% of the decisive majorities, and 95% of those
majorities were right (issue 16). Two unsupervised signals tell such a model from one that fits:

* ``cofiring_misfit``: the model predicts how often every pair of LFs co-fires; Pearson's χ² per (LF, class) pair
  cell compares that with what the votes show. Under the model's own assumptions it averages below 1 (0.66-0.77 on
  the synthetic scenarios of bench/bench_label_synthetic.py); on the eleven real LF sets it is 2.5-52.
* ``vote_class_balance``: the class distribution of the majority-vote labels, with a sampling interval. It needs no
  independence assumption, so it is the fallback class balance and the yardstick the model's own estimate is
  compared with.
"""

from __future__ import annotations

import numpy as np

from thresher.label.matrix import LabelMatrix
from thresher.label.models.base import onehot
from thresher.label.models.majority import vote_scores

#: at most this many (LF, class) columns enter the co-firing check (the most voted): its table is columns²
MAX_CHECK_COLUMNS = 1000


def vote_class_balance(L: LabelMatrix, weights: np.ndarray | None = None,
                       z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Class shares of the majority-vote labels of the records with votes (ties split evenly, add-one smoothed),
    and a (2, k) normal-approximation interval for each share (sampling noise only, not the LFs' bias)."""
    scores = vote_scores(L, weights)
    covered = scores.max(axis=1) > 0
    top = scores[covered] >= scores[covered].max(axis=1, keepdims=True) - 1e-12
    shares = (top / top.sum(axis=1, keepdims=True)).sum(axis=0)
    n = float(covered.sum())
    k = L.n_classes
    balance = (shares + 1.0) / (n + k)
    half = z * np.sqrt(balance * (1 - balance) / max(n, 1.0))
    return balance, np.vstack([np.clip(balance - half, 0, 1), np.clip(balance + half, 0, 1)])


def cofiring_misfit(L: LabelMatrix, prior: np.ndarray, fire_on: np.ndarray, fire_off: np.ndarray,
                    groups: np.ndarray, min_expected: float = 5.0) -> float:
    """Mean Pearson χ² per cell of the (LF a votes c, LF b votes d) co-firing table, model vs votes.

    ``fire_on[j, c]`` = P(LF j votes c | y = c), ``fire_off[j, c]`` = P(LF j votes c | y ≠ c) (the class-conditional
    model's α and β). Pairs of LFs in one correlated group are skipped (the models already count those once), and so
    are cells the model expects fewer than ``min_expected`` records in. 0.0 when no cell qualifies.
    """
    n, m, k = L.n_records, L.n_lfs, L.n_classes
    A = onehot(L)
    columns = np.arange(m * k)
    votes_per_column = np.asarray(A.sum(axis=0)).ravel()
    if len(columns) > MAX_CHECK_COLUMNS:
        columns = np.sort(np.argsort(-votes_per_column, kind="stable")[:MAX_CHECK_COLUMNS])
    A = A[:, columns]
    observed = (A.T @ A).toarray()
    # P(column's LF votes its class | y) for every class y: α when y is that class, β otherwise
    voted_class = columns % k
    mu = np.repeat(fire_off.ravel()[columns][None, :], k, axis=0)
    mu[voted_class, np.arange(len(columns))] = fire_on.ravel()[columns]
    expected = n * (mu.T * prior[None, :]) @ mu
    lf = columns // k
    same_group = groups[lf][:, None] == groups[lf][None, :]
    cells = np.triu(~same_group, 1) & (expected >= min_expected)
    if not cells.any():
        return 0.0
    chi = (observed[cells] - expected[cells]) ** 2 / expected[cells]
    return float(chi.mean())


#: total-variation distance between EM's class balance and the votes' above which the label job warns
BALANCE_WARNING_DISTANCE = 0.1


def describe_fit(model, classes: list[str]) -> dict | None:
    """The fit check of a fitted model, for the run manifest: χ² per cell, whether the votes anchor the model (and
    that in words, for the summary and the report), EM's class balance beside the votes' (with its interval), and a
    warning when they are far apart; None for models without a check."""
    if not hasattr(model, "misfit_"):
        return None
    em, votes = model.em_class_balance_, model.vote_class_balance_
    distance = float(0.5 * np.abs(em - votes).sum())
    out = {"misfit": round(float(model.misfit_), 4), "misfit_threshold": float(model.misfit_threshold),
           "anchored": bool(model.anchored_), "anchor": model.anchor,
           "em_class_balance": [round(float(v), 4) for v in em],
           "vote_class_balance": [round(float(v), 4) for v in votes],
           "vote_class_balance_interval": [[round(float(v), 4) for v in row]
                                           for row in model.vote_class_balance_interval_.T],
           "balance_distance": round(distance, 4), "warning": None,
           "verdict": ("the LFs co-fire more than the model assumes, so the majority vote decides and the model "
                       "breaks its ties" if model.anchored_ else "the LFs co-fire as the model assumes")}
    if distance > BALANCE_WARNING_DISTANCE and model.class_balance_source_ == "estimated":
        show = ", ".join(f"{c} {a:.2f} vs {b:.2f}" for c, a, b in zip(classes, em, votes))
        out["warning"] = (f"the label model's class balance from EM is far from the majority vote's (total "
                          f"variation {distance:.2f}: {show}). One class's LFs probably fire together or cover far "
                          "more; " + ("the model is anchored on the votes and uses their balance. " if model.anchored_
                                      else "") + "If you know the balance, pass it (--class-balance), or label a "
                          "dev set and use --class-balance dev.")
    return out
