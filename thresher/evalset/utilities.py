"""subset2evaluate's item utilities (Zouhar et al., 2025), for selectors that take the ``budget`` items of highest
utility: ``variance`` of the seen systems' scores on the item, ``consistency`` (Kendall tau-c between the systems'
scores on the item and their full-set scores: items that rank the systems as the whole set does) and ``diffdisc``
(a 2PL model's discrimination times difficulty: hard items that separate well).

Computed from the seen systems' scores only, so they work on any table; subset2evaluate's selectors that need the
systems' outputs or source texts (diversity, k-means on embeddings) are not among them.
"""

from __future__ import annotations

import numpy as np

from thresher.evalset.irt import IRT2PL


def variance(scores: np.ndarray) -> np.ndarray:
    """Each item's variance over the seen systems."""
    return np.asarray(scores, dtype=np.float64).var(axis=1)


def consistency(scores: np.ndarray, block: int = 2048) -> np.ndarray:
    """Each item's Kendall tau-c between its scores and the systems' full-set scores (0 for a constant item), as
    subset2evaluate's metric consistency; vectorised over blocks of items."""
    x = np.asarray(scores, dtype=np.float64)
    n, s = x.shape
    means = x.mean(axis=0)
    order_y = np.sign(means[:, None] - means[None, :])
    out = np.zeros(n)
    for a in range(0, n, block):
        part = x[a:a + block]
        concordance = (np.sign(part[:, :, None] - part[:, None, :]) * order_y[None]).sum(axis=(1, 2)) / 2
        sorted_part = np.sort(part, axis=1)
        distinct_x = 1 + (np.diff(sorted_part, axis=1) != 0).sum(axis=1)
        m = np.minimum(distinct_x, len(np.unique(means)))
        denominator = s * s * (m - 1) / np.maximum(m, 1)
        out[a:a + block] = np.divide(2 * concordance, denominator, out=np.zeros(len(part)), where=denominator > 0)
    return out


def diffdisc(model: IRT2PL) -> np.ndarray:
    """Each item's discrimination times difficulty under a 2PL fit (highest: hard and sharply separating)."""
    return model.a * model.b


def top(utility: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """The ``budget`` items of highest utility, best first; ties (many, on 0/1 tables) broken at random, as the
    order of a table's rows often follows something (source, length, label) that should not decide."""
    return np.lexsort((rng.permutation(len(utility)), -np.asarray(utility)))[:budget]
