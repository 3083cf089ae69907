"""Distribution metrics on hashed n-gram counts: KL divergence to the target and DSIR's KL reduction."""

from __future__ import annotations

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


def composition(groups: np.ndarray, selected: np.ndarray, random: np.ndarray | None = None) -> list[dict]:
    """Share of each group in the pool, the selection and (optionally) the random sample; largest pool share first."""
    labels, pool_counts = np.unique(groups, return_counts=True)
    sel = dict(zip(*np.unique(groups[selected], return_counts=True)))
    rnd = dict(zip(*np.unique(groups[random], return_counts=True))) if random is not None else {}
    rows = []
    for label, n in sorted(zip(labels, pool_counts), key=lambda t: (-t[1], str(t[0]))):
        row = {"group": None if label is None else str(label), "pool": int(n), "pool_share": n / len(groups),
               "selected": int(sel.get(label, 0)), "selected_share": sel.get(label, 0) / max(len(selected), 1)}
        if random is not None:
            row.update(random=int(rnd.get(label, 0)), random_share=rnd.get(label, 0) / max(len(random), 1))
        rows.append(row)
    return rows
