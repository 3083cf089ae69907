"""What a selection is measured by, against a held-out sample of the target: one function per metric.

Each function takes the selected row indices and returns the raw per-seed material the resampling needs
(per-held-out-item values, or counts), so intervals can be built by :mod:`thresher.evaluate.resampling`.

- ``kl``: KL(held-out || selection) on hashed n-grams (lower is better; random minus method is DSIR's KL reduction).
- ``precision``: share of selected records whose label column equals the target's label (evaluation only).
- ``coverage``: mean over held-out items of the cosine distance to the nearest selected record (lower is better).
- ``lm``: held-out perplexity of a Kneser-Ney n-gram LM trained on the selection (lower is better); when the
  held-out sample has several groups, also per group, and with blend weights the blended ``target_loss``.
- ``classify``: accuracy and macro-F1 on held-out labelled items of a linear classifier trained on the selection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from thresher.evaluate.distribution import smoothed_distribution
from thresher.evaluate.resampling import MetricDraws, beta_draws, debias, item_draws

#: Every built-in metric, and whether higher is better.
METRICS: dict[str, bool] = {
    "kl_to_heldout": False,
    "precision": True,
    "coverage_distance": False,
    "heldout_perplexity": False,
    "target_loss": False,
    "proxy_accuracy": True,
    "proxy_macro_f1": True,
}
#: The metric families ``--metrics`` accepts and the metrics each produces.
FAMILIES: dict[str, tuple[str, ...]] = {
    "kl": ("kl_to_heldout",),
    "precision": ("precision",),
    "coverage": ("coverage_distance",),
    "lm": ("heldout_perplexity", "target_loss"),
    "classify": ("proxy_accuracy", "proxy_macro_f1"),
}


@dataclass
class EvalData:
    """Everything the metrics read, in memory: the pool's features and the held-out sample's."""

    pool_text: pa.Array
    pool_counts: object  # scipy CSR, records x buckets
    n_words: np.ndarray
    heldout_text: pa.Array
    heldout_counts: object  # scipy CSR, held-out items x buckets
    groups: np.ndarray | None = None  # group per pool record (stratified baseline, composition)
    labels: np.ndarray | None = None  # evaluation-only label per pool record
    positive: str | None = None  # the label that counts as on-target for precision
    heldout_labels: np.ndarray | None = None
    pool_emb: np.ndarray | None = None  # unit-norm rows
    heldout_emb: np.ndarray | None = None
    lm_order: int = 3
    pool_tokens: np.ndarray | None = None  # wordpunct tokens per record (length floor)
    lm_vocab_size: int | None = None  # one vocabulary for every proxy LM (see common_vocabulary_size)
    heldout_parts: np.ndarray | None = None  # a code per held-out item (its group), when it has several
    heldout_part_names: list[str] | None = None
    heldout_blend: dict[str, float] | None = None  # target weights over the parts: the blended target_loss

    @property
    def n_items(self) -> int:
        return len(self.heldout_text)


class HeldoutKL:
    """KL(held-out || selection) for every bootstrap replicate of the held-out items at once."""

    def __init__(self, data: EvalData, weights: np.ndarray):
        h = data.heldout_counts
        self.num_buckets = h.shape[1]
        full = np.asarray(h.sum(axis=0)).ravel()
        self.p_full = smoothed_distribution(full)
        reps = np.asarray((h.T @ weights.T).T)  # B x buckets: held-out counts of each replicate
        self.p = (reps + 1.0) / (reps.sum(axis=1, keepdims=True) + self.num_buckets)
        self.entropy = np.sum(self.p * np.log(self.p), axis=1)
        self.pool_counts = data.pool_counts

    def log_q(self, rows: np.ndarray) -> np.ndarray:
        """Log of the selection's smoothed bucket distribution."""
        counts = np.asarray(self.pool_counts[rows].sum(axis=0)).ravel()
        return np.log(smoothed_distribution(counts))

    def draws(self, per_seed_rows: list[np.ndarray]) -> MetricDraws:
        log_qs = np.stack([self.log_q(r) for r in per_seed_rows], axis=1)  # buckets x seeds
        draws = self.entropy[:, None] - self.p @ log_qs
        points = np.sum(self.p_full * np.log(self.p_full)) - self.p_full @ log_qs
        values = [float(v) for v in points]
        return MetricDraws(debias(draws, values), values, METRICS["kl_to_heldout"], "bootstrap-2level")


