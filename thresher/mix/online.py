"""Proxies that train online, chunk by chunk: an n-gram LM whose counts accumulate, or the tiny transformer
(:class:`thresher.mix.tiny_lm.OnlineTinyLM`) whose optimiser runs on.

Each group's records come from its *stream* (token hashes, record offsets and whitespace tokens, in a seeded draw
order); a group's records are consumed in that order, so a run is reproducible to the bit. Online mixing methods
(:mod:`thresher.mix.doremi`, :mod:`thresher.mix.aioli`) train a proxy step by step with changing weights, measure it
on held-out sets, and probe what one more chunk of one group would do without keeping it
(:meth:`OnlineProxy.probe`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from thresher.lm.ngram import KneserNeyConfig, KneserNeyLM, NgramCounts
from thresher.mix.proxy import _take, needed_rows
from thresher.mix.tiny_lm import TinyLMConfig, Trainer, build_vocabulary, to_ids

Stream = tuple[np.ndarray, np.ndarray, np.ndarray]  # token hashes, record offsets, whitespace tokens per record


class OnlineProxy:
    """A proxy trained on chunks drawn from per-group ``streams``, measured on ``evals`` (token hashes and offsets
    per held-out set). This base keeps each stream's cursor and the tokens taken per group; a subclass learns
    from a chunk (``_learn``), measures (``losses``) and says what a chunk would do without keeping it
    (``_probe``)."""

    def __init__(self, streams: list[Stream], evals: list[tuple[np.ndarray, np.ndarray]]):
        self.streams, self.evals = streams, evals
        self.cursor = [0] * len(streams)
        self.used = np.zeros(len(streams))

    def _next(self, g: int, tokens: float) -> int:
        """The stream position after group ``g``'s records that give ``tokens`` more tokens (at its end: all)."""
        if tokens <= 0:
            return self.cursor[g]
        lengths = self.streams[g][2]
        k = int(np.searchsorted(np.cumsum(lengths[self.cursor[g]:]), tokens)) + 1
        return min(self.cursor[g] + k, len(lengths))

    def _chunk(self, g: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        hashes, offsets, _ = self.streams[g]
        return _take(hashes, offsets, np.arange(self.cursor[g], stop))

    def train_to(self, weights: np.ndarray, total_tokens: float) -> None:
        """Train on each group's next records until group g has had ``weights[g] x total_tokens`` tokens in all."""
        chunks = []
        for g in range(len(self.streams)):
            stop = self._next(g, weights[g] * total_tokens - self.used[g])
            if stop > self.cursor[g]:
                chunks.append(self._chunk(g, stop))
                self.used[g] += float(self.streams[g][2][self.cursor[g]:stop].sum())
                self.cursor[g] = stop
        if chunks:
            self._learn(chunks)

    def probe(self, g: int, tokens: float) -> np.ndarray:
        """The held-out losses after ``tokens`` more tokens of group ``g`` only, without training on them."""
        stop = self._next(g, tokens)
        if stop == self.cursor[g]:
            return self.losses()
        return self._probe(self._chunk(g, stop), g)

    def _learn(self, chunks: list[tuple[np.ndarray, np.ndarray]]) -> None:
        raise NotImplementedError

    def _probe(self, chunk: tuple[np.ndarray, np.ndarray], g: int) -> np.ndarray:
        raise NotImplementedError

    def losses(self) -> np.ndarray:
        """Cross-entropy (nats per token) on every held-out set."""
        raise NotImplementedError


class OnlineNgram(OnlineProxy):
    """A Kneser-Ney n-gram LM whose counts accumulate chunk by chunk; losses over one vocabulary of
    ``vocab_size`` (comparable losses)."""

    def __init__(self, streams: list[Stream], evals: list[tuple[np.ndarray, np.ndarray]], order: int,
                 vocab_size: int):
        super().__init__(streams, evals)
        self.vocab_size = vocab_size
        self.config = KneserNeyConfig(order=order)
        self.counts = NgramCounts(self.config)

    def _learn(self, chunks: list[tuple[np.ndarray, np.ndarray]]) -> None:
        for chunk in chunks:
            self.counts.add_hashes(*chunk)

    def losses(self, counts: NgramCounts | None = None) -> np.ndarray:
        """Cross-entropy (nats per token) on every held-out set, of the model from ``counts`` (default: its own)."""
        lm = KneserNeyLM(self.config).fit_counts(counts or self.counts)
        lm.vocab_size_ = max(lm.vocab_size_, self.vocab_size)
        return np.array([-lm.token_log_probs_hashes(h, o)[0].mean() for h, o in self.evals])

    def _probe(self, chunk: tuple[np.ndarray, np.ndarray], g: int) -> np.ndarray:
        extra = NgramCounts(self.config)
        extra.add_hashes(*chunk)
        return self.losses(self.counts.merge(extra))


class OnlineTinyLM(OnlineProxy):
    """The tiny LM trained online (DoReMi, Aioli, Skill-It with ``--proxy tiny_lm``): one optimiser and one-cycle
    schedule of ``config.steps`` steps spread over ``rounds`` rounds; each round takes ``steps / rounds`` steps on
    windows drawn from that round's new records (all groups' chunks, so a group's share of windows is its share of
    the round's tokens). A probe trains a copy of the state on one group's chunk and restores it. The vocabulary is
    the streams' most frequent hashes; each evaluation set is measured on its first ``online_eval_tokens`` tokens
    (held-out records come in a seeded order), the same tokens every round, because a full pass every round and
    every probe would cost more than the training."""

    def __init__(self, streams: list[Stream], evals: list[tuple[np.ndarray, np.ndarray]], config: TinyLMConfig,
                 rounds: int):
        import torch

        super().__init__(streams, evals)
        self.vocabulary = build_vocabulary(np.concatenate([h for h, _, _ in streams]), config.vocab_size)
        self.per_round = max(1, config.steps // rounds)
        self.trainer = Trainer(config, len(self.vocabulary) + 2, self.per_round * rounds)
        self.eval_ids = [torch.from_numpy(to_ids(h, o, self.vocabulary)[:config.online_eval_tokens + 1])
                         for h, o in evals]
        self.probes = 0

    def _ids(self, chunks: list[tuple[np.ndarray, np.ndarray]]):
        import torch

        return torch.from_numpy(np.concatenate([to_ids(h, o, self.vocabulary) for h, o in chunks]))

    def _learn(self, chunks: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.trainer.train(self._ids(chunks), self.per_round)

    def losses(self) -> np.ndarray:
        return np.array(self.trainer.losses(self.eval_ids))

    def _probe(self, chunk: tuple[np.ndarray, np.ndarray], g: int) -> np.ndarray:
        saved = self.trainer.state()
        self.probes += 1  # its own window draws, so probing leaves the run's draws as they were
        self.trainer.train(self._ids([chunk]), self.per_round,
                           np.random.default_rng([self.trainer.config.seed, 0x9B0BE, self.probes]))
        losses = self.losses()
        self.trainer.restore(saved)
        return losses


@dataclass(frozen=True)
class OnlineSpec:
    """Which online proxy an engine task builds: ``ngram`` (``order``, over ``vocab_size`` word hashes) or
    ``tiny_lm`` (its ``tiny`` config, one optimiser schedule over ``rounds`` rounds)."""

    kind: str
    order: int
    vocab_size: int
    tiny: TinyLMConfig | None = None

    def build(self, streams: list[Stream], evals: list[tuple[np.ndarray, np.ndarray]], rounds: int,
              seed: int = 0) -> OnlineProxy:
        if self.kind == "tiny_lm":
            return OnlineTinyLM(streams, evals, replace(self.tiny, seed=seed), rounds)
        return OnlineNgram(streams, evals, self.order, self.vocab_size)

    def describe(self) -> dict:
        """mixture.yaml's ``proxy`` entry for this proxy."""
        if self.kind == "tiny_lm":
            return {"kind": "tiny_lm", "tiny_lm": {k: v for k, v in asdict(self.tiny).items() if k != "seed"}}
        return {"kind": "ngram", "order": self.order, "vocabulary": self.vocab_size}


def streams_and_evals(v, eval_rows: list[np.ndarray], extra_evals: list[tuple[np.ndarray, np.ndarray]] = ()
                      ) -> tuple[list[Stream], list[tuple[np.ndarray, np.ndarray]], int]:
    """From a plan's gathered records: each group's stream (``v.draws[0]``), the held-out sets (``extra_evals``,
    e.g. target sets, then the pool positions ``eval_rows``) and the size of the vocabulary they all share."""
    def taken(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _take(v.needed_hashes, v.needed_offsets, needed_rows(v.needed, rows))

    streams = [(*taken(rows), v.tokens_of[rows].astype(float)) for rows in v.draws[0]]
    evals = [*extra_evals, *(taken(rows) for rows in eval_rows)]
    vocab = np.unique(np.concatenate([v.needed_hashes, *(h for h, _ in extra_evals)]))
    return streams, evals, len(vocab) + 2
