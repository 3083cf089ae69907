"""CoLoR-Filter (Brandfonbrener et al., 2024, "Conditional Loss Reduction Filtering for Targeted Language Model
Pre-training") with Kneser-Ney n-gram models in place of the two auxiliary transformers.

The paper trains a *prior* model on a sample of the pool and a *conditional* model, the prior fine-tuned on the
target, and selects the records with the largest conditional loss reduction,
``-log p(x | prior) - (-log p(x | conditional))``. An n-gram model cannot be fine-tuned, so the conditional model is
trained on the pool sample and the target together (``conditional="pool+target"``, the default), or on the target
alone (``conditional="target"``, which makes the score a log-likelihood ratio of target and pool models, closer to
Moore-Lewis cross-entropy difference).

Columns: ``color_prior_loss`` and ``color_cond_loss``, mean negative log probability per prediction (every token,
then ``</s>``) under each model, and ``color_score`` = prior loss - conditional loss: higher means the target
explains the record better. Losses are per prediction, not summed (the paper scores fixed-length sequences, where
the two agree), so long records are not favoured for their length. Records with no tokens get NaN in all three.

Score records that are not in the pool sample if you can: an n-gram model remembers its training text, so records
of the sample get low losses under both models and a compressed score.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.io.atomic import write_json
from thresher.lm.ngram import KneserNeyConfig, KneserNeyLM, NgramCounts, Texts
from thresher.scorers.perplexity import mean_log_prob

CONDITIONALS = ("pool+target", "target")


@dataclass(frozen=True)
class ColorFilterConfig:
    """order, discount, tokenizer, lowercase: the two n-gram models (see :class:`KneserNeyConfig`).
    conditional: what the conditional model is trained on, ``pool+target`` (default) or ``target``.
    """

    order: int = 3
    discount: str | float = "auto"
    conditional: str = "pool+target"
    tokenizer: str = "wordpunct"
    lowercase: bool = True

    def __post_init__(self) -> None:
        if self.conditional not in CONDITIONALS:
            raise ConfigError(f"conditional must be one of {CONDITIONALS}, got {self.conditional!r}")
        self.lm_config()  # validates

    def lm_config(self) -> KneserNeyConfig:
        return KneserNeyConfig(order=self.order, discount=self.discount, tokenizer=self.tokenizer,
                               lowercase=self.lowercase)


def _batches(texts: Texts) -> Iterable[pa.Array | pa.ChunkedArray]:
    return [texts] if isinstance(texts, pa.Array | pa.ChunkedArray) else texts


class ColorFilterScorer:
    """Fit a prior and a conditional n-gram LM, then score batches with the conditional loss reduction."""

    def __init__(self, config: ColorFilterConfig | None = None):
        self.config = config or ColorFilterConfig()
        self.prior_: KneserNeyLM | None = None
        self.conditional_: KneserNeyLM | None = None

    def fit(self, pool_sample_texts: Texts, target_texts: Texts) -> ColorFilterScorer:
        """Train both models; each argument is an iterable of Arrow string batches (or one array). The pool sample
        is read once: its counts serve the prior and, merged with the target's, the conditional model."""
        cfg = self.config.lm_config()
        pool = NgramCounts(cfg)
        for batch in _batches(pool_sample_texts):
            pool.add(batch)
        target = NgramCounts(cfg)
        for batch in _batches(target_texts):
            target.add(batch)
        if target.n_records == 0:
            raise ConfigError("the target is empty: CoLoR-Filter needs target texts")
        self.prior_ = KneserNeyLM(cfg).fit_counts(pool)
        cond = pool.merge(target) if self.config.conditional == "pool+target" else target
        self.conditional_ = KneserNeyLM(cfg).fit_counts(cond)
        return self

    def score(self, text: pa.Array | pa.ChunkedArray) -> dict[str, np.ndarray]:
        """``color_score``, ``color_prior_loss``, ``color_cond_loss`` for a batch (tokenised once for both)."""
        if self.prior_ is None:
            raise ConfigError("ColorFilterScorer.score called before fit")
        hashes, offsets = self.prior_._featurizer.token_hashes(text)
        prior = -mean_log_prob(*self.prior_.log_prob_hashes(hashes, offsets))
        cond = -mean_log_prob(*self.conditional_.log_prob_hashes(hashes, offsets))
        return {"color_score": prior - cond, "color_prior_loss": prior, "color_cond_loss": cond}

    def save(self, path: str | os.PathLike) -> None:
        """Write the config and both LMs into directory ``path``."""
        if self.prior_ is None:
            raise ConfigError("ColorFilterScorer.save called before fit")
        path = Path(path)
        self.prior_.save(path / "prior")
        self.conditional_.save(path / "conditional")
        write_json({"scorer": "color_filter", "config": asdict(self.config)}, path / "color_filter.json")

    @classmethod
    def load(cls, path: str | os.PathLike) -> ColorFilterScorer:
        """A scorer written by :meth:`save`."""
        path = Path(path)
        meta = json.loads((path / "color_filter.json").read_text())
        scorer = cls(ColorFilterConfig(**meta["config"]))
        scorer.prior_ = KneserNeyLM.load(path / "prior")
        scorer.conditional_ = KneserNeyLM.load(path / "conditional")
        return scorer

    def get_params(self) -> dict:
        return asdict(self.config)