def precision_draws(data: EvalData, per_seed_rows: list[np.ndarray], n_boot: int, seed: int,
                    stream: int) -> MetricDraws:
    """Beta-posterior replicates of the on-target share of each seed's selection; ``stream`` gives every method and
    budget its own random draws (shared draws would correlate method and baseline and narrow the intervals)."""
    hits = [int(np.sum(data.labels[r] == data.positive)) for r in per_seed_rows]
    draws, points = beta_draws(hits, [len(r) for r in per_seed_rows], n_boot, [seed, stream])
    return MetricDraws(draws, points, METRICS["precision"], "beta")


def coverage_values(data: EvalData, rows: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Per held-out item, the cosine distance to its nearest selected record."""
    best = np.full(data.n_items, -np.inf, dtype=np.float32)
    for start in range(0, len(rows), chunk):
        sims = data.heldout_emb @ data.pool_emb[rows[start:start + chunk]].T
        np.maximum(best, sims.max(axis=1), out=best)
    return (1.0 - best).astype(np.float64)


def common_vocabulary_size(pool_text: pa.Array, heldout_text: pa.Array, order: int = 3) -> int:
    """Distinct tokens of pool and held-out sample, plus ``</s>`` and ``<unk>``: the one vocabulary all proxy LMs
    spread their unseen-word mass over.

    Perplexities are only comparable over the same vocabulary. Left to itself, a Kneser-Ney LM spreads that mass
    over the tokens *it* saw, so an LM trained on a tiny, repetitive selection gives unseen held-out words a large
    share each and reaches a low perplexity while predicting nothing.
    """
    from thresher.lm.ngram import KneserNeyConfig

    featurizer = KneserNeyConfig(order=order).featurizer()
    seen = [np.unique(featurizer.token_hashes(text.slice(start, 8192))[0])
            for text in (pool_text, heldout_text) for start in range(0, len(text), 8192)]
    return int(len(np.unique(np.concatenate(seen)))) + 2


def lm_values(data: EvalData, rows: np.ndarray) -> np.ndarray:
    """Per held-out item: [negative log-likelihood in nats, tokens] under an n-gram LM trained on the selection,
    over the evaluation's common vocabulary."""
    from thresher.lm.ngram import KneserNeyConfig, KneserNeyLM

    lm = KneserNeyLM(KneserNeyConfig(order=data.lm_order)).fit(data.pool_text.take(pa.array(rows)))
    if data.lm_vocab_size is not None:
        lm.vocab_size_ = max(lm.vocab_size_, data.lm_vocab_size)
    logp, n_tokens = lm.log_prob(data.heldout_text)
    return np.stack([-np.asarray(logp, dtype=np.float64), np.asarray(n_tokens, dtype=np.float64)], axis=1)


def classify_values(data: EvalData, rows: np.ndarray, classes: list[str]) -> np.ndarray:
    """Per held-out item, one-hot of (true class, predicted class) from a softmax classifier on embeddings."""
    from thresher.evaluate.proxies import fit_classifier

    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index.get(v, -1) for v in data.labels[rows]])
    keep = y >= 0
    model = fit_classifier(data.pool_emb[rows][keep].astype(np.float64), y[keep], len(classes))
    pred = model.predict(data.heldout_emb.astype(np.float64))
    true = np.array([index.get(v, -1) for v in data.heldout_labels])
    k = len(classes)
    onehot = np.zeros((data.n_items, k * k))
    ok = true >= 0
    onehot[np.flatnonzero(ok), true[ok] * k + pred[ok]] = 1.0
    return onehot


