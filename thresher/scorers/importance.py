"""DSIR importance scorer: log importance weight of each record toward a target, on hashed n-gram features.

Target and pool are each modelled as a bag of hashed n-grams with additive smoothing; a record's raw log importance
weight is ``sum over its n-grams of log p_target(bucket) - log p_pool(bucket)`` (Xie et al., 2023).

Length correction. That sum grows with the number of n-grams, so its scale depends on length: long records get
extreme weights in both directions, and with importance resampling the longest target-like records crowd out the
rest; very short records, whose few n-grams can land in target-heavy buckets by hash collision, get noisy weights.
thresher's default ``length_norm="ref"`` scores each record by its *mean* log ratio per n-gram (length-independent)
times a reference length ``L`` (the median n-gram count of target records): the log weight the record would get
at a typical target length. Records shorter than ``shrink`` n-grams are shrunk toward the pool's average log ratio
(a pseudo-count prior), which removes the collision noise of very short records. ``length_norm="none"`` gives DSIR's
original weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer, NgramFeatures

LENGTH_NORMS = ("ref", "none", "mean")


@dataclass(frozen=True)
class ImportanceConfig:
    """smoothing: pseudo-count added to every bucket of both distributions.
    length_norm: ``ref`` (mean log ratio x reference length; default), ``mean`` (per n-gram) or ``none`` (DSIR).
    shrink: prior strength in n-grams toward the pool's mean log ratio (``ref`` and ``mean`` only; 0 disables).
    """

    smoothing: float = 1.0
    length_norm: str = "none"
    shrink: float = 20.0

    def __post_init__(self) -> None:
        if self.smoothing <= 0:
            raise ConfigError(f"smoothing must be > 0, got {self.smoothing}")
        if self.length_norm not in LENGTH_NORMS:
            raise ConfigError(f"length_norm must be one of {LENGTH_NORMS}, got {self.length_norm!r}")
        if self.shrink < 0:
            raise ConfigError(f"shrink must be >= 0, got {self.shrink}")


class ImportanceScorer:
    """Fit on bucket counts of target and pool, then score feature batches (scikit-learn style fit/score)."""

    def __init__(self, config: ImportanceConfig | None = None):
        self.config = config or ImportanceConfig()
        self.log_ratio_: np.ndarray | None = None

    def fit(self, target_counts: np.ndarray, pool_counts: np.ndarray, target_lengths: np.ndarray) -> ImportanceScorer:
        """Estimate both smoothed bucket distributions; ``target_lengths`` are n-gram counts of target records."""
        target_counts = np.asarray(target_counts, dtype=np.float64)
        pool_counts = np.asarray(pool_counts, dtype=np.float64)
        if target_counts.sum() == 0:
            raise ConfigError("the target has no n-grams: give a non-empty target")
        a = self.config.smoothing
        log_t = np.log(target_counts + a) - np.log(target_counts.sum() + a * len(target_counts))
        log_p = np.log(pool_counts + a) - np.log(pool_counts.sum() + a * len(pool_counts))
        self.log_ratio_ = log_t - log_p
        # The pool's average log ratio per n-gram: where a record with no evidence is shrunk to.
        self.prior_ = float(np.exp(log_p) @ self.log_ratio_)
        self.ref_length_ = float(np.median(target_lengths)) if len(target_lengths) else 1.0
        return self

    def score(self, features: NgramFeatures) -> dict[str, np.ndarray]:
        """Score columns for a batch: ``dsir`` (the selection score), ``dsir_logw`` (DSIR's raw log weight)."""
        if self.log_ratio_ is None:
            raise ConfigError("ImportanceScorer.score called before fit")
        raw = features.weighted_sum(self.log_ratio_)
        n = features.n_ngrams().astype(np.float64)
        if self.config.length_norm == "none":
            score = raw
        else:
            k = self.config.shrink
            mean = (raw + k * self.prior_) / np.maximum(n + k, 1e-12)
            score = mean * self.ref_length_ if self.config.length_norm == "ref" else mean
        return {"dsir": score, "dsir_logw": raw}

    def get_params(self) -> dict:
        return asdict(self.config)


class DsirTextScorer:
    """DSIR as a pipeline scorer: fit on target texts and a pool sample (which estimates the pool's n-gram
    distribution; ``thresher select --method dsir`` counts the whole pool instead), then score raw texts."""

    def __init__(self, num_buckets: int = 10_000, ngrams: int = 2, tokenizer: str = "wordpunct",
                 smoothing: float = 1.0, length_norm: str = "none", shrink: float = 20.0):
        self.features = HashedNgramConfig(num_buckets=num_buckets, ngrams=ngrams, tokenizer=tokenizer)
        self.scorer = ImportanceScorer(ImportanceConfig(smoothing=smoothing, length_norm=length_norm, shrink=shrink))

    def fit(self, target: pa.Array, pool_sample: pa.Array) -> DsirTextScorer:
        featurizer = HashedNgramFeaturizer(self.features)
        t, p = featurizer.transform(target), featurizer.transform(pool_sample)
        nb = self.features.num_buckets
        self.scorer.fit(t.counts(nb), p.counts(nb), t.n_ngrams())
        return self

    def score(self, text: pa.Array | pa.ChunkedArray) -> dict[str, np.ndarray]:
        """``dsir`` and ``dsir_logw`` per record (see :meth:`ImportanceScorer.score`)."""
        return self.scorer.score(HashedNgramFeaturizer(self.features).transform(text))
