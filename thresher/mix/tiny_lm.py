"""A small neural LM as a mixing proxy (``thresher mix --proxy tiny_lm``): a transformer of a few hundred thousand
parameters (configurable up to millions), trained for a fixed number of steps on a CPU in seconds, where the n-gram
proxy only counts.

Tokens are the n-gram proxy's word hashes (:mod:`thresher.lm.ngram`), mapped to ids by one vocabulary shared by
every run: the ``vocab_size`` most frequent hashes of all runs' training records (ties by hash), plus ``<unk>`` and
``</s>`` (which ends every record). The model is a causal transformer (token and position embeddings, ``layers``
pre-norm blocks of ``heads`` attention heads, an output layer tied to the token embeddings). Each run trains on its
own records for ``steps`` AdamW steps of ``batch`` windows of ``context`` tokens at seeded random offsets of its
token stream, then reports cross-entropy (nats per token, ``</s>`` included, ``<unk>`` a class of its own) on each
evaluation set. The seed, one thread per task and the fixed schedule make a run the same on any worker or engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError


@dataclass(frozen=True)
class TinyLMConfig:
    """The proxy's size and schedule. The defaults (about 0.36M parameters, 150 steps of 16 x 64 tokens) take about
    10 s per run on one CPU thread; a 1M-parameter model (``vocab_size=4096, dim=128``) about 17 s, and the output
    layer over the vocabulary dominates the cost."""

    vocab_size: int = 4096
    dim: int = 64
    layers: int = 2
    heads: int = 4
    context: int = 64
    steps: int = 150
    batch: int = 16
    lr: float = 3e-3
    online_eval_tokens: int = 4096  # online methods measure the first this-many tokens of each set, every round
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dim % self.heads or min(self.vocab_size, self.dim, self.layers, self.heads, self.context, self.steps,
                                        self.batch, self.online_eval_tokens) < 1:
            raise ConfigError(f"tiny_lm: positive sizes with dim divisible by heads, got {self}")


def build_vocabulary(hashes: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` most frequent token hashes (ties by hash), sorted by hash for lookups."""
    values, counts = np.unique(hashes, return_counts=True)
    keep = np.lexsort((values, -counts))[:size]
    return np.sort(values[keep])


def to_ids(hashes: np.ndarray, offsets: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """A token-id stream: each record's tokens (``<unk>`` = len(vocabulary)) then ``</s>`` (len + 1)."""
    unk, eos = len(vocabulary), len(vocabulary) + 1
    pos = np.searchsorted(vocabulary, hashes)
    found = (pos < len(vocabulary)) & (vocabulary[np.minimum(pos, len(vocabulary) - 1)] == hashes)
    ids = np.where(found, pos, unk).astype(np.int64)
    ends = offsets[1:]
    out = np.insert(ids, ends, eos)  # </s> after each record
    return out


def _model(config: TinyLMConfig, n_tokens: int):
    import torch
    from torch import nn

    class TinyLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(n_tokens, config.dim)
            self.position = nn.Embedding(config.context, config.dim)
            layer = nn.TransformerEncoderLayer(config.dim, config.heads, 4 * config.dim, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(config.dim)
            mask = torch.triu(torch.full((config.context, config.context), float("-inf")), diagonal=1)
            self.register_buffer("mask", mask)

        def forward(self, x):
            t = x.shape[1]
            h = self.embed(x) + self.position(torch.arange(t))
            h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
            return self.norm(h) @ self.embed.weight.T

    return TinyLM()


class Trainer:
    """The tiny LM, its AdamW optimiser and one-cycle schedule over ``total_steps``, and the seeded window draws:
    what a proxy run trains with, once for an offline run or round by round for an online one."""

    def __init__(self, config: TinyLMConfig, n_tokens: int, total_steps: int):
        import torch

        torch.set_num_threads(1)  # the same arithmetic on every worker
        torch.manual_seed(config.seed)
        self.config, self.n_tokens = config, n_tokens
        self.model = _model(config, n_tokens)
        self.optimiser = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=0.01)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(self.optimiser, config.lr, total_steps=total_steps,
                                                            pct_start=0.1)
        self.rng = np.random.default_rng(config.seed)

    def train(self, stream, steps: int, rng: np.random.Generator | None = None) -> None:
        """``steps`` AdamW steps on ``batch`` windows at random offsets of the id ``stream`` (a torch tensor)."""
        import torch
        import torch.nn.functional as F

        rng = rng or self.rng
        context = min(self.config.context, len(stream) - 1)
        if context < 1:
            return
        window = torch.arange(context + 1)
        self.model.train()
        for _ in range(steps):
            starts = torch.from_numpy(rng.integers(0, len(stream) - context, self.config.batch))
            batch = stream[starts[:, None] + window]
            logits = self.model(batch[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, self.n_tokens), batch[:, 1:].reshape(-1))
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            self.optimiser.step()
            if self.schedule.last_epoch + 1 < self.schedule.total_steps:
                self.schedule.step()

    def losses(self, eval_ids: list) -> list[float]:
        """Cross-entropy (nats per token) of each id stream, over consecutive windows (every token predicted
        once), a fixed number of windows per forward pass."""
        import torch
        import torch.nn.functional as F

        context = self.config.context
        self.model.eval()
        out = []
        with torch.no_grad():
            for ids in eval_ids:
                full = (len(ids) - 1) // context
                total = 0.0
                for a in range(0, full, 256):
                    chunk = ids[a * context:(min(a + 256, full)) * context + 1].unfold(0, context + 1, context)
                    logits = self.model(chunk[:, :-1])
                    total += float(F.cross_entropy(logits.reshape(-1, self.n_tokens), chunk[:, 1:].reshape(-1),
                                                   reduction="sum"))
                tail = ids[full * context:]
                if len(tail) >= 2:
                    total += float(F.cross_entropy(self.model(tail[None, :-1])[0], tail[1:], reduction="sum"))
                out.append(total / max(len(ids) - 1, 1))
        return out

    def state(self) -> tuple:
        import copy

        return (copy.deepcopy(self.model.state_dict()), copy.deepcopy(self.optimiser.state_dict()),
                self.schedule.state_dict())

    def restore(self, state: tuple) -> None:
        model, optimiser, schedule = state
        self.model.load_state_dict(model)
        self.optimiser.load_state_dict(optimiser)
        self.schedule.load_state_dict(schedule)


def tiny_lm_proxy_run(hashes: np.ndarray, offsets: np.ndarray, evals: list[tuple[np.ndarray, np.ndarray]],
                      vocabulary: np.ndarray, config: TinyLMConfig) -> tuple[list[float], float]:
    """Engine task: train the tiny LM on one mixture's records and return the cross-entropy (nats per token) of
    each evaluation set, and the seconds it took."""
    import torch

    started = time.perf_counter()
    stream = torch.from_numpy(to_ids(hashes, offsets, vocabulary))
    if len(stream) <= config.context + 1:
        raise ConfigError(f"tiny_lm: a run has {len(stream)} tokens, fewer than one context of {config.context}")
    trainer = Trainer(config, len(vocabulary) + 2, config.steps)
    trainer.train(stream, config.steps)
    losses = trainer.losses([torch.from_numpy(to_ids(h, o, vocabulary)) for h, o in evals])
    return losses, time.perf_counter() - started