def accuracy_statistic(k: int):
    """Accuracy from summed (true, predicted) one-hots: the diagonal's share."""
    diag = np.arange(k) * k + np.arange(k)
    return lambda s: s[..., diag].sum(axis=-1) / np.maximum(s.sum(axis=-1), 1e-12)


def macro_f1_statistic(k: int):
    """Macro-F1 over classes present in the held-out replicate, from summed (true, predicted) one-hots."""
    def stat(s: np.ndarray) -> np.ndarray:
        conf = s.reshape(*s.shape[:-1], k, k)
        tp = np.diagonal(conf, axis1=-2, axis2=-1)
        support = conf.sum(axis=-1)
        predicted = conf.sum(axis=-2)
        f1 = np.where(support + predicted > 0, 2 * tp / np.maximum(support + predicted, 1e-12), 0.0)
        present = support > 0
        return (f1 * present).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)
    return stat


def perplexity_statistic(s: np.ndarray) -> np.ndarray:
    """exp(total NLL / total tokens) of the summed [nll, tokens] columns."""
    return np.exp(s[..., 0] / np.maximum(s[..., 1], 1e-12))


def heldout_part_metrics(values: list[np.ndarray], parts: np.ndarray, names: list[str], weights: np.ndarray,
                         blend: dict[str, float] | None) -> dict[str, MetricDraws]:
    """Held-out perplexity per part of the held-out sample (``heldout_perplexity[news]``) and, with ``blend``, the
    blended target loss: the weighted mean over parts of each part's cross-entropy in nats per token.

    ``values`` are :func:`lm_values` per seed, ``parts`` a code per held-out item into ``names``. Each part is its
    own token-weighted mean, so a blend weighs a target by its weight, not by how many items it happened to have.
    """
    n_parts = len(names)
    cols = [np.zeros((len(v), 2 * n_parts)) for v in values]
    for v, c in zip(values, cols):
        c[np.arange(len(v)), 2 * parts] = v[:, 0]
        c[np.arange(len(v)), 2 * parts + 1] = v[:, 1]

    def loss(j: int):
        return lambda s: s[..., 2 * j] / np.maximum(s[..., 2 * j + 1], 1e-12)

    out: dict[str, MetricDraws] = {}
    sizes = np.bincount(parts, minlength=n_parts)
    for j, name in enumerate(names):
        if sizes[j] < 2:  # one item has no interval worth reporting
            continue
        out[f"heldout_perplexity[{name}]"] = item_metric(cols, weights, lambda s, j=j: np.exp(loss(j)(s)), False)
    if blend:
        w = np.array([blend.get(name, 0.0) for name in names], dtype=np.float64)
        w = w / w.sum()
        blended = [loss(j) for j in range(n_parts)]
        out["target_loss"] = item_metric(
            cols, weights, lambda s: sum(w[j] * blended[j](s) for j in range(n_parts) if w[j] > 0), False)
    return out


def mean_statistic(n_items: int):
    """Plain mean over held-out items (replicates keep n_items items)."""
    return lambda s: s[..., 0] / n_items


def item_metric(per_seed: list[np.ndarray], weights: np.ndarray, statistic, higher_is_better: bool) -> MetricDraws:
    """Replicates of an item-level metric from its per-seed item values."""
    draws, points = item_draws(per_seed, weights, statistic)
    return MetricDraws(draws, points, higher_is_better, "bootstrap-2level")


def describe_selection(data: EvalData, rows: np.ndarray) -> dict:
    """Composition by group and length quantiles of one selection (descriptive; no verdicts)."""
    words = data.n_words[rows]
    out: dict = {"records": int(len(rows)), "words": int(words.sum()),
                 "words_per_record": {"p5": float(np.percentile(words, 5)), "median": float(np.median(words)),
                                      "mean": float(words.mean()), "p95": float(np.percentile(words, 95))}}
    if data.groups is not None:
        names, counts = np.unique(data.groups[rows].astype(str), return_counts=True)
        out["composition"] = {str(n): int(c) for n, c in zip(names, counts)}
    return out
