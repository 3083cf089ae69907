"""Prompted LFs: a local causal LM is asked about each record, and the class whose answer it finds likeliest, by a
margin, is the vote (the LM-in-the-loop / Alfred / ScriptoriumWS style of LF, on a model that runs offline).

Small LMs are strongly biased toward some answers whatever the record says (SmolLM2-135M-Instruct answers "negative"
to 300 of 300 review sentences, 53% of which are positive), so each class's score gets a ``bias`` added before the
comparison: ``thresher generate-lfs --method prompt`` fits it on labelled dev records (so that the LF's mean
posterior matches the dev class frequencies) and chooses the margin there; by hand, start from 0 and read the LF's
vote counts in ``thresher label``'s summary.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.label.lfs import LabelingFunction, Votes, label_index, vote_top


class PromptLF(LabelingFunction):
    """Vote the class whose answer(s) to ``prompt`` the LM finds likeliest, by ``margin`` nats over the runner-up
    after adding ``bias`` per class; abstain otherwise. ``answers``: class -> answer words. ``model``, ``chat``,
    ``max_tokens``, ``batch_size``, ``cache``: see :class:`thresher.lm.prompt.PromptScorer` and
    :class:`thresher.lm.causal.CausalLMConfig`."""

    kind = "prompt"
    time_limited = False

    def __init__(self, name: str, prompt: str, answers: Mapping[str, Sequence[str] | str], model: str = "smollm2",
                 chat: bool = False, bias: Mapping[str, float] | None = None, margin: float = 0.0,
                 max_tokens: int = 256, batch_size: int = 8, cache: bool | str | os.PathLike = True):
        from thresher.lm.causal import CausalLMConfig
        from thresher.lm.prompt import PromptScorer

        if not isinstance(prompt, str):
            raise ConfigError(f"LF {name!r}: prompt must be a text holding {{text}}")
        if not isinstance(chat, bool):
            raise ConfigError(f"LF {name!r}: chat must be true or false")
        try:
            bias = {str(k): float(v) for k, v in (bias or {}).items()}
            margin = float(margin)
            self.scorer = PromptScorer(prompt, answers, chat, int(max_tokens),
                                       CausalLMConfig(model=str(model), batch_size=int(batch_size)), cache)
        except ConfigError as e:  # before ValueError, which it also is
            raise ConfigError(f"LF {name!r}: {e}") from None
        except (TypeError, ValueError, AttributeError):
            raise ConfigError(f"LF {name!r}: bias must map classes to numbers; margin, max_tokens and batch_size "
                              f"must be numbers") from None
        unknown = sorted(set(bias) - set(self.scorer.answers))
        if unknown:
            raise ConfigError(f"LF {name!r}: bias for {', '.join(unknown)}, which has no answers")
        if margin < 0:
            raise ConfigError(f"LF {name!r}: margin must be >= 0, got {margin}")
        self.name, self.margin = name, margin
        self.bias = {c: bias.get(c, 0.0) for c in self.scorer.answers}

    def __repr__(self) -> str:
        return f"PromptLF({self.name!r}: {', '.join(self.scorer.answers)})"

    @property
    def answers(self) -> dict[str, list[str]]:
        return self.scorer.answers

    @property
    def model(self) -> str:
        return self.scorer.lm.config.model

    def raw_scores(self, texts: Sequence[str | None]) -> np.ndarray:
        """Per record and class (``answers`` order), the log probability of the class's answers, before the bias."""
        return self.scorer.scores(texts)

    def scores_of(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores with the bias added: what the margin is measured on."""
        return raw + np.array(list(self.bias.values()))

    def class_indices(self, classes: Sequence[str]) -> np.ndarray:
        """The class index of each column of the scores."""
        return np.array([label_index(c, classes, self.name) for c in self.scorer.answers], dtype=np.int32)

    def decide(self, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Votes from biased scores: the likeliest class where it beats the runner-up by the margin."""
        return vote_top(scores, labels, self.margin)

    def apply(self, batch: pa.Table, classes: Sequence[str], on_error: str = "raise") -> Votes:
        texts = batch["text"].to_pylist()
        if not texts:
            return Votes(np.zeros(0, np.int32))
        return Votes(self.decide(self.scores_of(self.raw_scores(texts)), self.class_indices(classes)))

    def voted_labels(self) -> tuple:
        return tuple(self.scorer.answers)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "model": self.model, "chat": self.scorer.chat,
                "prompt": self.scorer.template, "answers": self.scorer.answers, "bias": self.bias,
                "margin": self.margin, "max_tokens": self.scorer.max_tokens}
