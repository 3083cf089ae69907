"""Perplexity under a word n-gram model of a reference corpus (Kneser-Ney, as in CCNet's KenLM filter).

Fit on a reference corpus (the target, or a clean corpus such as Wikipedia), then score records: ``ngram_logp`` is
the mean natural-log probability per prediction (every token, then ``</s>``), higher is more like the reference;
``ngram_ppl`` is ``exp(-ngram_logp)``. Records with no tokens (empty or whitespace-only text, null) get NaN in both
columns: one ``</s>`` prediction is no evidence about the text, and selectors rank NaN last.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.io.atomic import write_json
from thresher.lm.ngram import KneserNeyConfig, KneserNeyLM, Texts


@dataclass(frozen=True)
class NgramPerplexityConfig:
    """order: n-gram order of the model (1..5). discount: ``"auto"`` (modified Kneser-Ney) or a fixed discount in
    (0, 1]. tokenizer, lowercase: as in :class:`HashedNgramConfig`.
    """

    order: int = 3
    discount: str | float = "auto"
    tokenizer: str = "wordpunct"
    lowercase: bool = True

    def __post_init__(self) -> None:
        self.lm_config()  # validates

    def lm_config(self) -> KneserNeyConfig:
        return KneserNeyConfig(order=self.order, discount=self.discount, tokenizer=self.tokenizer,
                               lowercase=self.lowercase)


def mean_log_prob(total: np.ndarray, n_predictions: np.ndarray) -> np.ndarray:
    """Mean log probability per prediction, NaN for records without tokens (only their ``</s>`` predicted)."""
    out = np.full(len(total), np.nan)
    has_tokens = n_predictions > 1
    out[has_tokens] = total[has_tokens] / n_predictions[has_tokens]
    return out


class NgramPerplexityScorer:
    """Fit a Kneser-Ney LM on reference texts, then score batches with ``ngram_logp`` and ``ngram_ppl``."""

    def __init__(self, config: NgramPerplexityConfig | None = None):
        self.config = config or NgramPerplexityConfig()
        self.lm_: KneserNeyLM | None = None

    def fit(self, reference_texts: Texts) -> NgramPerplexityScorer:
        """Train the LM on the reference corpus: an iterable of Arrow string batches (or one array)."""
        self.lm_ = KneserNeyLM(self.config.lm_config()).fit(reference_texts)
        return self

    def score(self, text: pa.Array | pa.ChunkedArray) -> dict[str, np.ndarray]:
        """``ngram_logp`` (mean log prob per prediction) and ``ngram_ppl`` for a batch; NaN for empty texts."""
        if self.lm_ is None:
            raise ConfigError("NgramPerplexityScorer.score called before fit")
        logp = mean_log_prob(*self.lm_.log_prob(text))
        return {"ngram_logp": logp, "ngram_ppl": np.exp(-logp)}

    def save(self, path: str | os.PathLike) -> None:
        """Write the config and the LM into directory ``path``."""
        if self.lm_ is None:
            raise ConfigError("NgramPerplexityScorer.save called before fit")
        path = Path(path)
        self.lm_.save(path / "lm")
        write_json({"scorer": "ngram_perplexity", "config": asdict(self.config)}, path / "perplexity.json")

    @classmethod
    def load(cls, path: str | os.PathLike) -> NgramPerplexityScorer:
        """A scorer written by :meth:`save`."""
        path = Path(path)
        meta = json.loads((path / "perplexity.json").read_text())
        scorer = cls(NgramPerplexityConfig(**meta["config"]))
        scorer.lm_ = KneserNeyLM.load(path / "lm")
        return scorer

    def get_params(self) -> dict:
        return asdict(self.config)
