"""Distribution metrics on hashed n-gram counts: KL divergence to the target and DSIR's KL reduction."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def smoothed_distribution(counts: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """Counts plus ``smoothing`` per bucket, normalised: every bucket gets non-zero mass."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts + smoothing) / (counts.sum() + smoothing * len(counts))


def kl_divergence(p_counts: np.ndarray, q_counts: np.ndarray, smoothing: float = 1.0) -> float:
    """KL(p || q) in nats between two add-``smoothing`` bucket distributions."""
    p = smoothed_distribution(p_counts, smoothing)
    q = smoothed_distribution(q_counts, smoothing)
    return float(np.sum(p * (np.log(p) - np.log(q))))


def kl_reduction(target_counts: np.ndarray, selected_counts: np.ndarray, random_counts: np.ndarray,
                 smoothing: float = 1.0) -> dict[str, float]:
    """DSIR's KL reduction: KL(target || random sample) - KL(target || selection), same budget and seed.

    Positive means the selection is closer to the target than a random sample of the same size.
    """
    kl_sel = kl_divergence(target_counts, selected_counts, smoothing)
    kl_rand = kl_divergence(target_counts, random_counts, smoothing)
    return {"kl_target_selected": kl_sel, "kl_target_random": kl_rand, "kl_reduction": kl_rand - kl_sel}


def composition(pool: Mapping, selected: Mapping, random: Mapping | None, n_pool: int,
                            n_selected: int, n_random: int) -> list[dict]:
    """Share of each group (records per group given) in the pool, the selection and (optionally) the random
    sample; largest pool share first."""
    rows = []
    for label, n in sorted(pool.items(), key=lambda t: (-t[1], str(t[0]))):
        row = {"group": None if label is None else str(label), "pool": int(n), "pool_share": n / n_pool,
               "selected": int(selected.get(label, 0)), "selected_share": selected.get(label, 0) / max(n_selected, 1)}
        if random is not None:
            row.update(random=int(random.get(label, 0)), random_share=random.get(label, 0) / max(n_random, 1))
        rows.append(row)
    return rows
