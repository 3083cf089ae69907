"""DoReMi (Xie et al., 2023) with an n-gram proxy that trains online: ``thresher mix --pool ... --method doremi``.

DoReMi needs no target: it looks for the mixture whose proxy has the smallest *worst-group excess loss* over a
reference model trained on the baseline mixture. Here both models are Kneser-Ney n-gram LMs trained step by step
(their counts accumulate, as a network's training does):

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
from thresher.lm.ngram import KneserNeyConfig, KneserNeyLM, NgramCounts
from thresher.mix.proxy import GATHER, INDEX, TARGETS, _draw, _take, heldout_and_train


def _streams(v: Values) -> dict:
    s = v.settings
    heldout, train = heldout_and_train(v)
    train_tokens = np.array([v.tokens_of[t].sum() for t in train], dtype=float)
    if s.proxy_tokens > train_tokens.sum():
        raise ConfigError(f"--proxy-tokens {s.proxy_tokens:,.0f} is more than the pool's {train_tokens.sum():,.0f} "
                          "whitespace tokens left to train on (after each group's held-out slice); lower it")
    streams = [_draw(train[g], v.tokens_of[train[g]], min(s.proxy_tokens, train_tokens[g] * s.max_epochs),
                     np.random.default_rng([v.seed, 3, g])) if len(train[g]) else train[g] for g in range(len(train))]
    natural = train_tokens / train_tokens.sum()
    return {"draws": [streams], "heldout_rows": heldout, "prior_weights": natural, "train_tokens": train_tokens}


def online_ngram_run(streams: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                     evals: list[tuple[np.ndarray, np.ndarray]], measured: np.ndarray, order: int, vocab_size: int,
                     steps: int, proxy_tokens: float, start: np.ndarray, reference: np.ndarray | None, eta: float,
                     smoothing: float) -> dict:
    """Engine task: an n-gram LM trained in ``steps`` chunks drawn from per-group ``streams`` (token hashes,
    offsets, tokens per record, in draw order), measured on ``evals`` (the held-out slices of groups
    ``measured``). With ``reference`` (a loss per measured group) the weights follow the excess loss (Group DRO; a
    group without a slice has none); without, they stay at ``start``. Per step: the weights it trained on, the
    held-out losses and, for DRO, the excess and the updated weights."""
    config = KneserNeyConfig(order=order)
    counts = NgramCounts(config)
    cursor = [0] * len(streams)
    used = [0.0] * len(streams)
    weights = np.asarray(start, dtype=float)
    rows: list[dict] = []
    for step in range(steps):
        target_tokens = proxy_tokens * (step + 1) / steps
        for g, (hashes, offsets, tokens) in enumerate(streams):
            stop = int(np.searchsorted(np.cumsum(tokens[cursor[g]:]), weights[g] * target_tokens - used[g])) + 1 \
                if weights[g] * target_tokens > used[g] else 0
            stop = min(cursor[g] + stop, len(tokens))
            if stop > cursor[g]:
                h, o = _take(hashes, offsets, np.arange(cursor[g], stop))
                counts.add_hashes(h, o)
                used[g] += float(tokens[cursor[g]:stop].sum())
                cursor[g] = stop
        lm = KneserNeyLM(config).fit_counts(counts)
        lm.vocab_size_ = max(lm.vocab_size_, vocab_size)
        losses = np.array([-lm.token_log_probs_hashes(h, o)[0].mean() for h, o in evals])
        row = {"step": step, "weights": weights.copy(), "losses": losses, "tokens": np.array(used)}
        if reference is not None:
            excess = np.zeros(len(weights))
            excess[measured] = np.maximum(losses - reference, 0.0)
            updated = weights * np.exp(eta * excess)
            updated /= updated.sum()
            weights = (1 - smoothing) * updated + smoothing / len(weights)
            row |= {"excess": excess, "updated": weights.copy()}
        rows.append(row)
    return {"steps": rows}


def _doremi(v: Values) -> dict:
    s, d = v.settings, v.doremi
    position = {int(p): i for i, p in enumerate(v.needed)}
    rows_of = np.vectorize(position.__getitem__, otypes=[np.int64])
    groups = [g for g, rows in enumerate(v.heldout_rows) if len(rows)]
    if len(groups) < 2:
        raise ConfigError("doremi needs at least two groups with a held-out slice (groups of 2+ records)")
    evals = [_take(v.needed_hashes, v.needed_offsets, rows_of(v.heldout_rows[g])) for g in groups]
    streams = []
    for g in range(len(v.names)):
        rows = v.draws[0][g]
        h, o = _take(v.needed_hashes, v.needed_offsets, rows_of(rows)) if len(rows) else \
            (np.zeros(0, np.uint64), np.zeros(1, np.int64))
        streams.append((h, o, v.tokens_of[rows].astype(float)))
    vocab_size = len(np.unique(v.needed_hashes)) + 2
    measured = np.array(groups)
    k = len(v.names)

    def run(start, reference):
        args = (streams, evals, measured, s.order, vocab_size, d["steps"], s.proxy_tokens, start, reference,
                d["eta"], d["smoothing"])
        return next(iter(v.engine.map(online_ngram_run, [args])))["steps"]

    ref_steps = run(v.prior_weights, None)
    dro = run(np.full(k, 1.0 / k), ref_steps[-1]["losses"])
    return {"reference_steps": ref_steps, "dro_steps": dro, "measured_groups": measured,
            "weights": np.mean([r["updated"] for r in dro], axis=0), "vocab_size": vocab_size}


STREAMS = Stage("sample_streams", GLOBAL, "held-out slice per group; each group's training records in a seeded "
                "order up to the proxy budget", _streams,
                ("names", "group_of", "tokens_of", "text_hash_of", "target_text_hashes", "settings", "seed"),
                ("draws", "heldout_rows", "prior_weights", "train_tokens"))
DOREMI = Stage("doremi", MAP, "a reference n-gram LM on the natural mixture, then a Group DRO n-gram LM whose "
               "weights follow the excess loss step by step (engine tasks)", _doremi,
               ("engine", "names", "draws", "heldout_rows", "needed", "needed_hashes", "needed_offsets", "tokens_of",
                "settings", "doremi", "prior_weights"),
               ("reference_steps", "dro_steps", "measured_groups", "weights", "vocab_size"))
DOREMI_PLAN = Plan("mix --method doremi", ("pool", "group_field", "engine", "targets", "settings", "seed", "doremi"),
                   (INDEX, TARGETS, STREAMS, GATHER, DOREMI))
