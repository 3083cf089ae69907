"""DoReMi (Xie et al., 2023) with a proxy that trains online: ``thresher mix --pool ... --method doremi``.

DoReMi needs no target: it looks for the mixture whose proxy has the smallest *worst-group excess loss* over a
reference model trained on the baseline mixture. Here both models are online proxies trained step by step
(Kneser-Ney n-gram LMs whose counts accumulate, or the tiny transformer whose optimiser runs on):

1. **reference**: ``steps`` steps of ``proxy_tokens / steps`` tokens each, drawn by the baseline (natural) weights;
   its cross-entropy on each group's held-out slice is the reference loss ``l_ref(g)``.
2. **Group DRO proxy**: from uniform weights, each step trains on a chunk drawn by the current weights, measures
   its held-out loss per group ``l(g)``, and moves the weights by exponentiated gradient on the excess loss:
   ``a(g) <- a(g) * exp(eta * max(l(g) - l_ref(g), 0))``, normalised, then smoothed toward uniform
   (``(1 - c) * a + c / groups``, DoReMi's ``c``).
3. The answer is the average of the weights over the steps (DoReMi's output); the trajectory is kept.

Each group's records are drawn in a seeded order (its stream, up to the proxy budget; a group smaller than that is
repeated, at most ``max_epochs`` passes) and consumed in that order, so a run is reproducible to the bit.
"""

from __future__ import annotations

import numpy as np

from thresher.engine.plan import GLOBAL, MAP, Plan, Stage, Values
from thresher.errors import ConfigError
from thresher.mix.online import OnlineSpec, Stream, streams_and_evals
from thresher.mix.proxy import GATHER, INDEX, TARGETS, _draw, heldout_and_train


def _streams(v: Values) -> dict:
    s = v.settings
    heldout, train, train_tokens = heldout_and_train(v)
    streams = [_draw(train[g], v.tokens_of[train[g]], min(s.proxy_tokens, train_tokens[g] * s.max_epochs),
                     np.random.default_rng([v.seed, 3, g])) if len(train[g]) else train[g] for g in range(len(train))]
    natural = train_tokens / train_tokens.sum()
    return {"draws": [streams], "heldout_rows": heldout, "prior_weights": natural, "train_tokens": train_tokens}


def online_dro_run(streams: list[Stream], evals: list[tuple[np.ndarray, np.ndarray]], measured: np.ndarray,
                   spec: OnlineSpec, seed: int, steps: int, proxy_tokens: float, start: np.ndarray,
                   reference: np.ndarray | None, eta: float, smoothing: float) -> dict:
    """Engine task: an online proxy (``spec``) trained in ``steps`` chunks drawn from per-group ``streams``, measured on
    ``evals`` (the held-out slices of groups ``measured``). With ``reference`` (a loss per measured group) the
    weights follow the excess loss (Group DRO; a group without a slice has none); without, they stay at ``start``.
    Per step: the weights it trained on, the held-out losses and, for DRO, the excess and the updated weights."""
    proxy = spec.build(streams, evals, steps, seed)
    weights = np.asarray(start, dtype=float)
    rows: list[dict] = []
    for step in range(steps):
        proxy.train_to(weights, proxy_tokens * (step + 1) / steps)
        losses = proxy.losses()
        row = {"step": step, "weights": weights.copy(), "losses": losses, "tokens": proxy.used.copy()}
        if reference is not None:
            excess = np.zeros(len(weights))
            excess[measured] = np.maximum(losses - reference, 0.0)
            weights = exponentiated_step(weights, excess, eta, smoothing)
            row |= {"excess": excess, "updated": weights.copy()}
        rows.append(row)
    return {"steps": rows}


def exponentiated_step(weights: np.ndarray, gain: np.ndarray, eta: float, smoothing: float) -> np.ndarray:
    """``weights x exp(eta x gain)``, normalised, then smoothed toward uniform by ``smoothing``."""
    updated = weights * np.exp(eta * gain)
    updated /= updated.sum()
    return (1 - smoothing) * updated + smoothing / len(weights)


def _doremi(v: Values) -> dict:
    s, d = v.settings, v.doremi
    measured = np.array([g for g, rows in enumerate(v.heldout_rows) if len(rows)])
    if len(measured) < 2:
        raise ConfigError("doremi needs at least two groups with a held-out slice (groups of 2+ records)")
    streams, evals, vocab_size = streams_and_evals(v, [v.heldout_rows[g] for g in measured])
    spec = OnlineSpec(s.proxy, s.order, vocab_size, s.tiny)
    k = len(v.names)

    def run(start, reference):
        args = (streams, evals, measured, spec, v.seed, d["steps"], s.proxy_tokens, start, reference, d["eta"],
                d["smoothing"])
        return next(iter(v.engine.map(online_dro_run, [args])))["steps"]

    ref_steps = run(v.prior_weights, None)
    dro = run(np.full(k, 1.0 / k), ref_steps[-1]["losses"])
    return {"reference_steps": ref_steps, "dro_steps": dro, "measured_groups": measured,
            "weights": np.mean([r["updated"] for r in dro], axis=0), "proxy_spec": spec}


STREAMS = Stage("sample_streams", GLOBAL, "held-out slice per group; each group's training records in a seeded "
                "order up to the proxy budget", _streams,
                ("names", "group_of", "tokens_of", "text_hash_of", "target_text_hashes", "settings", "seed"),
                ("draws", "heldout_rows", "prior_weights", "train_tokens"))
DOREMI = Stage("doremi", MAP, "a reference proxy on the natural mixture, then a Group DRO proxy whose weights "
               "follow the excess loss step by step (engine tasks)", _doremi,
               ("engine", "names", "draws", "heldout_rows", "needed", "needed_hashes", "needed_offsets", "tokens_of",
                "settings", "seed", "doremi", "prior_weights"),
               ("reference_steps", "dro_steps", "measured_groups", "weights", "proxy_spec"))
DOREMI_PLAN = Plan("mix --method doremi", ("pool", "group_field", "engine", "targets", "settings", "seed", "doremi"),
                   (INDEX, TARGETS, STREAMS, GATHER, DOREMI))
